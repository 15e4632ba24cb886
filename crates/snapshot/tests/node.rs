//! Real snapshots from Node.js: a leak between two snapshots of one process tops the diff, and
//! snapshots of two processes are flagged as not comparable.
//!
//! Needs `node` on PATH. Without it the tests print a loud SKIPPED line and pass, except under
//! CI (`CI=true`), where a missing node is a broken CI image and fails them.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use heapgate_snapshot::{Verdict, comparability, diff, load};

const LEAKS: u64 = 20_000;

/// `same` writes BASE, leaks, writes NEW; `other` leaks in a fresh process and writes one.
const SCRIPT: &str = r#"
const v8 = require("v8");
const [mode, dir, leaks] = process.argv.slice(2);
class LeakedRequestContext {
  constructor(i) {
    this.id = i; this.status = 200; this.retries = 0; this.startedAt = i * 2;
    this.method = "GET"; this.flags = i & 7; this.bytes = i % 1000; this.open = true;
  }
}
globalThis.leaked = [];
const leak = () => { for (let i = 0; i < +leaks; i++) leaked.push(new LeakedRequestContext(i)); };
if (mode === "same") {
  v8.writeHeapSnapshot(dir + "/base.heapsnapshot");
  leak();
  v8.writeHeapSnapshot(dir + "/new.heapsnapshot");
} else {
  leak();
  v8.writeHeapSnapshot(dir + "/other.heapsnapshot");
}
"#;

/// Whether node runs; prints SKIPPED (or panics under CI) when it does not.
fn node_available() -> bool {
    if Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("node is not on PATH, and CI=true: the real-snapshot tests must run in CI");
    }
    // Straight to the process's stderr: libtest captures eprintln! output of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: node is not on PATH; the real-snapshot tests of heapgate-snapshot did not run ***\n"
    );
    false
}

fn run(mode: &str, dir: &Path) {
    let script = dir.join("snap.js");
    std::fs::write(&script, SCRIPT).unwrap();
    let out = Command::new("node")
        .arg(&script)
        .arg(mode)
        .arg(dir)
        .arg(LEAKS.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "node {mode} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.heapsnapshot"))
}

#[test]
fn a_leak_between_two_snapshots_tops_the_diff() {
    if !node_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    run("same", dir.path());
    let base = load(file(dir.path(), "base")).unwrap();
    let new = load(file(dir.path(), "new")).unwrap();

    let check = comparability(&base, &new);
    assert_eq!(check.verdict, Verdict::SameSeries, "{check:?}");
    assert!(check.agreement > 0.99, "{check:?}");

    let rows = diff(&base, &new);
    let top = &rows.classes[0];
    assert_eq!(top.name, "LeakedRequestContext", "{rows:#?}");
    assert!(top.new_count >= LEAKS, "{top:?}");
    assert_eq!(top.deleted_count, 0, "{top:?}");
    assert!(
        top.size_delta > 0 && top.alloc_size >= LEAKS * 16,
        "{top:?}"
    );
    assert!(
        top.location.is_some(),
        "a class defined in a script has a location"
    );
    // Nothing else comes close: the leak is what changed.
    let rest: i64 = rows.classes[1..].iter().map(|c| c.size_delta.max(0)).sum();
    assert!(rest < top.size_delta / 2, "{rows:#?}");

    // Reversed arguments are noticed too.
    assert_eq!(comparability(&new, &base).verdict, Verdict::Reversed);
}

#[test]
fn snapshots_of_two_processes_are_not_comparable() {
    if !node_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    run("same", dir.path());
    run("other", dir.path());
    let base = load(file(dir.path(), "base")).unwrap();
    let other = load(file(dir.path(), "other")).unwrap();
    let check = comparability(&base, &other);
    assert_eq!(check.verdict, Verdict::DifferentSessions, "{check:?}");
    assert!(check.is_warning());
    assert!(check.agreement < 0.9, "{check:?}");
}
