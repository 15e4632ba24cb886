//! `heapgate demo` end to end on the real binary: it finds the leak, and leaves nothing behind
//! (no temp files, no node process), also when interrupted.

use heapgate_tests::{Cmd, Proc, node_or_skip};
use std::path::Path;

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(needle))
        .collect()
}

/// `heapgate demo` with its temp files under `tmp`.
fn demo(tmp: &Path) -> Cmd {
    let mut command = Cmd::heapgate();
    command.arg("demo").env("TMPDIR", tmp);
    command
}

#[test]
fn demo_finds_the_leak_and_cleans_up() {
    let Some(_node) = node_or_skip("demo::demo_finds_the_leak_and_cleans_up") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("kept");
    let output = demo(tmp.path())
        .arg("--keep")
        .arg(&keep)
        .command()
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let mut lines = stdout.lines();
    assert!(
        lines.next().unwrap_or_default().starts_with("Class"),
        "{stdout}"
    );
    let top = lines.next().unwrap_or_default();
    assert!(
        top.starts_with("LeakedRequestContext"),
        "the leaked class tops the table:\n{stdout}"
    );
    assert!(top.contains("20000"), "{top}");
    assert!(
        stderr.contains("found it: LeakedRequestContext"),
        "{stderr}"
    );
    // The heap profiles, taken with profile tokens through the proxy, name the function that
    // allocated the leaked objects at V8's position for it (1-based line:column of `function
    // leak(`), next to who holds them.
    let app = std::fs::read_to_string(heapgate_tests::data("leaky-app.js")).unwrap();
    let line = app
        .lines()
        .position(|l| l.starts_with("function leak("))
        .unwrap()
        + 1;
    let site = format!("leaky-app.js:{line}:{}", "function leak".len() + 1);
    let profile_top = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Bytes Delta"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        profile_top.trim_start().starts_with('+') && profile_top.ends_with(&site),
        "the profile diff names {site}:\n{stdout}"
    );
    assert!(stderr.contains("allocated by: leak "), "{stderr}");
    // The closing lines name the holder in one line, then the path from it.
    assert!(
        stderr.contains("held by: global leakedRequestContexts → Array (20000 of the new objects"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "path: global / → .leakedRequestContexts → Array → [] → LeakedRequestContext"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("cleaned up"), "{stderr}");
    // Only the kept copies remain in TMPDIR: the demo's temp dir is gone.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["kept"], "{left:?}");
    let mut kept: Vec<String> = std::fs::read_dir(&keep)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert!(
        kept[0].starts_with("base-demo-") && kept[1].starts_with("new-demo-"),
        "{kept:?}"
    );
    assert_eq!(
        std::fs::read_dir(&keep).unwrap().count(),
        2,
        "both snapshots kept"
    );
    assert!(
        processes_mentioning(tmp.path().to_str().unwrap()).is_empty(),
        "the demo app was stopped"
    );
}

#[test]
fn interrupting_the_demo_cleans_up() {
    let Some(_node) = node_or_skip("demo::interrupting_the_demo_cleans_up") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // Proc kills the demo and anything it started if this test fails half-way.
    let mut demo = Proc::spawn(demo(tmp.path()).command());
    demo.wait_for("the demo to get going", |line| {
        line.contains("heapgate-proxy listens").then_some(())
    });
    demo.signal("INT");
    assert_eq!(
        demo.wait_exit(std::time::Duration::from_secs(30)),
        Some(130),
        "{}",
        demo.output()
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
    // kill_on_drop reaps asynchronously; give the kernel a moment to drop the process.
    for _ in 0..50 {
        if processes_mentioning(tmp.path().to_str().unwrap()).is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "the demo app outlived the demo: {:?}",
        processes_mentioning(tmp.path().to_str().unwrap())
    );
}

#[test]
fn demo_without_node_exits_2_with_a_clear_message() {
    let empty = tempfile::tempdir().unwrap();
    let output = Cmd::heapgate()
        .arg("demo")
        .env("PATH", empty.path())
        .expect_code(2);
    let stderr = output.stderr;
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("needs Node.js"), "{stderr}");
}
