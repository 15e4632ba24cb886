//! `heapgate demo`: the whole chain on one machine, with nothing but Node.js installed.
//!
//! A newcomer should see heapgate find a leak before configuring anything: a small app that
//! leaks `LeakedRequestContext` objects runs under `node --inspect` on loopback, heapgate-proxy
//! runs in this process in front of it (on free ports, with a random secret), traffic goes
//! through the proxy, two snapshots are fetched through it with tokens, and the diff names the
//! leaked class. Every process and file is cleaned up when the demo ends, Ctrl-C included: the
//! app is killed on drop, the proxy is shut down, the temp dir removed.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use heapgate_protocol::TaskId;
use heapgate_proxy::{Config as ProxyConfig, Environment, Proxy};
use heapgate_signals::Signals;
use heapgate_snapshot::{
    CompareOptions, Comparison, PathStep, compare, render_retainers, render_table,
};
use heapgate_token::{Key, Keys};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::args::{DemoArgs, FetchArgs};
use crate::{Error, Io, html, output_error};

/// The demo app: the same leaky app the test suite uses.
const APP: &str = include_str!("../../../tests/data/leaky-app.js");
const LEAKED_CLASS: &str = "LeakedRequestContext";
const TASK: &str = "demo";
/// A retainer path on one line: `global → .leakedRequestContexts → Array → [] → …`.
fn chain(path: &[PathStep]) -> String {
    path.iter()
        .enumerate()
        .map(|(i, step)| {
            let node = match &step.location {
                Some(location) => format!("{} ({location})", step.node.trim()),
                None => step.node.trim().to_owned(),
            };
            match step.edge_type.as_str() {
                _ if i == 0 => node,
                "element" | "hidden" => format!("[] → {node}"),
                "context" => format!("context variable {} → {node}", step.edge),
                _ => format!(".{} → {node}", step.edge),
            }
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

/// `--min-interval` of the sidecar `--serve` keeps up: short, but long enough that a recipe
/// taking two snapshots in a row meets the 429 a production sidecar (30 s) would give it.
const SERVE_MIN_INTERVAL: Duration = Duration::from_secs(5);

/// Objects leaked per request of the generated traffic.
const PER_REQUEST: u32 = 500;

pub(crate) fn run(args: &DemoArgs, value: &str, io: &mut Io<'_>) -> Result<(), Error> {
    let node = node_version()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the async runtime: {e}")))?;
    let dir = tempfile::Builder::new()
        .prefix("heapgate-demo-")
        .tempdir()
        .map_err(|e| Error::Failed(format!("cannot create a temp dir: {e}")))?;
    let secret = random_secret()?;
    // Listening from the start, so a signal between two steps is not missed.
    let interrupts = runtime
        .block_on(async { Signals::new() })
        .map_err(|e| Error::Failed(format!("cannot handle signals: {e}")))?;
    let mut demo = Demo {
        io,
        runtime: &runtime,
        dir: dir.path(),
        value,
        secret: &secret,
        interrupts,
    };

    demo.say(&format!(
        "starting the leaky demo app under node {node} with its inspector on loopback"
    ));
    let mut app = demo.interruptible(start_app(dir.path()))??;
    let min_interval = if args.serve {
        SERVE_MIN_INTERVAL
    } else {
        Duration::ZERO
    };
    let (stop_proxy, proxy) =
        demo.interruptible(start_proxy(&app, value, &secret, min_interval))??;
    demo.say(&format!(
        "heapgate-proxy listens on {proxy} in front of the app (task `{TASK}`)"
    ));

    let result = if args.serve {
        demo.serve(proxy, &app).map(|()| None)
    } else {
        demo.hunt(args, proxy).map(Some)
    };
    // Cleanup on every path: the proxy drains, the app is killed, the temp dir goes.
    let _ = stop_proxy.send(());
    let _ = app.child.start_kill();
    runtime.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(5), app.child.wait()).await;
    });
    if let Some(outcome) = result? {
        demo.keep_snapshots(args.keep.as_deref(), &outcome.snapshots)?;
    }
    demo.say("cleaned up: app stopped, proxy stopped, temp files removed");
    Ok(())
}

/// What the hunt found.
struct Outcome {
    snapshots: [PathBuf; 2],
}

struct Demo<'a, 'io> {
    io: &'a mut Io<'io>,
    runtime: &'a tokio::runtime::Runtime,
    dir: &'a Path,
    value: &'a str,
    secret: &'a str,
    interrupts: Signals,
}

impl Demo<'_, '_> {
    fn say(&mut self, line: &str) {
        let _ = writeln!(self.io.stderr, "heapgate demo: {line}");
    }

    /// Runs `work` on the runtime unless Ctrl-C (SIGINT) or SIGTERM comes first.
    fn interruptible<T>(&mut self, work: impl Future<Output = T>) -> Result<T, Error> {
        let interrupts = &mut self.interrupts;
        self.runtime.block_on(async {
            tokio::select! {
                value = work => Ok(value),
                signal = interrupts.recv() => Err(Error::Interrupted(signal)),
            }
        })
    }

    /// `--serve`: the app and the sidecar stay up for the README's recipes until Ctrl-C (or
    /// SIGTERM), which ends the demo normally. Addresses and the secret file go to stdout, one
    /// `name value` a line, for scripts; the same in words to stderr.
    fn serve(&mut self, proxy: SocketAddr, app: &App) -> Result<(), Error> {
        let secret_file = self.dir.join("heapgate-secret");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(crate::mode::SNAPSHOT)
            .open(&secret_file)
            .and_then(|mut file| file.write_all(self.secret.as_bytes()))
            .map_err(|e| Error::Failed(format!("cannot write the secret file: {e}")))?;
        let lines = format!(
            "proxy http://{proxy}\napp http://{}\nsecret-file {}\n",
            app.http,
            secret_file.display()
        );
        self.io
            .stdout
            .write_all(lines.as_bytes())
            .and_then(|()| self.io.stdout.flush())
            .map_err(|e| output_error(&e))?;
        self.say(&format!(
            "serving until Ctrl-C: the app at http://{}, heapgate-proxy at http://{proxy} (one \
             snapshot per {} s), secret in {}",
            app.http,
            SERVE_MIN_INTERVAL.as_secs(),
            secret_file.display()
        ));
        self.say(&format!(
            "try: HEAPGATE_SECRET_FILE={} heapgate fetch http://{proxy}",
            secret_file.display()
        ));
        let interrupts = &mut self.interrupts;
        self.runtime.block_on(interrupts.recv());
        Ok(())
    }

    /// Traffic, snapshot, more traffic, snapshot, diff.
    fn hunt(&mut self, args: &DemoArgs, proxy: SocketAddr) -> Result<Outcome, Error> {
        let requests = args.leak.div_ceil(PER_REQUEST).max(1);
        self.say(&format!(
            "warming up: {requests} requests through the proxy"
        ));
        self.interruptible(traffic(proxy, requests))??;
        let first = self.snapshot(proxy, "base")?;
        let first_profile = self.profile(proxy, "base")?;
        self.say(&format!(
            "driving traffic: {requests} requests through the proxy, each leaking {PER_REQUEST} {LEAKED_CLASS}"
        ));
        self.interruptible(traffic(proxy, requests))??;
        let second = self.snapshot(proxy, "new")?;
        let second_profile = self.profile(proxy, "new")?;

        self.say(
            "comparing the two snapshots (like DevTools' Comparison view) and finding who holds the new objects",
        );
        let options = CompareOptions {
            sort: None,
            retainer_classes: 1,
            groups_per_class: 1,
        };
        let comparison =
            compare(&[&first, &second], &options).map_err(|e| Error::Failed(e.to_string()))?;
        for check in &comparison.checks {
            if check.is_warning() {
                self.say(&format!("warning: {}", check.message));
            }
        }
        let rows = &comparison.diff;
        let mut text = render_table(rows, Some(10));
        text.push_str(&render_retainers(rows, false));
        self.io
            .stdout
            .write_all(text.as_bytes())
            .map_err(|e| output_error(&e))?;
        match rows.top(1).first() {
            Some(top) if top.name == LEAKED_CLASS => {
                self.say(&format!(
                    "found it: {LEAKED_CLASS} tops the table with {} new objects ({} bytes of their own; the class now retains {} bytes) — the leak",
                    top.new_count, top.size_delta, top.retained_size
                ));
                if let Some(group) = top.retainers.first() {
                    let holder = group.holder.as_ref();
                    if let Some(h) = holder {
                        self.say(&format!(
                            "held by: {} ({} of the new objects, {} bytes retained)",
                            h.describe(),
                            group.count,
                            group.retained_size
                        ));
                    }
                    // The chain from the holder's owner down, as the text report shows it.
                    let from = holder.map_or(0, |h| h.step - 1);
                    self.say(&format!("path: {}", chain(&group.path[from..])));
                }
            }
            Some(top) => self.say(&format!(
                "the top class is {} (expected {LEAKED_CLASS})",
                top.name
            )),
            None => self.say("the diff is empty"),
        }
        self.profile_diff(&first_profile, &second_profile)?;
        let snapshots = [first, second];
        if let Some(out) = &args.html {
            self.report(args, out, &comparison, &options, &snapshots)?;
        }
        Ok(Outcome { snapshots })
    }

    /// The HTML report of the demo's comparison, with the commands that make it again.
    fn report(
        &mut self,
        args: &DemoArgs,
        out: &Path,
        comparison: &Comparison,
        options: &CompareOptions,
        snapshots: &[PathBuf; 2],
    ) -> Result<(), Error> {
        let mut demo = vec!["heapgate".to_owned(), "demo".to_owned()];
        if args.leak != 20_000 {
            demo.extend(["--leak".to_owned(), args.leak.to_string()]);
        }
        if let Some(keep) = &args.keep {
            demo.extend(["--keep".to_owned(), keep.display().to_string()]);
        }
        demo.extend(["--html".to_owned(), out.display().to_string()]);
        let mut commands = vec![html::command_line(demo)];
        if let Some(keep) = &args.keep {
            commands.push(html::diff_command(
                &kept_paths(keep, snapshots),
                options.sort,
                options.retainer_classes,
                None,
                out,
            ));
        }
        let warnings: Vec<String> = comparison
            .checks
            .iter()
            .filter(|c| c.is_warning())
            .map(|c| c.message.clone())
            .collect();
        let context = html::Context {
            files: snapshots,
            warnings: &warnings,
            commands: &commands,
            now: (self.io.now)(),
        };
        crate::diff::write_report(out, comparison, options.sort, None, &context, self.io)
    }

    /// One snapshot through the proxy with `heapgate fetch`'s own code, into a subdirectory.
    fn snapshot(&mut self, proxy: SocketAddr, name: &str) -> Result<PathBuf, Error> {
        self.say(&format!(
            "taking the {name} snapshot through the proxy with a fresh token"
        ));
        self.fetch(proxy, name, false)
    }

    /// The sampling heap profile through the proxy with `heapgate fetch --profile`'s own code.
    fn profile(&mut self, proxy: SocketAddr, name: &str) -> Result<PathBuf, Error> {
        self.say(&format!(
            "taking the {name} heap profile through the proxy with a profile token (cheap: no snapshot)"
        ));
        self.fetch(proxy, &format!("{name}-profile"), true)
    }

    /// One file through the proxy with `heapgate fetch`'s code, into subdirectory `dir`.
    fn fetch(&mut self, proxy: SocketAddr, dir: &str, profile: bool) -> Result<PathBuf, Error> {
        let args = FetchArgs {
            base_url: format!("http://{proxy}"),
            task: Some(TASK.to_owned()),
            count: 1,
            interval: Duration::ZERO.into(),
            out: self.dir.join(dir),
            path: None,
            profile,
            format: None,
            max_attempts: 5,
            keep_compressed: false,
            no_compression: false,
            html: None,
        };
        let keys = demo_keys(self.secret)?;
        let mut paths = Vec::new();
        let mut io = Io {
            now: self.io.now,
            env: self.io.env,
            stdout: &mut paths,
            stderr: &mut *self.io.stderr,
            stderr_is_terminal: self.io.stderr_is_terminal,
        };
        crate::fetch::run(&args, &keys, self.value, &mut io)?;
        let path = String::from_utf8_lossy(&paths)
            .lines()
            .next()
            .map(PathBuf::from);
        path.ok_or_else(|| Error::Failed(format!("the {} was not saved", args.instrument())))
    }

    /// Which function allocated what is still alive: the two profiles' diff, next to the
    /// snapshot's answer of who holds it.
    fn profile_diff(&mut self, first: &Path, second: &Path) -> Result<(), Error> {
        self.say("comparing the two heap profiles: which function allocated what is still alive");
        let read = |p: &Path| {
            heapgate_profile::read(p).map_err(|e| Error::Failed(format!("{}: {e}", p.display())))
        };
        let comparison = heapgate_profile::compare(&[read(first)?, read(second)?]);
        let text = heapgate_profile::render_diff(&comparison, 5);
        self.io
            .stdout
            .write_all(text.as_bytes())
            .map_err(|e| output_error(&e))?;
        if let Some(top) = comparison.sites.first().filter(|s| s.growth_bytes > 0) {
            self.say(&format!(
                "allocated by: {} (+{} live bytes sampled since the base profile)",
                top.frame, top.growth_bytes
            ));
        }
        Ok(())
    }

    fn keep_snapshots(
        &mut self,
        keep: Option<&Path>,
        snapshots: &[PathBuf; 2],
    ) -> Result<(), Error> {
        let Some(keep) = keep else { return Ok(()) };
        std::fs::create_dir_all(keep)
            .map_err(|e| Error::Failed(format!("cannot create {}: {e}", keep.display())))?;
        // Both snapshots can carry the same second in their names: label them, and never
        // replace a file that is already there.
        for (path, target) in snapshots.iter().zip(kept_paths(keep, snapshots)) {
            let copied = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)
                .and_then(|mut file| std::io::copy(&mut std::fs::File::open(path)?, &mut file));
            copied.map_err(|e| Error::Failed(format!("cannot keep {}: {e}", target.display())))?;
            self.say(&format!("kept {}", target.display()));
        }
        Ok(())
    }
}

/// Where `--keep DIR` copies the snapshots: both can carry the same second in their names, so
/// they are labelled.
fn kept_paths(keep: &Path, snapshots: &[PathBuf; 2]) -> Vec<PathBuf> {
    ["base", "new"]
        .iter()
        .zip(snapshots)
        .map(|(label, path)| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            keep.join(format!("{label}-{name}"))
        })
        .collect()
}

/// `node --version`, or the configuration error that ends the demo with status 2.
fn node_version() -> Result<String, Error> {
    std::process::Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .ok_or_else(|| {
            Error::Config(
                "heapgate demo needs Node.js: no `node` on PATH (install Node.js 18 or newer)"
                    .to_owned(),
            )
        })
}

fn random_secret() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Failed(format!("no randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn demo_keys(secret: &str) -> Result<Keys, Error> {
    Key::new(secret.as_bytes())
        .and_then(|key| Keys::new(vec![key]))
        .map_err(|e| Error::Failed(e.to_string()))
}

/// The running demo app.
struct App {
    child: Child,
    http: SocketAddr,
    inspector: SocketAddr,
}

async fn start_app(dir: &Path) -> Result<App, Error> {
    let script = dir.join("leaky-app.js");
    std::fs::write(&script, APP)
        .map_err(|e| Error::Failed(format!("cannot write the demo app: {e}")))?;
    let mut child = Command::new("node")
        .arg("--inspect=127.0.0.1:0")
        .arg(&script)
        .env("PORT", "0")
        .env("LEAK_AT_START", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Failed(format!("cannot start node: {e}")))?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
        return Err(Error::Failed("node's output is not readable".to_owned()));
    };
    let ports = async {
        let (mut out, mut err) = (
            BufReader::new(stdout).lines(),
            BufReader::new(stderr).lines(),
        );
        let (mut http, mut inspector) = (None, None);
        while http.is_none() || inspector.is_none() {
            tokio::select! {
                Ok(Some(line)) = out.next_line(), if http.is_none() => {
                    http = line.strip_prefix("listening ").and_then(|p| p.trim().parse::<u16>().ok());
                }
                Ok(Some(line)) = err.next_line(), if inspector.is_none() => {
                    inspector = line
                        .strip_prefix("Debugger listening on ws://")
                        .and_then(|rest| rest.split('/').next())
                        .and_then(|addr| addr.parse::<SocketAddr>().ok());
                }
                else => break,
            }
        }
        // Keep draining node's output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
        tokio::spawn(async move { while let Ok(Some(_)) = err.next_line().await {} });
        http.zip(inspector)
    };
    match tokio::time::timeout(Duration::from_secs(20), ports).await {
        Ok(Some((port, inspector))) => Ok(App {
            child,
            http: SocketAddr::from(([127, 0, 0, 1], port)),
            inspector,
        }),
        _ => Err(Error::Failed(
            "the demo app did not start (no ports reported by node)".to_owned(),
        )),
    }
}

/// heapgate-proxy in this process, in front of `app`, built in code with the keys in memory;
/// returns its stop switch and address.
async fn start_proxy(
    app: &App,
    value: &str,
    secret: &str,
    min_interval: Duration,
) -> Result<(oneshot::Sender<()>, SocketAddr), Error> {
    let failed = |e: &dyn std::fmt::Display| Error::Failed(format!("cannot start the proxy: {e}"));
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let config = ProxyConfig::builder(&format!("http://{}", app.http), demo_keys(secret)?)
        .inspector(&format!("http://{}", app.inspector))
        .task_id(TaskId::new(TASK).map_err(|e| failed(&e))?)
        .min_interval(min_interval)
        .path("/heapdump")
        // A finer sampling interval than production's 512 KiB: the demo leaks only megabytes.
        .profile_interval(64 * 1024, Duration::from_secs(60))
        .profile_min_interval(Duration::ZERO)
        .value(value)
        .listen(loopback, loopback)
        .build()
        .map_err(|e| failed(&e))?;
    let proxy = Proxy::bind(config).await.map_err(|e| failed(&e))?;
    let addr = proxy.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async {
        let _ = stopped.await;
    };
    tokio::spawn(proxy.run(Environment::default(), shutdown));
    Ok((stop, addr))
}

/// `requests` GETs of `/leak` through the proxy, each leaking [`PER_REQUEST`] objects.
async fn traffic(proxy: SocketAddr, requests: u32) -> Result<(), Error> {
    // fetch's client: plain http, no pooling (each request a new connection, like a balancer sees).
    let client = crate::fetch::attempt::client(false)?;
    for _ in 0..requests {
        let url = format!("http://{proxy}/leak?n={PER_REQUEST}");
        let response = client
            .get(&url)
            .send()
            .await
            .map_err(|e| Error::Failed(format!("traffic through the proxy failed: {e}")))?;
        if !response.status().is_success() {
            return Err(Error::Failed(format!(
                "traffic through the proxy got {}",
                response.status()
            )));
        }
    }
    Ok(())
}
