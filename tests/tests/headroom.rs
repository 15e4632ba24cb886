//! The headroom rule under a real memory limit: the leaky app (150 MiB of heap, ~230 MiB RSS) in a
//! memory cgroup of 800 MiB, heapgate-proxy outside it finding the limit through the app's pid.
//! The sidecar refuses the snapshot that would not fit (507, saying why), serves the sampling
//! heap profile whose top entry is the leaking line, and the app lives; with
//! `--unsafe-snapshot-without-headroom` the same snapshot gets the app OOM-killed by the kernel —
//! which shows the limit is real and the refusal is what saved it.
//!
//! Needs root and a writable memory cgroup (v2 `/sys/fs/cgroup` with the memory controller, or
//! v1 `/sys/fs/cgroup/memory`); skips loudly otherwise, and fails under CI=true.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use heapgate_tests::{
    NodeApp, ProxyProc, http_get, in_ci, loud, node_or_skip, node24_or_skip, profile_token_now,
    token_now,
};

const SECRET: &str = "headroom-secret-0123456789abcdef";
const LIMIT: u64 = 800 << 20;
const DEADLINE: Duration = Duration::from_secs(180);

/// A memory cgroup made for one test; its processes are killed and it is removed on drop.
struct Cgroup {
    dir: PathBuf,
    v2: bool,
}

impl Cgroup {
    /// A new cgroup limited to `limit` bytes (no swap), v2 if the machine runs it, else v1.
    fn create(name: &str, limit: u64) -> Result<Cgroup, String> {
        let v2_root = Path::new("/sys/fs/cgroup");
        let v2 = std::fs::read_to_string(v2_root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
        let (dir, limit_file) = if v2 {
            (v2_root.join(name), "memory.max")
        } else {
            (v2_root.join("memory").join(name), "memory.limit_in_bytes")
        };
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let cgroup = Cgroup { dir, v2 };
        cgroup.write(limit_file, &limit.to_string())?;
        if v2 {
            // No swap, so the limit is the memory the app can have.
            let _ = cgroup.write("memory.swap.max", "0");
        } else if cgroup.dir.join("memory.memsw.limit_in_bytes").exists() {
            cgroup.write("memory.memsw.limit_in_bytes", &limit.to_string())?;
        }
        Ok(cgroup)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        std::fs::write(self.dir.join(file), value)
            .map_err(|e| format!("writing {value} to {}/{file}: {e}", self.dir.display()))
    }

    fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// Processes the kernel OOM-killed in this cgroup.
    fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The most memory charged to the cgroup so far, when the kernel says.
    fn peak(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        std::fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            let members = std::fs::read_to_string(self.procs()).unwrap_or_default();
            for pid in members.split_whitespace() {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", pid])
                    .status();
            }
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("could not remove cgroup {}", self.dir.display());
    }
}

/// A fresh memory cgroup, or `None` after a loud skip (a failure under CI=true).
fn cgroup_or_skip(test: &str, limit: u64) -> Option<Cgroup> {
    let name = format!("heapgate-test-{}-{test}", std::process::id());
    match Cgroup::create(&name, limit) {
        Ok(cgroup) => Some(cgroup),
        Err(e) => {
            assert!(
                !in_ci(),
                "{test}: no writable memory cgroup ({e}), and CI=true forbids skipping"
            );
            loud(&format!(
                "SKIPPED headroom::{test}: no writable memory cgroup (v2 or v1): {e}"
            ));
            None
        }
    }
}

/// The node with the largest self size in a `.heapprofile`: (function, url, line, column, bytes),
/// line and column 1-based.
fn top_entry(profile: &serde_json::Value) -> (String, String, i64, i64, u64) {
    let mut best = None::<(u64, &serde_json::Value)>;
    let mut stack = vec![&profile["head"]];
    while let Some(node) = stack.pop() {
        let size = node["selfSize"].as_u64().unwrap_or(0);
        if best.is_none_or(|(b, _)| size > b) {
            best = Some((size, node));
        }
        stack.extend(node["children"].as_array().into_iter().flatten());
    }
    let (size, node) = best.expect("a profile with a head");
    let frame = &node["callFrame"];
    (
        frame["functionName"].as_str().unwrap_or("").to_owned(),
        frame["url"].as_str().unwrap_or("").to_owned(),
        frame["lineNumber"].as_i64().unwrap_or(-2) + 1,
        frame["columnNumber"].as_i64().unwrap_or(-2) + 1,
        size,
    )
}

/// The 1-based line of `needle` in the leaky app.
fn app_line(needle: &str) -> i64 {
    let text = std::fs::read_to_string(heapgate_tests::data("leaky-app.js")).unwrap();
    let index = text.lines().position(|l| l.contains(needle)).unwrap();
    i64::try_from(index).unwrap() + 1
}

#[test]
fn node20_a_snapshot_that_would_not_fit_is_refused_and_the_profile_names_the_leak() {
    if let Some(node) = node_or_skip("headroom::node20_a_snapshot_that_would_not_fit") {
        refused_then_killed(&node, "node20");
    }
}

#[test]
fn node24_a_snapshot_that_would_not_fit_is_refused_and_the_profile_names_the_leak() {
    if let Some(node) = node24_or_skip("headroom::node24_a_snapshot_that_would_not_fit") {
        refused_then_killed(&node, "node24");
    }
}

/// The whole story on `node`: refused, profiled, alive; then overridden and OOM-killed.
fn refused_then_killed(node: &Path, name: &str) {
    let Some(cgroup) = cgroup_or_skip(name, LIMIT) else {
        return;
    };
    let mut app = NodeApp::start_in_cgroup(node, &cgroup.procs(), &[("LEAK_AT_START", "0")]);
    let members = std::fs::read_to_string(cgroup.procs()).unwrap();
    assert!(
        members
            .split_whitespace()
            .any(|p| p == app.proc.pid().to_string()),
        "the app runs in the cgroup: {members:?}"
    );
    // No --app-memory-limit: the sidecar finds the app's cgroup itself.
    let proxy = ProxyProc::in_front_of(&app, SECRET, &["--task-id", "cg", "--min-interval", "1s"]);
    // Sampling runs from the sidecar's start; then the app leaks 150 MiB.
    proxy.proc.wait_for("the sampling session", |l| {
        l.contains("inspector session opened").then_some(())
    });
    assert!(
        app.get("/leak?n=1000000").contains("1000000"),
        "the app leaked"
    );

    let refused = http_get(
        proxy.listen,
        &format!("/heapdump?hash={}", token_now(SECRET)),
    )
    .unwrap();
    let body = refused.text();
    assert_eq!(refused.status, 507, "{body}\n{}", proxy.proc.output());
    assert_eq!(refused.header("x-heapgate-task"), Some("cg"));
    assert!(
        body.contains("would not fit in this task's memory"),
        "{body}"
    );
    assert!(
        body.contains("against the limit 800 MiB (cgroup "),
        "{body}"
    );
    assert!(body.contains("/heapprofile"), "{body}");
    proxy
        .metric_reaches(
            "heapgate_snapshots_total{outcome=\"headroom\"} 1",
            Duration::from_secs(5),
        )
        .unwrap();

    let answer = http_get(
        proxy.listen,
        &format!("/heapprofile?hash={}", profile_token_now(SECRET)),
    )
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("x-heapgate-task"), Some("cg"));
    let profile: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    let (function, url, line, column, bytes) = top_entry(&profile);
    // V8 names each stack frame by its function and where the function starts.
    let leaking = app_line("function leak(count, url)");
    assert!(
        function == "leak" && url.ends_with("leaky-app.js") && line == leaking,
        "top entry {function} {url}:{line}:{column} ({bytes} bytes); the leak is in leak() at line {leaking}"
    );
    assert!(bytes > 20 << 20, "{bytes} live bytes at the top entry");

    // The app lives, and never came near its limit.
    assert_eq!(app.proc.wait_exit(Duration::from_millis(100)), None);
    assert!(app.get("/memory").contains("heapUsed"));
    assert_eq!(cgroup.oom_kills(), 0);
    if let Some(peak) = cgroup.peak() {
        assert!(peak < LIMIT / 2, "cgroup peak {} MiB", peak >> 20);
    }
    drop(proxy);

    // The same snapshot with the override: the kernel kills the app mid-snapshot.
    let proxy = ProxyProc::in_front_of(
        &app,
        SECRET,
        &["--task-id", "cg", "--unsafe-snapshot-without-headroom"],
    );
    let listen = proxy.listen;
    let request = std::thread::spawn(move || {
        http_get(listen, &format!("/heapdump?hash={}", token_now(SECRET))).map(|r| r.status)
    });
    let start = Instant::now();
    let exit = loop {
        if let Some(code) = app.proc.wait_exit(Duration::from_millis(200)) {
            break code;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the app survived the override's snapshot; proxy:\n{}",
            proxy.proc.output()
        );
    };
    assert!(matches!(exit, -1 | 137), "app exit {exit}");
    assert!(cgroup.oom_kills() >= 1, "oom_kill {}", cgroup.oom_kills());
    let output = proxy.proc.output();
    assert!(output.contains("taken anyway"), "{output}");
    drop(proxy);
    let _ = request.join();
}
