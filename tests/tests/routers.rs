//! Differential test against real Node routers: no spelling of the snapshot path may reach an
//! app's own `/heapdump` route through `heapgate-proxy`.
//!
//! `tests/data/routers/apps.js` runs Express 4, Express 5, Fastify 5 (permissive router options),
//! Koa + @koa/router, Hono on @hono/node-server (default and `strict: false`), plain `http` apps
//! routing on the WHATWG URL parser, and apps that decode the whole target before parsing it
//! (`decodeURIComponent` or `decodeURI`, then `new URL` or `url.parse`), each with an unguarded `GET /heapdump` (which every one
//! also runs for HEAD). A generated corpus of request-target spellings (case, percent-escapes, dot
//! segments, repeated slashes, backslashes, `;params`, absolute form, queries; GET and some HEAD)
//! is sent as raw bytes — any HTTP client library would normalise them:
//! - directly to each app, to record what each router resolves (the corpus must hit every one);
//! - through the proxy with `--source inspector`, `--source upstream` and `--source gateway`,
//!   where the apps' `/heapdump` hit counts must not move, while ordinary paths still pass.
//!
//! Needs node and `npm ci` in `tests/data/routers`; without them it prints a loud SKIPPED
//! notice, and under CI=true it fails.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use heapgate_tests::{
    Proc, ProxyProc, data, exchange_with, http_get, in_ci, loud, node_or_skip, token_now,
};

const SECRET: &str = "routers-secret-0123456789abcdef";
const APPS: [&str; 12] = [
    "express4",
    "express5",
    "fastify",
    "koa",
    "hono",
    "hono_lax",
    "whatwg",
    "express_mount",
    "host_url",
    "decode_whatwg",
    "decodeuri_whatwg",
    "decodeuri_urlparse",
];
/// Paths that are not the snapshot path and must still reach every app through the proxy.
const ORDINARY: [&str; 5] = ["/", "/hello", "/heapdumps", "/static/app.js", "/heap/dump"];
/// Parallel connections per corpus run (the apps share one Node event loop).
const WORKERS: usize = 6;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The corpus.

/// Spellings of the `heapdump` segment: case, escaped letters (lower/upper hex, last letter,
/// all), double encoding.
const NAMES: &[&str] = &[
    "heapdump",
    "HEAPDUMP",
    "Heapdump",
    "hEaPdUmP",
    "%68eapdump",
    "heapdum%70",
    "heap%64ump",
    "heapdu%6D%70",
    "%68%65%61%70%64%75%6d%70",
    "%48%45%41%50%44%55%4D%50",
    "%2568eapdump",
    "heapdump%20",
    "heap%09dump",
    "heapdump%3f",
    "heap%0adump",
    "heapdump%00",
];

/// What may come before the segment: repeated slashes, dot segments raw and escaped, backslashes
/// raw and escaped, escaped slashes, `;params` on segments.
const PREFIXES: &[&str] = &[
    "/",
    "//",
    "///",
    "/./",
    "/.//",
    "/././",
    "/../",
    "/x/../",
    "/x//../",
    "/x/./../",
    "/x/y/../../",
    "/x/%2e%2e/",
    "/x/%2E%2E/",
    "/x/.%2e/",
    "/x/%2e./",
    "/x/%252e%252e/",
    "/%2e/",
    "/%2E/",
    "/.%2e/",
    "/%2e%2e/",
    "/x/..%2f",
    "/x%2f..%2f",
    "/%2f",
    "/x/..%5c",
    "/x%5c..%5c",
    "/%5c",
    "\\",
    "/\\",
    "/x\\..\\",
    "/x/..\\",
    "/;x/",
    "/x;y/../",
    "/..;/",
    "/.;/",
    "/x/%c0%ae%c0%ae/",
    "/%2fx/",
    "/%5c%5cx%2f",
    // Issue 21, re-run: more hosts of a decoded scheme-relative target.
    "/%2F%2Fx/",
    "/%5cx/",
    "/%2fuser@x/",
    "/%2fx:80/",
];

/// What may follow the segment.
const SUFFIXES: &[&str] = &[
    "",
    "/",
    "//",
    "/.",
    "/./",
    "/x/..",
    "/x/../",
    "/%2e",
    "/%2E",
    "/x/%2e%2e",
    "/x/.%2e/",
    "\\",
    "%5c",
    "%5C",
    ";",
    ";x=1",
    ";/",
    ";/x",
    ";a/b",
    ";/..",
    "/x",
    "/latest.heapsnapshot",
    "%3b",
    "%3bx",
    "%2f",
    ".",
    "#x",
    "%3f",
    "%23",
    "%3f/../x",
    "%20",
    "%1f",
];

/// Absolute-form spellings of the origin (and `http:` with no authority); the first is always
/// used.
const ORIGINS: &[&str] = &[
    "http://localhost",
    "HTTP://LOCALHOST",
    "http://localhost:80",
    "https://localhost",
    "http://user:pw@localhost",
    "http://other.example",
    "http:",
];

/// Requests as `METHOD target`: names crossed with every prefix (with and without a trailing
/// slash), and a few names crossed with every prefix and suffix; a query on every third target,
/// absolute form on every fifth (plainly, and with one of the other origins and the query). All
/// as GET, every seventh also as HEAD (every router here runs GET handlers for HEAD). Deduped;
/// never the exact `/heapdump` spelling (the proxy's own snapshot route).
fn corpus() -> Vec<String> {
    let mut bases = Vec::new();
    for prefix in PREFIXES {
        for name in NAMES {
            for suffix in ["", "/"] {
                bases.push(format!("{prefix}{name}{suffix}"));
            }
        }
        for name in ["heapdump", "HEAPDUMP", "%68eapdump"] {
            for suffix in SUFFIXES {
                bases.push(format!("{prefix}{name}{suffix}"));
            }
        }
    }
    let query = format!(
        "?hash={}&task=other",
        token_now("not-the-proxys-secret-0123456789")
    );
    let mut targets = Vec::new();
    for (i, base) in bases.iter().enumerate() {
        targets.push(base.clone());
        if i % 3 == 0 {
            targets.push(format!("{base}{query}"));
        }
        if i % 5 == 0 && base.starts_with('/') {
            let origin = ORIGINS[1 + (i / 5) % (ORIGINS.len() - 1)];
            targets.push(format!("{}{base}", ORIGINS[0]));
            targets.push(format!("{origin}{base}{query}"));
        }
    }
    let mut seen = HashSet::new();
    targets.retain(|t| t.split('?').next() != Some("/heapdump") && seen.insert(t.clone()));
    let mut requests: Vec<String> = targets.iter().map(|t| format!("GET {t}")).collect();
    requests.extend(targets.iter().step_by(7).map(|t| format!("HEAD {t}")));
    requests
}

/// The request target of a corpus entry (`METHOD target`).
fn target_of(request: &str) -> &str {
    request
        .split_once(' ')
        .map_or(request, |(_, target)| target)
}

/// The kinds of spelling a request uses, to summarise what a router resolved.
fn features(request: &str) -> Vec<&'static str> {
    let target = target_of(request);
    let lower = target.to_ascii_lowercase();
    let absolute = lower.starts_with("http");
    // The path alone: no origin, query or fragment.
    let path = if absolute {
        let rest = lower.split_once(':').map_or("", |(_, rest)| rest);
        match rest.strip_prefix("//") {
            Some(authority_and_path) => authority_and_path
                .find('/')
                .map_or("", |i| &authority_and_path[i..]),
            None => rest,
        }
    } else {
        &lower
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let escaped_letter = path
        .as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && matches!(w[1], b'4'..=b'7') && w[2].is_ascii_hexdigit());
    let decode_first = ["%3f", "%23", "%20", "%0", "%1", "%7f"]
        .iter()
        .any(|escape| path.contains(escape));
    let checks: [(&'static str, bool); 15] = [
        ("HEAD", request.starts_with("HEAD ")),
        ("absolute-form", absolute),
        ("#fragment", target.contains('#')),
        ("query", target.contains('?')),
        ("upper case", has_upper_outside_escapes(target)),
        ("escaped letter", escaped_letter),
        ("double escape %25", path.contains("%25")),
        (
            "raw dot segment",
            path.contains("/./")
                || path.contains("/../")
                || path.ends_with("/.")
                || path.ends_with("/..")
                || path.contains(".\\"),
        ),
        ("%2e dot", path.contains("%2e")),
        ("repeated slash", path.contains("//")),
        ("backslash", path.contains('\\') || path.contains("%5c")),
        ("%2f", path.contains("%2f")),
        (";param", path.contains(';') || path.contains("%3b")),
        ("trailing slash", path.len() > 1 && path.ends_with('/')),
        ("escaped ?, #, space or control", decode_first),
    ];
    checks
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| name)
        .collect()
}

/// Whether `target` has an upper-case letter outside `%XX` escapes and outside an origin.
fn has_upper_outside_escapes(target: &str) -> bool {
    let bytes = target.as_bytes();
    let mut i = 0;
    // An upper-case origin (HTTP://LOCALHOST) counts as absolute-form, not as case.
    if target.to_ascii_lowercase().starts_with("http") {
        i = target.find("://").map_or(0, |at| {
            target[at + 3..]
                .find('/')
                .map_or(bytes.len(), |p| at + 3 + p)
        });
    }
    let end = target.find('?').unwrap_or(bytes.len());
    while i < end {
        if bytes[i] == b'%' {
            i += 3;
            continue;
        }
        if bytes[i].is_ascii_uppercase() {
            return true;
        }
        i += 1;
    }
    false
}

/// "feature: n, …" over the targets that reached the route.
fn feature_tally(reached: &[&String]) -> String {
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    for target in reached {
        for feature in features(target) {
            *tally.entry(feature).or_default() += 1;
        }
    }
    tally
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn the_corpus_is_large_distinct_and_never_the_exact_path() {
    let requests = corpus();
    assert!(requests.len() >= 1000, "{} requests", requests.len());
    assert_eq!(
        requests.iter().collect::<HashSet<_>>().len(),
        requests.len()
    );
    let targets: Vec<&str> = requests.iter().map(|r| target_of(r)).collect();
    assert!(
        !targets
            .iter()
            .any(|t| *t == "/heapdump" || t.starts_with("/heapdump?"))
    );
    assert!(targets.iter().all(|t| !t.contains([' ', '\r', '\n'])));
    assert!(requests.iter().any(|r| r.starts_with("HEAD /")));
    // The spellings issue 11 found reaching real routers stay in the corpus.
    for known in [
        "/x/../heapdump",
        "/./heapdump",
        "/%2e/heapdump",
        "/.%2e/heapdump",
        "/x/%2e%2e/heapdump",
        "/heapdump/.",
        "/heapdump/x/..",
        "/heapdump\\",
        "/%68eapdump",
        "/HEAPDUMP/",
    ] {
        assert!(
            requests.iter().any(|r| *r == format!("GET {known}")),
            "{known} not in the corpus"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Raw requests.

/// What one request target got.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The app's own `/heapdump` route answered.
    Reached,
    /// The app's catch-all answered.
    Other,
    /// Anything else: the status code (a refusal by the proxy or the router).
    Status(u16),
    /// No HTTP answer (connection refused, reset, timed out).
    Failed(String),
}

/// Sends `request` (`METHOD target`) as raw bytes, exactly as given, and reads the answer
/// (the harness's raw client).
fn send_raw(addr: SocketAddr, request: &str) -> Outcome {
    let head = format!("{request} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let exchange = exchange_with(addr, head.as_bytes(), 1, IO_TIMEOUT);
    let Some(answer) = exchange.first() else {
        return Outcome::Failed(format!("no answer: {:?}", exchange.ended));
    };
    // HEAD answers have no body; the apps name the route in a header too.
    let route = |name: &str| {
        answer
            .header("x-app-route")
            .is_some_and(|v| v.to_ascii_lowercase().starts_with(name))
    };
    let body = answer.text();
    match answer.status {
        200 if body.contains("APP-HEAPDUMP") || route("heapdump") => Outcome::Reached,
        200 if body.contains("APP-OTHER") || route("other") => Outcome::Other,
        status => Outcome::Status(status),
    }
}

/// Sends every request to `addr` over a few parallel connections; outcomes in corpus order.
fn send_all(addr: SocketAddr, requests: &[String]) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(vec![Outcome::Failed("not sent".to_owned()); requests.len()]);
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(request) = requests.get(i) else {
                        break;
                    };
                    let outcome = send_raw(addr, request);
                    if let Ok(mut results) = results.lock() {
                        results[i] = outcome;
                    }
                }
            });
        }
    });
    results.into_inner().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The apps.

/// `node apps.js` with its seven apps, its control port and its inspector.
struct Apps {
    _proc: Proc,
    ports: BTreeMap<String, u16>,
    inspector: SocketAddr,
}

impl Apps {
    /// The apps, or `None` after a loud notice (a panic in CI) when node or the npm packages are
    /// missing.
    fn start_or_skip(test: &str) -> Option<Apps> {
        let node = node_or_skip(test)?;
        let dir: PathBuf = data("routers");
        if !dir.join("node_modules").is_dir() {
            assert!(
                !in_ci(),
                "{test}: {}/node_modules missing, and CI=true forbids skipping; run `npm ci` there",
                dir.display()
            );
            loud(&format!(
                "SKIPPED {test}: {}/node_modules missing (run `cd tests/data/routers && npm ci`)",
                dir.display()
            ));
            return None;
        }
        let proc = Proc::spawn(
            Command::new(node)
                .arg("--inspect=127.0.0.1:0")
                .arg("apps.js")
                .current_dir(&dir),
        );
        let (mut ports, mut inspector) = (None, None);
        let (ports, inspector) = proc.wait_for("apps.js ports and inspector", |line| {
            if let Some(rest) = line.strip_prefix("err Debugger listening on ws://") {
                inspector = rest.split('/').next().and_then(|a| a.parse().ok());
            } else if let Some(json) = line.strip_prefix("out ") {
                ports = serde_json::from_str::<BTreeMap<String, u16>>(json).ok();
            }
            ports.clone().zip(inspector)
        });
        Some(Apps {
            _proc: proc,
            ports,
            inspector,
        })
    }

    fn addr(&self, app: &str) -> SocketAddr {
        let port = self.ports.get(app).copied();
        SocketAddr::from((
            [127, 0, 0, 1],
            port.unwrap_or_else(|| panic!("no port for {app}")),
        ))
    }

    /// The control server's `/hits` answer.
    fn control(&self) -> serde_json::Value {
        let answer = http_get(self.addr("control"), "/hits").unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_slice(&answer.body).unwrap_or_else(|e| panic!("/hits: {e}"))
    }

    /// How many requests `app`'s `/heapdump` route has answered so far.
    fn hits(&self, app: &str) -> u64 {
        self.control()["hits"][app]
            .as_u64()
            .unwrap_or_else(|| panic!("no hit count for {app}"))
    }

    /// Request targets as `app`'s `/heapdump` route saw them (the first 50).
    fn seen(&self, app: &str) -> Vec<String> {
        self.control()["seen"][app]
            .as_array()
            .map(|seen| {
                seen.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Requests that got no HTTP answer at all, as "request: error" (a crashed or stuck server would
/// otherwise look like a server that refused everything).
fn unanswered(requests: &[String], outcomes: &[Outcome]) -> Vec<String> {
    requests
        .iter()
        .zip(outcomes)
        .filter_map(|(t, o)| match o {
            Outcome::Failed(e) => Some(format!("{t}: {e}")),
            _ => None,
        })
        .collect()
}

/// "200 APP-OTHER: n, 404: n, …" for a line of the report.
fn summary(outcomes: &[Outcome]) -> String {
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for outcome in outcomes {
        let key = match outcome {
            Outcome::Reached => "REACHED /heapdump".to_owned(),
            Outcome::Other => "APP-OTHER".to_owned(),
            Outcome::Status(status) => status.to_string(),
            Outcome::Failed(_) => "no answer".to_owned(),
        };
        *tally.entry(key).or_default() += 1;
    }
    tally
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes a report under the test's temp dir, so a long listing survives `--nocapture` limits.
fn save_report(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::write(&path, text);
    path
}

// ---------------------------------------------------------------------------------------------
// Phase 1: what each router resolves, no proxy.

#[test]
fn phase1_each_router_resolves_some_spellings_of_heapdump() {
    let Some(apps) = Apps::start_or_skip("routers::phase1") else {
        return;
    };
    let requests = corpus();
    let mut table = format!(
        "Phase 1: {} requests sent directly to each app\n",
        requests.len()
    );
    let mut failures = Vec::new();
    for app in APPS {
        // The route itself works: the exact spelling reaches it.
        assert_eq!(
            send_raw(apps.addr(app), "GET /heapdump"),
            Outcome::Reached,
            "{app}"
        );
        let before = apps.hits(app);
        let outcomes = send_all(apps.addr(app), &requests);
        let after = apps.hits(app);
        let reached: Vec<&String> = requests
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| **o == Outcome::Reached)
            .map(|(t, _)| t)
            .collect();
        let mut examples: Vec<&String> = reached.clone();
        examples.sort_by_key(|t| (t.len(), (*t).clone()));
        examples.truncate(12);
        table.push_str(&format!(
            "{app:>9}: {:>5} reached /heapdump ({})\n           using: {}\n           e.g. {examples:?}\n",
            reached.len(),
            summary(&outcomes),
            feature_tally(&reached)
        ));
        let silent = unanswered(&requests, &outcomes);
        if !silent.is_empty() {
            failures.push(format!(
                "{app}: {} requests got no HTTP answer, e.g. {:?}",
                silent.len(),
                &silent[..silent.len().min(10)]
            ));
        }
        if reached.is_empty() {
            failures.push(format!(
                "{app}: no spelling in the corpus reaches /heapdump"
            ));
        }
        // The bodies and the app's own counter agree (the counter is what phase 2 trusts).
        if after - before != reached.len() as u64 {
            failures.push(format!(
                "{app}: {} hits counted but {} bodies said APP-HEAPDUMP",
                after - before,
                reached.len()
            ));
        }
        // Every request's outcome, for the record (`request<TAB>outcome`).
        let detail: String = requests
            .iter()
            .zip(&outcomes)
            .map(|(t, o)| format!("{t}\t{o:?}\n"))
            .collect();
        save_report(&format!("routers-phase1-{app}.tsv"), &detail);
    }
    let path = save_report("routers-phase1.txt", &table);
    eprintln!("{table}(full lists next to {})", path.display());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Phase 2: through heapgate-proxy, nothing reaches an app's `/heapdump`.

#[derive(Debug, Clone, Copy)]
enum Mode {
    Inspector,
    Upstream,
    Gateway,
}

/// The real proxy in front of `app` in `mode`.
fn proxy_for(apps: &Apps, app: &str, mode: Mode) -> ProxyProc {
    let upstream = format!("http://{}", apps.addr(app));
    let inspector = format!("http://{}", apps.inspector);
    let mut args = vec!["--upstream", upstream.as_str(), "--task-id", "t1"];
    match mode {
        Mode::Inspector => args.extend(["--source", "inspector", "--inspector", &inspector]),
        Mode::Upstream => args.extend(["--source", "upstream", "--upstream-path", "/heapdump"]),
        Mode::Gateway => args.extend(["--source", "gateway"]),
    }
    ProxyProc::launch(&args, &[("HEAPGATE_SECRET", SECRET)])
}

fn no_spelling_reaches_any_router(mode: Mode) {
    let test = format!("routers::phase2 {mode:?}");
    let Some(apps) = Apps::start_or_skip(&test) else {
        return;
    };
    let requests = corpus();
    let mut report = format!(
        "Phase 2, --source {mode:?}: {} requests through heapgate-proxy\n",
        requests.len()
    );
    let (mut failures, mut leaks) = (Vec::new(), Vec::new());
    for app in APPS {
        let proxy = proxy_for(&apps, app, mode);
        let ordinary_paths_pass = |when: &str, failures: &mut Vec<String>| {
            for path in ORDINARY {
                let outcome = send_raw(proxy.listen, &format!("GET {path}"));
                if outcome != Outcome::Other {
                    failures.push(format!(
                        "{mode:?}/{app}: ordinary path {path} did not reach the app {when}: \
                         {outcome:?}"
                    ));
                }
            }
        };
        ordinary_paths_pass("before the corpus", &mut failures);
        let before = apps.hits(app);
        let outcomes = send_all(proxy.listen, &requests);
        let hits = apps.hits(app) - before;
        // Still up and forwarding: a proxy that died mid-run would look like one that refused all.
        ordinary_paths_pass("after the corpus", &mut failures);
        let silent = unanswered(&requests, &outcomes);
        if !silent.is_empty() {
            failures.push(format!(
                "{mode:?}/{app}: {} requests got no HTTP answer from the proxy, e.g. {:?}",
                silent.len(),
                &silent[..silent.len().min(10)]
            ));
        }
        let leaked: Vec<&String> = requests
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| **o == Outcome::Reached)
            .map(|(t, _)| t)
            .collect();
        let detail: String = requests
            .iter()
            .zip(&outcomes)
            .map(|(t, o)| format!("{t}\t{o:?}\n"))
            .collect();
        save_report(&format!("routers-phase2-{mode:?}-{app}.tsv"), &detail);
        report.push_str(&format!(
            "{app:>9}: {hits:>5} hits on the app's /heapdump ({})\n",
            summary(&outcomes)
        ));
        if !leaked.is_empty() {
            report.push_str(&format!("           using: {}\n", feature_tally(&leaked)));
        }
        if hits > 0 {
            leaks.push(format!("{app} {hits}"));
            failures.push(format!(
                "{mode:?}/{app}: {hits} requests reached the app's own /heapdump; the {} whose \
                 answer came back from it, one a line:\n  {}\nthe app saw (first 50): {:?}",
                leaked.len(),
                leaked
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join("\n  "),
                apps.seen(app)
            ));
        }
        drop(proxy);
    }
    let path = save_report(&format!("routers-phase2-{mode:?}.txt"), &report);
    eprintln!("{report}(saved in {})", path.display());
    if !failures.is_empty() {
        let path = save_report(
            &format!("routers-phase2-{mode:?}-failures.txt"),
            &failures.join("\n"),
        );
        panic!(
            "--source {mode:?}: spellings of /heapdump reached apps' own route ({}) or ordinary \
             paths failed:\n{}\n(also in {})",
            leaks.join(", "),
            failures.join("\n"),
            path.display()
        );
    }
}

#[test]
fn phase2_inspector_source_lets_no_spelling_reach_any_router() {
    no_spelling_reaches_any_router(Mode::Inspector);
}

#[test]
fn phase2_upstream_source_lets_no_spelling_reach_any_router() {
    no_spelling_reaches_any_router(Mode::Upstream);
}

#[test]
fn phase2_gateway_lets_no_spelling_reach_any_router() {
    no_spelling_reaches_any_router(Mode::Gateway);
}
