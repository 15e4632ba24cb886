//! The generator's output is a valid snapshot that heapgate reads as a series of one process.

use std::{collections::HashSet, path::Path, process::Command};

use heapgate_snapshot::{Verdict, comparability, diff, load};
use serde_json::Value;

/// Runs heapgate-synth; returns its stderr.
fn synth(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_heapgate-synth"))
        .args(args)
        .output()
        .expect("run heapgate-synth");
    assert!(
        out.status.success(),
        "heapgate-synth {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Leaked objects per written file, from the generator's report lines.
fn leaked(report: &str) -> Vec<u64> {
    report
        .lines()
        .filter_map(|l| l.split(", ").find(|p| p.ends_with(" leaked objects")))
        .map(|p| {
            p.trim_end_matches(" leaked objects")
                .parse()
                .expect("a count")
        })
        .collect()
}

fn ints(v: &Value) -> Vec<u64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_u64().expect("an unsigned integer"))
        .collect()
}

/// The format's invariants, checked on the parsed JSON (small files only).
fn check_structure(path: &Path) {
    let s: Value = serde_json::from_slice(&std::fs::read(path).expect("read")).expect("JSON");
    let meta = &s["snapshot"]["meta"];
    let nf = meta["node_fields"].as_array().expect("node_fields").len();
    let ef = meta["edge_fields"].as_array().expect("edge_fields").len();
    assert_eq!((nf, ef), (7, 3));
    let node_types: Vec<&str> = meta["node_types"][0]
        .as_array()
        .expect("node types")
        .iter()
        .map(|t| t.as_str().expect("type name"))
        .collect();
    let edge_types: Vec<&str> = meta["edge_types"][0]
        .as_array()
        .expect("edge types")
        .iter()
        .map(|t| t.as_str().expect("type name"))
        .collect();
    let nodes = ints(&s["nodes"]);
    let edges = ints(&s["edges"]);
    let strings = s["strings"].as_array().expect("strings").len() as u64;
    let n = s["snapshot"]["node_count"].as_u64().expect("node_count") as usize;
    let e = s["snapshot"]["edge_count"].as_u64().expect("edge_count") as usize;
    assert_eq!(
        nodes.len(),
        n * nf,
        "node_count × node_fields = nodes length"
    );
    assert_eq!(
        edges.len(),
        e * ef,
        "edge_count × edge_fields = edges length"
    );

    let mut first = vec![0usize; n + 1];
    let mut ids = HashSet::new();
    for i in 0..n {
        let r = &nodes[i * nf..(i + 1) * nf];
        let ty = node_types[r[0] as usize];
        assert!(r[1] < strings, "node name in range");
        assert!(ids.insert(r[2]), "ids are unique");
        if ty != "native" && !(ty == "synthetic" && r[2] >= 3_000_000_000) {
            assert_eq!(r[2] % 2, 1, "heap objects have odd ids, as V8 gives them");
        }
        first[i + 1] = first[i] + r[4] as usize;
    }
    assert_eq!(first[n], e, "edge counts add up to edge_count");
    let mut seen = vec![false; n];
    let mut stack = vec![0usize];
    seen[0] = true;
    while let Some(i) = stack.pop() {
        for k in first[i]..first[i + 1] {
            let r = &edges[k * ef..(k + 1) * ef];
            let ty = edge_types[r[0] as usize];
            assert_eq!(r[2] % nf as u64, 0, "to_node is a node index");
            let to = (r[2] / nf as u64) as usize;
            assert!(to < n, "to_node in range");
            if !matches!(ty, "element" | "hidden") {
                assert!(r[1] < strings, "edge name in range");
            }
            if ty != "weak" && !seen[to] {
                seen[to] = true;
                stack.push(to);
            }
        }
    }
    let unreachable = seen.iter().filter(|&&s| !s).count();
    assert_eq!(unreachable, 0, "every node is reachable from the root");
    let locations = ints(&s["locations"]);
    assert!(!locations.is_empty());
    for l in locations.chunks(4) {
        assert_eq!(l[0] % nf as u64, 0);
        assert!((l[0] as usize) < nodes.len());
    }
}

#[test]
fn a_series_is_valid_and_reads_as_one_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("s.heapsnapshot");
    let report = synth(&[
        "--nodes",
        "120000",
        "--series",
        "3",
        "-o",
        out.to_str().expect("utf-8 path"),
    ]);
    let files: Vec<_> = (1..=3)
        .map(|k| dir.path().join(format!("s-{k}.heapsnapshot")))
        .collect();
    for f in &files {
        check_structure(f);
    }
    let leak = leaked(&report);
    assert_eq!(leak.len(), 3);
    assert!(
        leak[0] > 1000 && leak[0] < leak[1] && leak[1] < leak[2],
        "{leak:?}"
    );

    let snaps: Vec<_> = files
        .iter()
        .map(|f| load(f).expect("heapgate loads it"))
        .collect();
    assert_eq!(
        comparability(&snaps[0], &snaps[1]).verdict,
        Verdict::SameSeries
    );
    assert_eq!(
        comparability(&snaps[1], &snaps[2]).verdict,
        Verdict::SameSeries
    );
    assert_eq!(
        comparability(&snaps[2], &snaps[0]).verdict,
        Verdict::Reversed
    );

    let d = diff(&snaps[0], &snaps[1]);
    let leaked_row = d.class("LeakedRequestContext").expect("the leak is a row");
    assert_eq!(leaked_row.new_count, leak[1] - leak[0]);
    assert_eq!(leaked_row.deleted_count, 0);
    let transient = d.class("PendingRequest").expect("transients are a row");
    assert!(transient.new_count > 0);
    assert_eq!(transient.new_count, transient.deleted_count);
    // Nothing else changes between snapshots of the series but the leak, the transients and
    // strings/numbers/plain objects they own.
    for row in &d.classes {
        assert!(
            matches!(
                row.name.as_str(),
                "LeakedRequestContext"
                    | "PendingRequest"
                    | "(string)"
                    | "(number)"
                    | "(array)"
                    | "{host, accept}"
            ),
            "unexpected change in class {}",
            row.name
        );
    }
}

#[test]
fn size_is_close_to_the_one_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("x.heapsnapshot");
    synth(&["--size", "8MB", "-o", out.to_str().expect("utf-8 path")]);
    let bytes = std::fs::metadata(&out).expect("written").len() as f64;
    assert!((bytes / 8e6 - 1.0).abs() < 0.05, "{bytes} bytes for 8MB");
    check_structure(&out);
}

#[test]
fn bad_arguments_get_one_line() {
    for args in [
        &["--size", "2XB", "-o", "/dev/null"][..],
        &["--nodes", "1000", "--series", "0", "-o", "/dev/null"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_heapgate-synth"))
            .args(args)
            .output()
            .expect("run heapgate-synth");
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("heapgate-synth: "), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}
