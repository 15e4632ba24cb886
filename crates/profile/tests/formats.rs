//! The two formats on a real V8 profile (tests/data/leak.heapprofile: Node 20's
//! `HeapProfiler.getSamplingProfile` after a leak of 20,000 objects in `leak`, sampled every
//! 32 KiB), and the errors for everything that is not a heap profile.

use std::io::Write;

use heapgate_profile::{Kind, ProfileError, compare, parse, parse_heapprofile, pprof, summarize};

const LEAK: &[u8] = include_bytes!("data/leak.heapprofile");

#[test]
fn heapprofile_round_trips_byte_for_byte() {
    let profile = parse_heapprofile(LEAK).unwrap();
    assert_eq!(serde_json::to_vec(&profile).unwrap(), LEAK);
}

#[test]
fn totals_are_v8s_and_objects_follow_v8s_scaling() {
    let model = parse_heapprofile(LEAK).unwrap();
    let profile = parse(LEAK).unwrap();
    assert_eq!(profile.total_bytes(), model.total_self_size());
    assert!(profile.total_bytes() > 0);
    // The interval the file does not state is recovered.
    assert_eq!(profile.interval, Some(32 * 1024));
    // Every sample's object size is recovered, and V8's scaling of it explains its bytes up
    // to the sizes a scaled size cannot tell apart (the rest of `selfSize` is added as is).
    for stack in &profile.stacks {
        let size = stack.object_size.expect("every sample inverted");
        let explained = size * stack.objects;
        assert!(
            stack.bytes.abs_diff(explained) * 100 <= stack.bytes,
            "{stack:?}"
        );
    }
    let summary = summarize(&profile);
    let top = &summary.sites[0];
    assert_eq!(top.frame.function, "leak");
    // V8's 0-based position of `function leak(` on line 7 of the script, shown 1-based.
    assert_eq!((top.frame.line, top.frame.column), (7, 14));
    assert!(
        top.frame.to_string().ends_with("/tmp/i20c-mk.js:7:14"),
        "{}",
        top.frame
    );
}

#[test]
fn pprof_round_trips() {
    let profile = parse(LEAK).unwrap();
    let encoded = pprof::encode(&profile, Some(1_700_000_000_000_000_000));
    assert!(encoded.starts_with(&[0x1F, 0x8B]), "gzipped");
    let decoded = parse(&encoded).unwrap();
    assert_eq!(decoded.format, heapgate_profile::Format::Pprof);
    assert_eq!(decoded.interval, profile.interval);
    assert_eq!(decoded.total_bytes(), profile.total_bytes());
    assert_eq!(decoded.total_objects(), profile.total_objects());
    assert_eq!(decoded.stacks.len(), profile.stacks.len());
    for (a, b) in decoded.stacks.iter().zip(&profile.stacks) {
        let names = |p: &heapgate_profile::Profile, s: &heapgate_profile::Stack| {
            s.frames
                .iter()
                .map(|&f| p.frames[f].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&decoded, a), names(&profile, b));
        assert_eq!(
            (a.bytes, a.objects, a.object_size),
            (b.bytes, b.objects, b.object_size)
        );
    }
    // Plain (not gzipped) protobuf reads too.
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&encoded[..]), &mut raw).unwrap();
    assert_eq!(parse(&raw).unwrap().total_bytes(), profile.total_bytes());
}

#[test]
fn what_is_not_a_heap_profile_is_named() {
    let gz = |bytes: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    };
    let encoded = pprof::encode(&parse(LEAK).unwrap(), None);
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "snapshot",
            br#"{"snapshot":{"meta":{}},"nodes":[]}"#.to_vec(),
            "this is a heap snapshot, not a heap profile",
        ),
        (
            "gzipped snapshot",
            gz(br#"{"snapshot":{"meta":{}}}"#),
            "this is a heap snapshot",
        ),
        (
            "cpu profile",
            br#"{"nodes":[],"startTime":1,"endTime":2}"#.to_vec(),
            "this is a CPU profile",
        ),
        ("empty", Vec::new(), "not a heap profile: the file is empty"),
        (
            "text",
            b"hello world\n".to_vec(),
            "not a heap profile: neither",
        ),
        ("other json", br#"{"a":1}"#.to_vec(), "not a heap profile"),
        (
            "truncated heapprofile",
            LEAK[..LEAK.len() / 2].to_vec(),
            "damaged .heapprofile: EOF",
        ),
        (
            "heapprofile with trailing junk",
            [LEAK, b"}"].concat(),
            "damaged .heapprofile: trailing",
        ),
        (
            "wrong type",
            br#"{"head":{"callFrame":1}}"#.to_vec(),
            "damaged .heapprofile: invalid type",
        ),
        (
            "deep nesting",
            format!(r#"{{"head":{deep}}}"#).into_bytes(),
            "damaged .heapprofile: nested deeper",
        ),
        (
            "truncated pprof",
            encoded[..encoded.len() / 2].to_vec(),
            "damaged gzip file",
        ),
        (
            "garbled pprof",
            gz(&[0x0A, 0xFF, 0xFF, 0xFF, 0x0F, 1, 2]),
            "damaged pprof profile",
        ),
    ];
    for (name, bytes, expected) in cases {
        let err = parse(&bytes).expect_err(name).to_string();
        assert!(err.starts_with(expected), "{name}: {err}");
        assert!(!err.contains('\n'), "{name}: one line: {err}");
    }
    assert!(matches!(
        parse(br#"{"snapshot":{}}"#),
        Err(ProfileError::Snapshot)
    ));
}

#[test]
fn sniffing() {
    assert_eq!(heapgate_profile::sniff(LEAK), Kind::HeapProfile);
    assert_eq!(
        heapgate_profile::sniff(b" \n{ \"snapshot\": {"),
        Kind::Snapshot
    );
    assert_eq!(heapgate_profile::sniff(&[0x0A, 0x04]), Kind::Pprof);
    assert_eq!(heapgate_profile::sniff(b"PK"), Kind::Unknown);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.pb.gz");
    std::fs::write(&path, pprof::encode(&parse(LEAK).unwrap(), None)).unwrap();
    assert_eq!(heapgate_profile::sniff_file(&path).unwrap(), Kind::Pprof);
    assert_eq!(
        heapgate_profile::read(&path).unwrap().total_bytes(),
        parse(LEAK).unwrap().total_bytes()
    );
}

#[test]
fn a_burst_live_at_b_is_not_kept_growth() {
    // A, B, C from the same tree: B holds the leak plus a burst, C the leak only.
    let a = parse(br#"{"head":{"callFrame":{"functionName":"(root)","scriptId":"0","url":"","lineNumber":-1,"columnNumber":-1},"selfSize":0,"id":1,"children":[
        {"callFrame":{"functionName":"leak","scriptId":"1","url":"app.js","lineNumber":4,"columnNumber":9},"selfSize":1000,"id":2,"children":[]}]},"samples":[]}"#).unwrap();
    let b = parse(br#"{"head":{"callFrame":{"functionName":"(root)","scriptId":"0","url":"","lineNumber":-1,"columnNumber":-1},"selfSize":0,"id":1,"children":[
        {"callFrame":{"functionName":"leak","scriptId":"1","url":"app.js","lineNumber":4,"columnNumber":9},"selfSize":3000,"id":2,"children":[]},
        {"callFrame":{"functionName":"burst","scriptId":"1","url":"app.js","lineNumber":9,"columnNumber":0},"selfSize":90000,"id":3,"children":[]}]},"samples":[]}"#).unwrap();
    let c = parse(br#"{"head":{"callFrame":{"functionName":"(root)","scriptId":"0","url":"","lineNumber":-1,"columnNumber":-1},"selfSize":0,"id":1,"children":[
        {"callFrame":{"functionName":"leak","scriptId":"1","url":"app.js","lineNumber":4,"columnNumber":9},"selfSize":5000,"id":2,"children":[]}]},"samples":[]}"#).unwrap();
    let two = compare(&[a.clone(), b.clone()]);
    assert_eq!(two.sites[0].frame.function, "burst");
    assert_eq!(two.sites[0].growth_bytes, 90000);
    let three = compare(&[a, b, c]);
    assert_eq!(three.sites[0].frame.to_string(), "leak app.js:5:10");
    assert_eq!(three.sites[0].growth_bytes, 2000);
    let burst = three
        .sites
        .iter()
        .find(|s| s.frame.function == "burst")
        .unwrap();
    assert_eq!(
        (burst.growth_bytes, &burst.bytes[..]),
        (0, &[0, 90000, 0][..])
    );
    assert_eq!(three.growth_bytes, 2000);
    assert_eq!(three.tree.growth, 2000);
    let text = heapgate_profile::render_diff(&three, 10);
    assert!(text.contains("+2000  "), "{text}");
}
