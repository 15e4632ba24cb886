//! Leak watch end to end: a real Node app whose heap grows steadily, the real proxy watching it
//! over the inspector, series stored in a directory, read back with the real `heapgate` CLI.
//! Every capture stores the sampling heap profile first; snapshots join where the headroom rule
//! lets them. Faults: the store unwritable (then writable again), the app restarted mid-series,
//! a memory limit the snapshots do not fit in.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use heapgate_tests::{
    LEAKED_CLASS, NodeApp, Proc, ProxyProc, RequestOptions, assert_valid_snapshot, free_port,
    http_get, http_request, moto_or_skip, node_or_skip, workspace_binary,
};

const SECRET: &str = "watch-secret-0123456789abcdef0123";
const TASK: &str = "watch-task";
/// Objects the app leaks per second: about 1.5 MB/s of heap.
const LEAK_RATE: &str = "10000";
/// Longest wait for anything (the machine may be slow; this is a deadline, not a measurement).
const DEADLINE: Duration = Duration::from_secs(300);

fn start_app(node: &Path) -> NodeApp {
    NodeApp::start(
        node,
        &[("LEAK_PER_SECOND", LEAK_RATE), ("LEAK_AT_START", "0")],
    )
}

/// The proxy watching `app`, storing into `store`; `overrides` are `(flag, value)` pairs that
/// replace or add to the defaults below.
fn start_proxy(app: &NodeApp, store: &str, overrides: &[(&str, &str)]) -> ProxyProc {
    start_proxy_env(app, store, overrides, &[])
}

fn start_proxy_env(
    app: &NodeApp,
    store: &str,
    overrides: &[(&str, &str)],
    env: &[(&str, &str)],
) -> ProxyProc {
    let upstream = format!("http://{}", app.addr());
    let inspector = format!("http://{}", app.inspector);
    let mut flags: Vec<(&str, &str)> = vec![
        ("--upstream", &upstream),
        ("--inspector", &inspector),
        ("--task-id", TASK),
        ("--min-interval", "1s"),
        ("--watch-every", "1s"),
        ("--watch-growth", "20MiB"),
        ("--watch-window", "20s"),
        ("--watch-count", "2"),
        ("--watch-interval", "5s"),
        ("--store", store),
    ];
    for &(flag, value) in overrides {
        match flags.iter_mut().find(|(f, _)| *f == flag) {
            Some(entry) => entry.1 = value,
            None => flags.push((flag, value)),
        }
    }
    let args: Vec<&str> = flags.iter().flat_map(|&(f, v)| [f, v]).collect();
    let mut env = env.to_vec();
    env.push(("HEAPGATE_SECRET", SECRET));
    ProxyProc::start(&workspace_binary("heapgate-proxy"), &args, &env)
}

/// The value of the sample `name` (with its labels, as printed) on `/metrics`.
fn metric(proxy: &ProxyProc, name: &str) -> Option<f64> {
    let text = http_get(proxy.admin, "/metrics").ok()?.text();
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Polls `check` every 250 ms until it gives a value; panics after [`DEADLINE`].
fn wait_for<T>(what: &str, proxy: &ProxyProc, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {what}; proxy output:\n{}",
            proxy.proc.output()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The series folders under `store/TASK`.
fn series_dirs(store: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(store.join(TASK))
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// The manifest of `dir`, once it says how the series ended.
fn ended_manifest(dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read(dir.join("manifest.json")).ok()?;
    let manifest: serde_json::Value = serde_json::from_slice(&text).ok()?;
    (!manifest["ended"].is_null()).then_some(manifest)
}

fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    files_ending(dir, ".heapsnapshot.zst")
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

/// The profile's live bytes by function name (self sizes summed over the tree).
fn profile_by_function(profile: &serde_json::Value) -> Vec<(String, u64)> {
    let mut sums: std::collections::BTreeMap<String, u64> = Default::default();
    let mut stack = vec![&profile["head"]];
    while let Some(node) = stack.pop() {
        let name = node["callFrame"]["functionName"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        *sums.entry(name).or_default() += node["selfSize"].as_u64().unwrap_or(0);
        stack.extend(node["children"].as_array().into_iter().flatten());
    }
    let mut sums: Vec<(String, u64)> = sums.into_iter().collect();
    sums.sort_by_key(|s| std::cmp::Reverse(s.1));
    sums
}

#[test]
fn one_series_lands_in_a_directory_and_diff_names_the_leak() {
    let Some(node) = node_or_skip("watch::one_series_lands_in_a_directory") else {
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let app = start_app(&node);
    let proxy = start_proxy(&app, store.path().to_str().unwrap(), &[]);

    // The gauges come with the first samples.
    let used = wait_for("the heap gauge", &proxy, || {
        metric(&proxy, "heapgate_app_heap_used_bytes").filter(|v| *v > 0.0)
    });
    assert!(used > 1e6, "heap used {used}");
    assert!(metric(&proxy, "heapgate_app_heap_total_bytes").unwrap_or(0.0) >= used);
    assert!(metric(&proxy, "heapgate_app_rss_bytes").unwrap_or(0.0) > used);

    let manifest = wait_for("a finished series", &proxy, || {
        series_dirs(store.path())
            .first()
            .and_then(|d| ended_manifest(d))
    });
    assert_eq!(manifest["ended"]["reason"], "complete", "{manifest:#}");
    assert_eq!(manifest["task"], TASK);
    assert_eq!(manifest["captures"].as_array().map(Vec::len), Some(2));
    for capture in manifest["captures"].as_array().unwrap() {
        assert!(capture["profile"].as_str().is_some(), "{manifest:#}");
        assert!(capture["file"].as_str().is_some(), "{manifest:#}");
    }
    let trigger = &manifest["trigger"];
    assert!(
        trigger["floor_to_bytes"].as_u64().unwrap() - trigger["floor_from_bytes"].as_u64().unwrap()
            >= 20 << 20
    );

    // The app keeps leaking: the trigger fires again, and the cooldown holds it back.
    wait_for("the cooldown guard", &proxy, || {
        metric(&proxy, "heapgate_watch_held_total{reason=\"cooldown\"}")
    });
    let dirs = series_dirs(store.path());
    assert_eq!(dirs.len(), 1, "exactly one series: {dirs:?}");
    assert_eq!(
        metric(&proxy, "heapgate_watch_series_total{reason=\"complete\"}"),
        Some(1.0)
    );

    let files = snapshot_files(&dirs[0]);
    assert_eq!(files.len(), 2, "{files:?}");
    let profiles = files_ending(&dirs[0], ".heapprofile");
    assert_eq!(profiles.len(), 2, "{profiles:?}");
    let listing = Command::new(workspace_binary("heapgate"))
        .args(["list", store.path().to_str().unwrap()])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("evidence: 2 profile(s), 2 snapshot(s)\n"),
        "{listing}"
    );
    let bytes = std::fs::read(&files[1]).unwrap();
    let json = zstd::decode_all(&bytes[..]).unwrap();
    assert_valid_snapshot(&serde_json::from_slice(&json).unwrap());

    let out = Command::new(workspace_binary("heapgate"))
        .arg("diff")
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let top = stdout.lines().take(4).collect::<Vec<_>>().join("\n");
    assert!(top.contains(LEAKED_CLASS), "diff's top rows:\n{top}");

    // A guard holding the trigger back is logged once when it starts holding, with its field
    // once: not on every sample while the series runs (5 s apart here, a sample a second).
    let log = proxy.proc.output();
    let held: Vec<&str> = log.lines().filter(|l| l.contains("held back")).collect();
    for line in &held {
        assert_eq!(line.matches("\"guard\":").count(), 1, "{line}");
    }
    for guard in ["series_running", "cooldown"] {
        let lines = held.iter().filter(|l| l.contains(guard)).count();
        assert!(
            lines <= 1,
            "{guard} logged {lines} times:\n{}",
            held.join("\n")
        );
    }
    let running = held.iter().find(|l| l.contains("series_running"));
    assert!(
        running.is_none_or(|l| !l.contains("WARN")),
        "a series running is no warning: {running:?}"
    );
    drop(app);
}

#[test]
fn an_unwritable_store_is_retried_reported_and_the_next_trigger_works() {
    let Some(node) = node_or_skip("watch::an_unwritable_store") else {
        return;
    };
    let store = tempfile::tempdir().unwrap();
    // A file where the task's folder should be: every upload fails to start.
    let blocker = store.path().join(TASK);
    std::fs::write(&blocker, b"not a folder").unwrap();
    let app = start_app(&node);
    let proxy = start_proxy(
        &app,
        store.path().to_str().unwrap(),
        &[("--watch-cooldown", "1s"), ("--watch-count", "1")],
    );
    wait_for("a series that failed to store", &proxy, || {
        metric(
            &proxy,
            "heapgate_watch_series_total{reason=\"storage_failed\"}",
        )
    });
    assert_eq!(
        metric(&proxy, "heapgate_watch_upload_retries_total"),
        Some(3.0)
    );
    assert!(
        metric(&proxy, "heapgate_watch_uploads_total{outcome=\"failed\"}").unwrap_or(0.0) >= 1.0
    );
    assert!(
        proxy
            .proc
            .output()
            .contains("cannot start the upload; no snapshot taken"),
        "{}",
        proxy.proc.output()
    );
    // No snapshot was taken for it: the app paid nothing.
    assert_eq!(
        metric(&proxy, "heapgate_watch_stored_bytes_total"),
        Some(0.0)
    );

    std::fs::remove_file(&blocker).unwrap();
    let manifest = wait_for("a series once the store works", &proxy, || {
        series_dirs(store.path())
            .first()
            .and_then(|d| ended_manifest(d))
    });
    assert_eq!(manifest["ended"]["reason"], "complete", "{manifest:#}");
    drop(app);
}

#[test]
fn an_app_restarted_mid_series_ends_it() {
    let Some(node) = node_or_skip("watch::an_app_restarted_mid_series") else {
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let mut app = start_app(&node);
    let inspect_port = app.inspector.port();
    let proxy = start_proxy(
        &app,
        store.path().to_str().unwrap(),
        &[("--watch-interval", "30s")],
    );
    let dir = wait_for("the first capture", &proxy, || {
        let dir = series_dirs(store.path()).into_iter().next()?;
        (snapshot_files(&dir).len() == 1 && dir.join("manifest.json").exists()).then_some(dir)
    });
    app.proc.kill();
    let app = NodeApp::start_on(&node, inspect_port, &[("LEAK_AT_START", "0")]);
    let manifest = wait_for("the series to end", &proxy, || ended_manifest(&dir));
    assert_eq!(manifest["ended"]["reason"], "app_restarted", "{manifest:#}");
    assert_eq!(manifest["captures"].as_array().map(Vec::len), Some(1));
    assert_eq!(snapshot_files(&dir).len(), 1);
    drop(app);
}

/// Snapshots that would not fit are held back, but the series still stores its profiles, and the
/// profile names the leaking function.
#[test]
fn a_tight_memory_limit_keeps_the_profiles_and_holds_the_snapshots_back() {
    let Some(node) = node_or_skip("watch::a_tight_memory_limit") else {
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let app = start_app(&node);
    // 15 × a heap of 20+ MiB does not fit in 128 MiB.
    let proxy = start_proxy(
        &app,
        store.path().to_str().unwrap(),
        &[("--app-memory-limit", "128MiB")],
    );
    let manifest = wait_for("a finished series", &proxy, || {
        series_dirs(store.path())
            .first()
            .and_then(|d| ended_manifest(d))
    });
    assert_eq!(manifest["ended"]["reason"], "complete", "{manifest:#}");
    let captures = manifest["captures"].as_array().unwrap();
    assert_eq!(captures.len(), 2);
    for capture in captures {
        assert!(capture["file"].is_null(), "{manifest:#}");
        let why = capture["snapshot_held_back"].as_str().unwrap();
        assert!(why.contains("against the limit 128 MiB"), "{why}");
    }
    assert!(metric(&proxy, "heapgate_watch_held_total{reason=\"headroom\"}").is_some());
    let dir = &series_dirs(store.path())[0];
    assert!(snapshot_files(dir).is_empty());
    let profiles = files_ending(dir, ".heapprofile");
    assert_eq!(profiles.len(), 2);
    let profile: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&profiles[1]).unwrap()).unwrap();
    let top = profile_by_function(&profile);
    assert!(
        top.iter()
            .take(3)
            .any(|(name, _)| name == "leak" || name == "LeakedRequestContext"),
        "top allocating functions: {top:?}"
    );
    let listing = Command::new(workspace_binary("heapgate"))
        .args(["list", store.path().to_str().unwrap()])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("evidence: 2 profile(s), 0 snapshot(s) (2 held back by the headroom rule"),
        "{listing}"
    );
    drop(app);
}

#[test]
fn one_series_lands_in_s3_and_reads_back_from_s3_urls() {
    let Some(node) = node_or_skip("watch::one_series_lands_in_s3") else {
        return;
    };
    let Some(moto) = moto_or_skip("watch::one_series_lands_in_s3") else {
        return;
    };
    let port = free_port();
    let _moto = Proc::spawn(
        Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("PYTHONUNBUFFERED", "1"),
    );
    let s3 = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    while http_get(s3, "/").is_err() {
        assert!(start.elapsed() < DEADLINE, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    let put = RequestOptions {
        method: "PUT",
        ..RequestOptions::default()
    };
    assert_eq!(
        http_request(s3, "/heapgate-test", &put).unwrap().status,
        200
    );
    let endpoint = format!("http://{s3}");
    let aws: [(&str, &str); 4] = [
        ("AWS_ENDPOINT_URL", &endpoint),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let app = start_app(&node);
    let proxy = start_proxy_env(&app, "s3://heapgate-test/leaks", &[], &aws);
    wait_for("a finished series in S3", &proxy, || {
        metric(&proxy, "heapgate_watch_series_total{reason=\"complete\"}")
    });
    drop(app);

    let heapgate = |args: &[&str]| {
        let out = Command::new(workspace_binary("heapgate"))
            .args(args)
            .envs(aws)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "heapgate {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let listing = heapgate(&["list", "s3://heapgate-test/leaks"]);
    assert!(listing.contains(&format!("task {TASK}")), "{listing}");
    assert!(listing.contains("ended: complete"), "{listing}");
    let urls: Vec<&str> = listing
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("s3://") && l.ends_with(".heapsnapshot.zst"))
        .collect();
    assert_eq!(urls.len(), 2, "{listing}");
    assert!(urls[0].starts_with(&format!("s3://heapgate-test/leaks/{TASK}/")));

    let mut args = vec!["diff"];
    args.extend(&urls);
    let diff = heapgate(&args);
    let top = diff.lines().take(4).collect::<Vec<_>>().join("\n");
    assert!(top.contains(LEAKED_CLASS), "diff's top rows:\n{top}");
    let summary = heapgate(&["summary", urls[1]]);
    assert!(summary.contains(LEAKED_CLASS), "{summary}");
}
