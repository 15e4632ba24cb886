//! Hostile input against the real `heapgate-proxy` binary, in front of a stub app that counts
//! what reaches it. No Node.js needed.
//!
//! The proxy runs with `--source upstream --upstream-path /snapshot-endpoint`, so every snapshot
//! it takes is one request to the stub's `/snapshot-endpoint` ("a snapshot taken"); every other
//! request the stub sees is pass-through traffic. Each refused case asserts: the refusal (a 4xx,
//! or a closed connection for malformed HTTP), no request at all reached the stub, and the proxy
//! is still healthy afterwards (admin `/healthz` 200 and a pass-through request that reaches the
//! stub). Each test ends by comparing the stub's snapshot count with the cases that were meant to
//! take one.
//!
//! Waits are bounded (`WAIT`) so that a hang fails the test instead of stalling it; nothing
//! asserts how fast anything is.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use heapgate_tests::{ProxyProc, http_get};
use heapgate_token::{Key, mint};

const SECRET: &str = "hostile-secret-0123456789abcdef";
const PROXY: &str = env!("CARGO_BIN_EXE_heapgate-proxy");
const TASK: &str = "t1";
/// The stub app's own snapshot endpoint (`--upstream-path`).
const SNAPSHOT_ENDPOINT: &str = "/snapshot-endpoint";
/// A stub endpoint that streams `BIG_BODY` bytes as fast as the proxy takes them.
const BIG_ENDPOINT: &str = "/big-snapshot";
const BIG_BODY: u64 = 200 << 20;
/// What the stub's snapshot endpoint answers.
const TINY_SNAPSHOT: &str = r#"{"snapshot":{"meta":{"node_fields":[],"edge_fields":[]},"node_count":0,"edge_count":0},"nodes":[],"edges":[],"strings":[]}"#;
/// Longest wait for any answer or close; reaching it means the proxy hung.
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Tokens and requests

fn token_at(secret: &str, at: chrono::DateTime<Utc>) -> String {
    mint(&Key::new(secret.as_bytes()).unwrap(), "heapdump", at).to_string()
}

/// A valid token now.
fn token() -> String {
    token_at(SECRET, Utc::now())
}

/// Every byte as `%XX`.
fn percent_encode_all(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// `METHOD target HTTP/1.1` with `Connection: close` and `extra` header lines (each ending CRLF).
fn request(method: &str, target: &str, extra: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nHost: heapgate\r\nConnection: close\r\n{extra}\r\n")
        .into_bytes()
}

fn get(target: &str) -> Vec<u8> {
    request("GET", target, "")
}

// ---------------------------------------------------------------------------------------------
// The stub app

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// Answers `TINY_SNAPSHOT`.
    Tiny,
    /// Streams `BIG_BODY` bytes.
    Big,
}

#[derive(Debug, Default)]
struct Seen {
    snapshots: usize,
    passthrough: usize,
    snapshot_targets: Vec<String>,
}

/// Request counts at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    snapshots: usize,
    passthrough: usize,
}

/// A tiny HTTP/1.1 app (keep-alive, one thread per connection). Snapshot endpoints match the way
/// Express routes by default: ASCII case-insensitive, trailing slash optional.
struct Stub {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    big_written: Arc<AtomicU64>,
}

impl Stub {
    fn start(routes: &'static [(&'static str, Endpoint)]) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let big_written = Arc::new(AtomicU64::new(0));
        let (shared_seen, shared_big) = (Arc::clone(&seen), Arc::clone(&big_written));
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (seen, big) = (Arc::clone(&shared_seen), Arc::clone(&shared_big));
                std::thread::spawn(move || stub_connection(stream, routes, &seen, &big));
            }
        });
        Stub {
            addr,
            seen,
            big_written,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn counts(&self) -> Counts {
        let seen = self.lock();
        Counts {
            snapshots: seen.snapshots,
            passthrough: seen.passthrough,
        }
    }

    fn snapshots(&self) -> usize {
        self.lock().snapshots
    }

    fn last_snapshot_target(&self) -> Option<String> {
        self.lock().snapshot_targets.last().cloned()
    }
}

fn express_match(route: &str, path: &str) -> bool {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    route.eq_ignore_ascii_case(path)
}

fn stub_connection(
    stream: TcpStream,
    routes: &[(&'static str, Endpoint)],
    seen: &Mutex<Seen>,
    big_written: &AtomicU64,
) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(target) = read_stub_request(&mut reader) {
        let path = target.split('?').next().unwrap_or_default();
        let endpoint = routes
            .iter()
            .find(|(route, _)| express_match(route, path))
            .map(|(_, endpoint)| *endpoint);
        {
            let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            if endpoint.is_some() {
                seen.snapshots += 1;
                seen.snapshot_targets.push(target.clone());
            } else {
                seen.passthrough += 1;
            }
        }
        let written = match endpoint {
            Some(Endpoint::Tiny) => write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Heapgate-Series: stub-series\r\nContent-Length: {}\r\n\r\n{TINY_SNAPSHOT}",
                TINY_SNAPSHOT.len()
            ),
            Some(Endpoint::Big) => stream_big(&mut out, big_written),
            // An app speaking for the proxy: none of these may reach a client.
            None => out.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Heapgate-Task: forged\r\nX-Heapgate-Series: forged\r\nX-HEAPGATE-Redacted: forged\r\nContent-Length: 2\r\n\r\nok",
            ),
        };
        if written.is_err() {
            return;
        }
    }
}

fn stream_big(out: &mut TcpStream, big_written: &AtomicU64) -> io::Result<()> {
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {BIG_BODY}\r\n\r\n"
    )?;
    let chunk = [b' '; 64 * 1024];
    let mut sent = 0u64;
    while sent < BIG_BODY {
        let n = usize::try_from(BIG_BODY - sent).map_or(chunk.len(), |left| left.min(chunk.len()));
        out.write_all(&chunk[..n])?;
        sent += n as u64;
        big_written.fetch_add(n as u64, Ordering::SeqCst);
    }
    Ok(())
}

/// Reads one request (head and body); its target, or `None` when the connection ended.
fn read_stub_request(reader: &mut impl BufRead) -> Option<String> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line).ok()? == 0 {
        return None;
    }
    let target = String::from_utf8_lossy(&line).split(' ').nth(1)?.to_owned();
    let (mut length, mut chunked) = (0u64, false);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if text.is_empty() {
            break;
        }
        if let Some((name, value)) = text.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().ok()?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
    }
    if chunked {
        loop {
            line.clear();
            reader.read_until(b'\n', &mut line).ok()?;
            let text = String::from_utf8_lossy(&line);
            let size = u64::from_str_radix(text.trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                // Trailers, up to the blank line.
                loop {
                    line.clear();
                    if reader.read_until(b'\n', &mut line).ok()? == 0
                        || line.trim_ascii().is_empty()
                    {
                        break;
                    }
                }
                break;
            }
            io::copy(&mut reader.by_ref().take(size + 2), &mut io::sink()).ok()?;
        }
    } else {
        io::copy(&mut reader.by_ref().take(length), &mut io::sink()).ok()?;
    }
    Some(target)
}

// ---------------------------------------------------------------------------------------------
// A raw client: exact bytes out, every response on the connection parsed back

#[derive(Debug)]
struct Reply {
    status: u16,
    /// Names lowercased, in order, repeats kept.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// One response; `None` on EOF before its first byte. `head` marks a HEAD request (no body).
fn read_reply(reader: &mut impl BufRead, head: bool) -> io::Result<Option<Reply>> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    let status_line = String::from_utf8_lossy(&line).into_owned();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if text.is_empty() {
            break;
        }
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| io::Error::other(format!("bad header line {text:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    if head || matches!(status, 100..=199 | 204 | 304) {
        return Ok(Some(reply));
    }
    if reply
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        loop {
            line.clear();
            reader.read_until(b'\n', &mut line)?;
            let text = String::from_utf8_lossy(&line);
            let size = usize::from_str_radix(text.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::other(format!("bad chunk size {text:?}")))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            reply.body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = reply.header("content-length") {
        let length = length
            .parse()
            .map_err(|_| io::Error::other("bad content-length"))?;
        reply.body = vec![0; length];
        reader.read_exact(&mut reply.body)?;
    } else {
        reader.read_to_end(&mut reply.body)?;
    }
    Ok(Some(reply))
}

/// Writes `bytes` in one go on a new connection and reads up to `want` responses. Returns them and,
/// if fewer arrived, how the connection ended. Panics, naming `case`, if the proxy neither answers
/// nor closes within `WAIT`.
fn exchange(
    case: &str,
    addr: SocketAddr,
    bytes: &[u8],
    want: usize,
    head: bool,
) -> (Vec<Reply>, Option<String>) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{case}: connect: {e}"));
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    let write_error = stream.write_all(bytes).err();
    if write_error.as_ref().is_some_and(is_timeout) {
        panic!("{case}: the proxy stopped reading without closing (write timed out)");
    }
    let mut reader = BufReader::new(stream);
    let mut replies = Vec::new();
    let mut ended = None;
    while replies.len() < want {
        match read_reply(&mut reader, head) {
            Ok(Some(reply)) => replies.push(reply),
            Ok(None) => {
                ended = Some("closed".to_owned());
                break;
            }
            Err(e) if is_timeout(&e) => {
                panic!("{case}: no answer and no close within {WAIT:?}; so far {replies:?}")
            }
            Err(e) => {
                ended = Some(format!("connection error: {e}"));
                break;
            }
        }
    }
    if let (Some(ended), Some(e)) = (ended.as_mut(), write_error) {
        ended.push_str(&format!(" (after write error: {e})"));
    }
    (replies, ended)
}

// ---------------------------------------------------------------------------------------------
// Proxy + stub, and the assertions every case shares

struct Hostile {
    proxy: ProxyProc,
    stub: Stub,
    /// Snapshots the cases so far were meant to take.
    expected_snapshots: usize,
}

impl Hostile {
    /// The proxy with `--source upstream --upstream-path upstream_path` in front of a stub with
    /// `routes`, plus `extra` flags.
    fn start(
        routes: &'static [(&'static str, Endpoint)],
        upstream_path: &str,
        extra: &[&str],
    ) -> Hostile {
        let stub = Stub::start(routes);
        let upstream = format!("http://{}", stub.addr);
        let mut args = vec![
            "--source",
            "upstream",
            "--upstream",
            &upstream,
            "--upstream-path",
            upstream_path,
            "--task-id",
            TASK,
            "--min-interval",
            "0s",
        ];
        args.extend_from_slice(extra);
        let proxy = ProxyProc::start(Path::new(PROXY), &args, &[("HEAPGATE_SECRET", SECRET)]);
        Hostile {
            proxy,
            stub,
            expected_snapshots: 0,
        }
    }

    fn tiny() -> Hostile {
        Hostile::start(
            &[(SNAPSHOT_ENDPOINT, Endpoint::Tiny)],
            SNAPSHOT_ENDPOINT,
            &[],
        )
    }

    fn listen(&self) -> SocketAddr {
        self.proxy.listen
    }

    /// Admin `/healthz` is 200 and a pass-through request reaches the app and comes back.
    fn assert_healthy(&self, case: &str) {
        let healthz = http_get(self.proxy.admin, "/healthz")
            .unwrap_or_else(|e| panic!("after {case}: /healthz failed: {e}"));
        assert_eq!(healthz.status, 200, "after {case}: /healthz");
        let before = self.stub.counts();
        let pass = http_get(self.listen(), "/pass")
            .unwrap_or_else(|e| panic!("after {case}: pass-through failed: {e}"));
        assert_eq!(
            (pass.status, pass.text().as_str()),
            (200, "ok"),
            "after {case}: pass-through"
        );
        let reserved: Vec<_> = pass
            .headers
            .iter()
            .filter(|(name, _)| name.to_ascii_lowercase().starts_with("x-heapgate-"))
            .collect();
        assert!(
            reserved.is_empty(),
            "after {case}: the app's X-Heapgate-* headers reached the client: {reserved:?}"
        );
        assert_eq!(
            self.stub.counts(),
            Counts {
                passthrough: before.passthrough + 1,
                ..before
            },
            "after {case}: the pass-through request reached the app, and only it"
        );
    }

    /// Sends `bytes`; expects one of `statuses`, or (when `may_close`) a closed connection; no
    /// request at all reaches the app; the proxy is healthy afterwards.
    fn refused_raw(
        &self,
        case: &str,
        bytes: &[u8],
        statuses: &[u16],
        may_close: bool,
        head: bool,
    ) -> Option<Reply> {
        let before = self.stub.counts();
        let (mut replies, ended) = exchange(case, self.listen(), bytes, 1, head);
        let reply = replies.pop();
        eprintln!(
            "{case}: {}",
            reply
                .as_ref()
                .map_or_else(|| format!("{ended:?}"), |r| r.status.to_string())
        );
        match &reply {
            Some(reply) => assert!(
                statuses.contains(&reply.status),
                "{case}: expected one of {statuses:?}, got {} {:?}",
                reply.status,
                reply.text()
            ),
            None => assert!(
                may_close,
                "{case}: expected one of {statuses:?}, but no answer: {ended:?}"
            ),
        }
        assert_eq!(
            self.stub.counts(),
            before,
            "{case}: a refused request must not reach the app (snapshot or pass-through)"
        );
        self.assert_healthy(case);
        reply
    }

    /// A refusal with exactly `status`.
    fn refused(&self, case: &str, bytes: &[u8], status: u16) -> Reply {
        self.refused_raw(case, bytes, &[status], false, false)
            .unwrap_or_else(|| unreachable!("{case}: checked above"))
    }

    /// A 400 before the token is even checked: nothing about the task is revealed.
    fn bad_request(&self, case: &str, target: &str) {
        let reply = self.refused(case, &get(target), 400);
        assert!(
            reply.text().starts_with("bad request"),
            "{case}: body {:?}",
            reply.text()
        );
        assert_eq!(
            reply.header("x-heapgate-task"),
            None,
            "{case}: no task id before a valid token"
        );
    }

    /// A request that must take exactly one snapshot and stream it back whole.
    fn takes_snapshot(&mut self, case: &str, bytes: &[u8]) -> Reply {
        let before = self.stub.counts();
        let (mut replies, ended) = exchange(case, self.listen(), bytes, 1, false);
        let reply = replies
            .pop()
            .unwrap_or_else(|| panic!("{case}: no answer: {ended:?}"));
        self.expected_snapshots += 1;
        self.assert_snapshot(case, &reply);
        assert_eq!(
            self.stub.counts(),
            Counts {
                snapshots: before.snapshots + 1,
                ..before
            },
            "{case}: exactly one snapshot request reached the app"
        );
        self.assert_healthy(case);
        reply
    }

    fn assert_snapshot(&self, case: &str, reply: &Reply) {
        assert_eq!(reply.status, 200, "{case}: {}", reply.text());
        assert_eq!(
            reply.text().trim_start(),
            TINY_SNAPSHOT,
            "{case}: the app's snapshot, whole"
        );
        let tasks: Vec<&str> = reply
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("x-heapgate-task"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(tasks, [TASK], "{case}: only the proxy names the task");
        assert_eq!(
            reply.header("x-heapgate-series"),
            None,
            "{case}: the app's X-Heapgate-Series is not the proxy's word"
        );
    }

    /// The last check of every test: the app took exactly the snapshots meant to be taken.
    fn finish(&self, test: &str) {
        self.assert_healthy(test);
        assert_eq!(
            self.stub.snapshots(),
            self.expected_snapshots,
            "{test}: snapshots taken by the app vs cases meant to take one"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The cases

#[test]
fn malformed_hashes_are_400_and_never_reach_the_app() {
    let h = Hostile::tiny();
    let t = token();
    let fullwidth_zero = "\u{ff10}";
    let arabic_indic_zero = "\u{660}";
    let cases: Vec<(&str, String)> = vec![
        ("missing hash", "/heapdump".to_owned()),
        ("missing hash, empty query", "/heapdump?".to_owned()),
        ("missing hash, task only", format!("/heapdump?task={TASK}")),
        ("missing hash, probe only", "/heapdump?probe=1".to_owned()),
        ("empty hash", "/heapdump?hash=".to_owned()),
        ("hash key without =", "/heapdump?hash".to_owned()),
        (
            "duplicate hash, same value",
            format!("/heapdump?hash={t}&hash={t}"),
        ),
        (
            "duplicate hash, second empty",
            format!("/heapdump?hash={t}&hash="),
        ),
        (
            "duplicate hash, second key percent-encoded",
            format!("/heapdump?hash={t}&%68ash={t}"),
        ),
        (
            "duplicate task",
            format!("/heapdump?hash={t}&task={TASK}&task={TASK}"),
        ),
        ("63 hex digits", format!("/heapdump?hash={}", &t[..63])),
        ("65 hex digits", format!("/heapdump?hash={t}0")),
        ("odd length (33)", format!("/heapdump?hash={}", &t[..33])),
        ("one hex digit", "/heapdump?hash=a".to_owned()),
        ("two tokens glued (128)", format!("/heapdump?hash={t}{t}")),
        (
            "non-hex g at the end",
            format!("/heapdump?hash={}g", &t[..63]),
        ),
        ("non-hex 0x prefix", format!("/heapdump?hash=0x{}", &t[2..])),
        ("leading space as +", format!("/heapdump?hash=+{}", &t[1..])),
        (
            "leading space as %20",
            format!("/heapdump?hash=%20{}", &t[1..]),
        ),
        ("trailing space as %20", format!("/heapdump?hash={t}%20")),
        (
            "percent garbage %zz",
            format!("/heapdump?hash=%zz{}", &t[3..]),
        ),
        ("lone percent", format!("/heapdump?hash=%{}", &t[1..])),
        (
            "percent-encoded non-hex %67 x64",
            format!("/heapdump?hash={}", "%67".repeat(64)),
        ),
        (
            "percent-encoded invalid UTF-8 %FF%FE",
            format!("/heapdump?hash=%FF%FE{}", &t[2..]),
        ),
        (
            "fullwidth digits, percent-encoded UTF-8",
            format!(
                "/heapdump?hash={}",
                percent_encode_all(&fullwidth_zero.repeat(64))
            ),
        ),
        (
            "Arabic-Indic digits, percent-encoded UTF-8",
            format!(
                "/heapdump?hash={}",
                percent_encode_all(&arabic_indic_zero.repeat(64))
            ),
        ),
        (
            "valid token with its last digit fullwidth",
            format!(
                "/heapdump?hash={}{}",
                &t[..63],
                percent_encode_all(fullwidth_zero)
            ),
        ),
        ("NUL first", format!("/heapdump?hash=%00{}", &t[1..])),
        ("NUL appended", format!("/heapdump?hash={t}%00")),
        ("NUL x64", format!("/heapdump?hash={}", "%00".repeat(64))),
        ("CRLF in hash", format!("/heapdump?hash={}%0d%0a", &t[..62])),
    ];
    for (case, target) in &cases {
        h.bad_request(case, target);
    }

    // Raw (unencoded) UTF-8 in the request target: either hyper refuses the request line (400,
    // or a close) or the token check does (400). Never a snapshot.
    for (case, digit) in [
        ("fullwidth digits, raw UTF-8", fullwidth_zero),
        ("Arabic-Indic digits, raw UTF-8", arabic_indic_zero),
    ] {
        let target = format!("/heapdump?hash={}", digit.repeat(64));
        h.refused_raw(case, &get(&target), &[400], true, false);
    }
    h.finish("malformed_hashes");
}

#[test]
fn valid_tokens_in_any_spelling_are_one_token_and_invalid_ones_403() {
    let mut h = Hostile::tiny();
    let t = token();
    let encoded = percent_encode_all(&t);
    assert!(encoded.starts_with('%') && encoded.len() == 3 * 64);

    // Probes: 204 with our task id, nothing taken, nothing sent to the app.
    for (case, target) in [
        ("probe", format!("/heapdump?hash={t}&task={TASK}&probe=1")),
        ("probe=true", format!("/heapdump?hash={t}&probe=true")),
        (
            "probe, percent-encoded token",
            format!("/heapdump?hash={encoded}&probe=1"),
        ),
        (
            "probe, uppercase token",
            format!("/heapdump?hash={}&probe=1", t.to_uppercase()),
        ),
        (
            "probe, key and value percent-encoded",
            format!("/heapdump?%68%61%73%68={encoded}&%70robe=1"),
        ),
    ] {
        let reply = h.refused(case, &get(&target), 204);
        assert_eq!(reply.header("x-heapgate-task"), Some(TASK), "{case}");
        assert!(reply.body.is_empty(), "{case}: a 204 has no body");
    }

    // Snapshots: exactly one each, the app's bytes streamed back whole.
    h.takes_snapshot("valid token", &get(&format!("/heapdump?hash={t}")));
    h.takes_snapshot(
        "valid token, task=t1",
        &get(&format!("/heapdump?hash={t}&task={TASK}")),
    );
    h.takes_snapshot(
        "valid token, every byte percent-encoded (same token by URL semantics)",
        &get(&format!("/heapdump?hash={encoded}")),
    );
    // The proxy forwards the verified query as it came; the app sees the same encoding.
    assert_eq!(
        h.stub.last_snapshot_target(),
        Some(format!("{SNAPSHOT_ENDPOINT}?hash={encoded}")),
        "the verified query is forwarded unchanged"
    );
    h.takes_snapshot(
        "valid token, uppercase hex",
        &get(&format!("/heapdump?hash={}", t.to_uppercase())),
    );
    h.takes_snapshot(
        "valid token, unknown parameters around it",
        &get(&format!("/heapdump?x=1&hash={t}&y=%00&z")),
    );

    // HTTP/1.0: accepted like HTTP/1.1 (the streamed body ends with the connection).
    let reply = h.takes_snapshot(
        "HTTP/1.0 valid token",
        format!("GET /heapdump?hash={t} HTTP/1.0\r\n\r\n").as_bytes(),
    );
    assert_eq!(
        reply.header("transfer-encoding"),
        None,
        "no chunked for HTTP/1.0"
    );
    let reply = h.refused(
        "HTTP/1.0 probe",
        format!("GET /heapdump?hash={t}&probe=1 HTTP/1.0\r\n\r\n").as_bytes(),
        204,
    );
    assert_eq!(reply.header("x-heapgate-task"), Some(TASK));
    h.refused(
        "HTTP/1.0 malformed hash",
        format!("GET /heapdump?hash={} HTTP/1.0\r\n\r\n", &t[..63]).as_bytes(),
        400,
    );

    // 403: well-formed tokens that are not valid now. Checked before task and probe, and the
    // answer reveals nothing (no task id, fixed body).
    let wrong = token_at("another-secret-of-enough-length", Utc::now());
    let expired = token_at(SECRET, Utc::now() - TimeDelta::hours(3));
    let future = token_at(SECRET, Utc::now() + TimeDelta::hours(3));
    for (case, target) in [
        ("wrong secret", format!("/heapdump?hash={wrong}")),
        (
            "wrong secret, probe",
            format!("/heapdump?hash={wrong}&probe=1"),
        ),
        (
            "wrong secret, other task",
            format!("/heapdump?hash={wrong}&task=other"),
        ),
        (
            "wrong secret, our task",
            format!("/heapdump?hash={wrong}&task={TASK}"),
        ),
        ("expired 3 h ago", format!("/heapdump?hash={expired}")),
        ("minted 3 h ahead", format!("/heapdump?hash={future}")),
        ("all zeros", format!("/heapdump?hash={}", "0".repeat(64))),
    ] {
        let reply = h.refused(case, &get(&target), 403);
        assert_eq!(reply.text(), "forbidden\n", "{case}");
        assert_eq!(
            reply.header("x-heapgate-task"),
            None,
            "{case}: reveals no task"
        );
    }
    h.finish("valid_tokens_in_any_spelling");
}

#[test]
fn hostile_task_values_are_refused_without_header_injection() {
    let h = Hostile::tiny();
    let t = token();
    let long = "a".repeat(4096);
    // (case, task, status): a task that cannot be an id is a 400 before the token is even
    // looked at; a well-formed other task is 421 and names ours.
    for (case, task, status) in [
        ("CRLF header injection", "t1%0d%0aX-Injected:%20yes", 400),
        ("LF header injection", "t1%0aX-Injected:%20yes", 400),
        ("CR header injection", "t1%0dX-Injected:%20yes", 400),
        (
            "response splitting",
            "t1%0d%0aContent-Length:%200%0d%0a%0d%0aHTTP/1.1%20200%20OK%0d%0aX-Injected:%20yes",
            400,
        ),
        ("raw-looking CRLF as +", "t1+%0D%0A+X-Injected:+yes", 400),
        ("path traversal", "../t1", 400),
        ("encoded path traversal", "..%2F..%2Fetc%2Fpasswd", 400),
        ("traversal back to t1", "t1%2F..%2Ft1", 400),
        ("NUL appended", "t1%00", 400),
        ("NUL only", "%00", 400),
        ("trailing space", "t1%20", 400),
        ("fullwidth t1", "%EF%BD%94%EF%BC%91", 400),
        ("empty task", "", 400),
        ("long task", long.as_str(), 400),
        ("params in the task", "t1;x=1", 400),
        ("case variant", "T1", 421),
        ("another task", "t2", 421),
    ] {
        for probe in ["", "&probe=1"] {
            let case = format!("task {case}{probe}");
            let target = format!("/heapdump?hash={t}&task={task}{probe}");
            if status == 400 {
                h.bad_request(&case, &target);
                continue;
            }
            let reply = h.refused(&case, &get(&target), status);
            let tasks: Vec<&str> = reply
                .headers
                .iter()
                .filter(|(n, _)| n == "x-heapgate-task")
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(tasks, [TASK], "{case}: only our own task id is sent back");
            assert!(
                reply.headers.iter().all(|(n, v)| n != "x-injected"
                    && !v.to_ascii_lowercase().contains("injected")),
                "{case}: injected header in {:?}",
                reply.headers
            );
            assert!(
                !reply.text().contains("Injected") && !reply.text().contains(".."),
                "{case}: the body does not echo the task: {:?}",
                reply.text()
            );
        }
    }
    h.finish("hostile_task_values");
}

/// A client that meant to probe (or to repin) must never cost the app a snapshot: anything but
/// `1` or `true`, once, is a 400.
#[test]
fn unclear_probe_and_repin_values_are_400_and_take_no_snapshot() {
    let mut h = Hostile::tiny();
    let t = token();
    for query in [
        "probe=yes",
        "probe=TRUE",
        "probe=1;x=1",
        "probe=",
        "probe",
        "probe=2",
        "probe=0",
        "probe=%31%3B",
        "probe=1&probe=1",
        "probe=1&probe=0",
        "repin=yes",
        "repin=1&repin=1",
        "task=t1&task=t1",
        "Probe=1",
        "PROBE=1",
        "probe[]=1",
        "probe%00=1",
        ";probe=yes",
        "Task=t2",
        "task%5B%5D=t2",
        "TASK=other",
        "Repin=1",
    ] {
        h.bad_request(query, &format!("/heapdump?hash={t}&{query}"));
    }
    // The clear spellings still work.
    for probe in ["probe=1", "probe=true"] {
        let reply = h.refused(probe, &get(&format!("/heapdump?hash={t}&{probe}")), 204);
        assert_eq!(reply.header("x-heapgate-task"), Some(TASK), "{probe}");
    }
    h.takes_snapshot("plain request", &get(&format!("/heapdump?hash={t}")));
    h.finish("unclear_probe_values");
}

/// Spellings of the snapshot paths that a router could resolve to them (dot segments, `%2e`,
/// backslashes, escapes, parameters, absolute form) are refused before they reach the app, with
/// or without a token; the exact spelling keeps working.
#[test]
fn dot_segment_and_backslash_spellings_never_reach_the_app() {
    let t = token();
    // --path /heapdump and --upstream-path /heapdump: the app has its own /heapdump.
    let mut h = Hostile::start(&[("/heapdump", Endpoint::Tiny)], "/heapdump", &[]);
    let spellings = [
        "/x/../heapdump",
        "/./heapdump",
        "/%2e/heapdump",
        "/%2E/heapdump",
        "/.%2e/heapdump",
        "/x/%2e%2e/heapdump",
        "/x/%2E%2E/heapdump",
        "/heapdump/.",
        "/heapdump/x/..",
        "/heapdump/%2e",
        "/heapdump;x=1",
        "/x;y/../heapdump",
        "/x/..;/heapdump",
        "/%68eapdump",
        "/HEAPDUMP/",
        "//heapdump",
        "/x%2f..%2fheapdump",
        "/x%5c..%5cheapdump",
        "/heapdump%5c",
        "/../heapdump",
        "http://heapgate/x/../heapdump",
        "http://heapgate/HEAPDUMP",
        "http://heapgate//heapdump/",
    ];
    for spelling in spellings {
        for query in [
            String::new(),
            format!("?hash={t}"),
            format!("?hash={t}&task=other"),
        ] {
            let case = format!("{spelling}{query}");
            h.refused(&case, &get(&case), 404);
        }
    }
    // Backslashes are not valid in a request target: refused by the HTTP parser, or 404.
    for spelling in ["/heapdump\\", "\\heapdump", "/x\\..\\heapdump"] {
        let case = format!("{spelling}?hash={t}");
        h.refused_raw(&case, &get(&case), &[400, 404], true, false);
    }
    h.takes_snapshot("the exact spelling", &get(&format!("/heapdump?hash={t}")));
    h.finish("dot_segment_spellings");
}

/// Two `Host` headers are ambiguous (RFC 9112 §3.2): 400 on every route, nothing forwarded.
#[test]
fn two_host_headers_are_400() {
    let h = Hostile::tiny();
    let t = token();
    for (case, target) in [
        ("pass-through", "/pass".to_owned()),
        ("snapshot path", format!("/heapdump?hash={t}")),
    ] {
        let bytes = format!(
            "GET {target} HTTP/1.1\r\nHost: heapgate\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        );
        h.refused(&format!("two Hosts, {case}"), bytes.as_bytes(), 400);
    }
    h.finish("two_host_headers");
}

#[test]
fn methods_other_than_get_are_405_with_allow_get() {
    let h = Hostile::tiny();
    let t = token();
    let target = format!("/heapdump?hash={t}");
    for method in [
        "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD", "get",
    ] {
        let case = format!("{method} with a valid token");
        let head = method == "HEAD";
        let reply = h
            .refused_raw(&case, &request(method, &target, ""), &[405], false, head)
            .unwrap_or_else(|| unreachable!());
        assert_eq!(reply.header("allow"), Some("GET"), "{case}");
        assert_eq!(reply.header("x-heapgate-task"), None, "{case}");
    }
    let case = "POST with a body and a valid token";
    let reply = h.refused(
        case,
        &request("POST", &target, "Content-Length: 5\r\n")
            .into_iter()
            .chain(*b"hello")
            .collect::<Vec<u8>>(),
        405,
    );
    assert_eq!(reply.header("allow"), Some("GET"), "{case}");
    let case = "POST with a chunked body and a valid token";
    let reply = h.refused(
        case,
        &request("POST", &target, "Transfer-Encoding: chunked\r\n")
            .into_iter()
            .chain(*b"5\r\nhello\r\n0\r\n\r\n")
            .collect::<Vec<u8>>(),
        405,
    );
    assert_eq!(reply.header("allow"), Some("GET"), "{case}");
    h.finish("methods_other_than_get");
}

#[test]
fn malformed_http_and_oversized_heads_are_refused() {
    let h = Hostile::tiny();
    let t = token();
    let snapshot = format!("/heapdump?hash={t}");
    let malformed: Vec<(&str, Vec<u8>)> = vec![
        (
            "TLS ClientHello",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n".to_vec(),
        ),
        (
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        ),
        (
            "HTTP/0.9 request line",
            format!("GET {snapshot}\r\n\r\n").into_bytes(),
        ),
        (
            "unknown HTTP version",
            format!("GET {snapshot} HTTP/9.9\r\nHost: x\r\n\r\n").into_bytes(),
        ),
        (
            "space inside the target",
            format!(
                "GET /heapdump?hash={} {} HTTP/1.1\r\nHost: x\r\n\r\n",
                &t[..32],
                &t[32..]
            )
            .into_bytes(),
        ),
        (
            "raw NUL in the target",
            format!(
                "GET /heapdump?hash=\0{} HTTP/1.1\r\nHost: x\r\n\r\n",
                &t[1..]
            )
            .into_bytes(),
        ),
        (
            "raw CR in the target",
            format!("GET /heapdump?hash={t}&task=t1\rX-Injected: yes HTTP/1.1\r\nHost: x\r\n\r\n")
                .into_bytes(),
        ),
        (
            "header line without a colon",
            request("GET", &snapshot, "NoColonHere\r\n"),
        ),
        (
            "space in a header name",
            request("GET", &snapshot, "Bad Header: x\r\n"),
        ),
        (
            "obsolete line folding",
            request("GET", &snapshot, "X-Folded: a\r\n b\r\n"),
        ),
        (
            "non-numeric Content-Length",
            request("GET", &snapshot, "Content-Length: abc\r\n"),
        ),
        (
            "negative Content-Length",
            request("GET", &snapshot, "Content-Length: -1\r\n"),
        ),
        (
            "two different Content-Lengths",
            request(
                "GET",
                &snapshot,
                "Content-Length: 1\r\nContent-Length: 2\r\n",
            ),
        ),
        (
            "unknown Transfer-Encoding",
            request("GET", &snapshot, "Transfer-Encoding: gzip\r\n"),
        ),
    ];
    for (case, bytes) in &malformed {
        h.refused_raw(case, bytes, &[400, 501, 505], true, false);
    }

    // Far oversized heads (`--max-header-bytes` defaults to 65536): 431 (or 414), possibly cut
    // short by a reset while the client still writes. Never a 200, never a hang. Heads just over
    // the limit: see `the_head_limit_is_exact`.
    let oversized: Vec<(&str, Vec<u8>)> = vec![
        (
            "1 MB query string",
            get(&format!("{snapshot}&pad={}", "a".repeat(1 << 20))),
        ),
        (
            "1 MB query string before the hash",
            get(&format!("/heapdump?pad={}&hash={t}", "a".repeat(1 << 20))),
        ),
        (
            "1 MB header on the snapshot path",
            request(
                "GET",
                &snapshot,
                &format!("X-Big: {}\r\n", "x".repeat(1 << 20)),
            ),
        ),
        (
            "1 MB header on a pass-through path",
            request(
                "GET",
                "/pass",
                &format!("X-Big: {}\r\n", "x".repeat(1 << 20)),
            ),
        ),
        (
            "200 small headers",
            request(
                "GET",
                &snapshot,
                &(0..200)
                    .map(|i| format!("X-H{i}: v\r\n"))
                    .collect::<String>(),
            ),
        ),
        (
            "a head that never ends within the limit",
            format!(
                "GET {snapshot} HTTP/1.1\r\nX-Endless: {}",
                "y".repeat(256 * 1024)
            )
            .into_bytes(),
        ),
    ];
    for (case, bytes) in &oversized {
        h.refused_raw(case, bytes, &[400, 414, 431], true, false);
    }

    // Just under the limit is served: the limit is a bound, not a coin toss.
    let before = h.stub.counts();
    let case = "60 KB header on a pass-through path";
    let (replies, ended) = exchange(
        case,
        h.listen(),
        &request(
            "GET",
            "/pass",
            &format!("X-Big: {}\r\n", "x".repeat(60_000)),
        ),
        1,
        false,
    );
    let reply = replies
        .first()
        .unwrap_or_else(|| panic!("{case}: no answer: {ended:?}"));
    assert_eq!((reply.status, reply.text().as_str()), (200, "ok"), "{case}");
    assert_eq!(
        h.stub.counts().passthrough,
        before.passthrough + 1,
        "{case}"
    );

    // An absolute-form target names another host: still only ever forwarded to --upstream.
    let case = "absolute-form target naming another host";
    let (replies, ended) = exchange(
        case,
        h.listen(),
        &get("http://169.254.169.254/pass"),
        1,
        false,
    );
    let reply = replies
        .first()
        .unwrap_or_else(|| panic!("{case}: no answer: {ended:?}"));
    assert_eq!((reply.status, reply.text().as_str()), (200, "ok"), "{case}");
    h.bad_request(
        "absolute-form target to the snapshot path, malformed hash",
        &format!("http://evil.example/heapdump?hash={}", &t[..63]),
    );
    h.finish("malformed_http_and_oversized_heads");
}

#[test]
fn pipelined_requests_are_answered_in_order_and_bodies_are_not_requests() {
    let mut h = Hostile::tiny();
    let t = token();
    let keep = |target: &str| format!("GET {target} HTTP/1.1\r\nHost: p\r\n\r\n");
    let close =
        |target: &str| format!("GET {target} HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n");
    let wrong = token_at("another-secret-of-enough-length", Utc::now());

    // A snapshot, then a malformed hash, in one write: 200 (one snapshot) then 400.
    let case = "pipelined snapshot then malformed hash";
    let bytes =
        keep(&format!("/heapdump?hash={t}")) + &close(&format!("/heapdump?hash={}", &t[..63]));
    let before = h.stub.counts();
    let (replies, ended) = exchange(case, h.listen(), bytes.as_bytes(), 2, false);
    assert_eq!(replies.len(), 2, "{case}: both answered ({ended:?})");
    h.expected_snapshots += 1;
    h.assert_snapshot(case, &replies[0]);
    assert_eq!(replies[1].status, 400, "{case}: {}", replies[1].text());
    assert_eq!(
        h.stub.counts(),
        Counts {
            snapshots: before.snapshots + 1,
            ..before
        },
        "{case}: one snapshot, for the first request only"
    );
    h.assert_healthy(case);

    // Pass-through then a wrong-secret token: 200 "ok" then 403.
    let case = "pipelined pass-through then wrong secret";
    let bytes = keep("/pass") + &close(&format!("/heapdump?hash={wrong}"));
    let before = h.stub.counts();
    let (replies, ended) = exchange(case, h.listen(), bytes.as_bytes(), 2, false);
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 403], "{case} ({ended:?})");
    assert_eq!(replies[0].text(), "ok", "{case}");
    assert_eq!(
        h.stub.counts(),
        Counts {
            passthrough: before.passthrough + 1,
            ..before
        },
        "{case}"
    );
    h.assert_healthy(case);

    // Probe, misdirected, malformed task, wrong method, and a request that is never sent
    // upstream: in order.
    let case = "pipelined probe, 421, 400, 405";
    let bytes = keep(&format!("/heapdump?hash={t}&probe=1"))
        + &keep(&format!("/heapdump?hash={t}&task=t2"))
        + &keep(&format!(
            "/heapdump?hash={t}&task=t2%0d%0aX-Injected:%20yes"
        ))
        + &format!("DELETE /heapdump?hash={t} HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n");
    let before = h.stub.counts();
    let (replies, ended) = exchange(case, h.listen(), bytes.as_bytes(), 4, false);
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [204, 421, 400, 405], "{case} ({ended:?})");
    assert_eq!(h.stub.counts(), before, "{case}: nothing reached the app");
    h.assert_healthy(case);

    // A body on a snapshot GET is a body, never a second request (request smuggling).
    let inner = close(&format!("/heapdump?hash={t}"));
    for (case, framing, body) in [
        (
            "request smuggled in a Content-Length body",
            format!("Content-Length: {}\r\n", inner.len()),
            inner.clone(),
        ),
        (
            "request smuggled in a chunked body",
            "Transfer-Encoding: chunked\r\n".to_owned(),
            format!("{:x}\r\n{inner}\r\n0\r\n\r\n", inner.len()),
        ),
    ] {
        let mut bytes = request("GET", &format!("/heapdump?hash={t}&probe=1"), &framing);
        bytes.extend_from_slice(body.as_bytes());
        let before = h.stub.counts();
        let (replies, ended) = exchange(case, h.listen(), &bytes, 2, false);
        let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [204],
            "{case}: only the outer request is answered ({ended:?})"
        );
        assert_eq!(
            h.stub.counts(),
            before,
            "{case}: the smuggled request took nothing"
        );
        h.assert_healthy(case);
    }
    h.finish("pipelined_requests");
}

/// Sends `prefix`, then one byte every `every` until the proxy closes the connection or `WAIT`
/// passes. Returns whether it closed, after how long, and anything it sent back.
fn trickle(addr: SocketAddr, prefix: &[u8], every: Duration) -> (bool, Duration, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(every)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = |received| (true, started.elapsed(), received);
    if stream.write_all(prefix).is_err() {
        return closed(received);
    }
    while started.elapsed() < WAIT {
        match stream.read(&mut buf) {
            Ok(0) => return closed(received),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(_) => return closed(received),
        }
        if stream.write_all(b"a").is_err() {
            return closed(received);
        }
    }
    (false, started.elapsed(), received)
}

/// Waits for `stream` to be closed by the proxy; whether it was within `WAIT`.
fn closed_within_wait(mut stream: TcpStream) -> bool {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => return !is_timeout(&e),
        }
    }
}

#[test]
fn slowloris_and_idle_connections_are_cut_by_the_header_timeout() {
    let h = Hostile::start(
        &[(SNAPSHOT_ENDPOINT, Endpoint::Tiny)],
        SNAPSHOT_ENDPOINT,
        &["--header-timeout", "2s"],
    );
    let t = token();
    let listen = h.listen();

    // A valid snapshot request whose head never ends: one byte of a header every 300 ms.
    let prefix = format!("GET /heapdump?hash={t} HTTP/1.1\r\nHost: p\r\nX-Slow: ");
    let slowloris =
        std::thread::spawn(move || trickle(listen, prefix.as_bytes(), Duration::from_millis(300)));
    // A connection that sends nothing at all, and one that sends only empty lines (which HTTP/1.1
    // lets a server skip before a request line, so they are no request yet).
    let idle = TcpStream::connect(listen).unwrap();
    let idle = std::thread::spawn(move || closed_within_wait(idle));
    let mut blank = TcpStream::connect(listen).unwrap();
    blank.write_all(b"\r\n\r\n\r\n\r\n").unwrap();
    let blank = std::thread::spawn(move || closed_within_wait(blank));
    // A keep-alive connection left idle after one answered request.
    let mut kept = TcpStream::connect(listen).unwrap();
    kept.set_read_timeout(Some(WAIT)).unwrap();
    kept.write_all(
        format!("GET /heapdump?hash={t}&probe=1 HTTP/1.1\r\nHost: p\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut kept_reader = BufReader::new(kept.try_clone().unwrap());
    let first = read_reply(&mut kept_reader, false).unwrap().unwrap();
    assert_eq!(first.status, 204, "keep-alive probe");
    let kept = std::thread::spawn(move || closed_within_wait(kept));

    // Meanwhile everyone else is served.
    let mut rounds = 0;
    loop {
        rounds += 1;
        h.assert_healthy(&format!("slowloris running, round {rounds}"));
        let probe = http_get(listen, &format!("/heapdump?hash={t}&probe=1")).unwrap();
        assert_eq!(probe.status, 204, "probe while a slowloris runs");
        if slowloris.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (closed, after, received) = slowloris.join().unwrap();
    eprintln!(
        "slowloris cut after {after:?}, {rounds} rounds of other requests served meanwhile, \
         answer {:?}",
        String::from_utf8_lossy(&received)
    );
    assert!(closed, "the slowloris was not cut off within {WAIT:?}");
    assert!(
        received.is_empty() || received.starts_with(b"HTTP/1.1 408"),
        "a slowloris gets no answer but a close (or a 408): {:?}",
        String::from_utf8_lossy(&received)
    );
    assert!(
        idle.join().unwrap(),
        "an idle connection was not closed within {WAIT:?}"
    );
    assert!(
        blank.join().unwrap(),
        "a connection sending only empty lines was not closed within {WAIT:?}"
    );
    assert!(
        kept.join().unwrap(),
        "an idle keep-alive connection was not closed within {WAIT:?}"
    );
    h.finish("slowloris");
}

#[test]
fn a_client_that_never_reads_does_not_grow_the_proxy() {
    let mut h = Hostile::start(&[(BIG_ENDPOINT, Endpoint::Big)], BIG_ENDPOINT, &[]);
    let t = token();

    // Ask for a 200 MB snapshot, read the head, then never read again.
    let mut stuck = TcpStream::connect(h.listen()).unwrap();
    stuck.set_read_timeout(Some(WAIT)).unwrap();
    stuck
        .write_all(format!("GET /heapdump?hash={t} HTTP/1.1\r\nHost: p\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(
            stuck.read(&mut byte).unwrap() == 1,
            "the stuck client's head ended early: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    h.expected_snapshots += 1;

    // Wait (bounded) until the app's writes stall, or until it has written everything (which
    // would mean the proxy took it all in).
    let deadline = Instant::now() + 3 * WAIT;
    let (mut last, mut steady) = (0, 0);
    while steady < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let now = h.stub.big_written.load(Ordering::SeqCst);
        steady = if now == last { steady + 1 } else { 0 };
        last = now;
        if now == BIG_BODY {
            break;
        }
    }
    let peak = h.proxy.proc.peak_rss();
    eprintln!(
        "never-reading client: the app wrote {} MiB of {} MiB before stalling; proxy peak RSS {} MiB",
        last >> 20,
        BIG_BODY >> 20,
        peak >> 20
    );
    assert!(peak > 0, "peak RSS readable from /proc");
    assert!(
        peak < 48 << 20,
        "proxy peak RSS {peak} bytes while a client holds a {BIG_BODY}-byte snapshot unread"
    );

    // Others are still served: the gate says busy, pass-through and health work.
    let case = "second snapshot while the first is held";
    let busy = h.refused(case, &get(&format!("/heapdump?hash={t}")), 429);
    assert!(
        busy.header("retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)),
        "{case}: Retry-After {:?}",
        busy.header("retry-after")
    );
    assert_eq!(busy.header("x-heapgate-task"), Some(TASK), "{case}");
    h.refused(
        "probe while the first is held",
        &get(&format!("/heapdump?hash={t}&probe=1")),
        204,
    );
    assert_eq!(
        h.stub.snapshots(),
        1,
        "only the held snapshot reached the app"
    );

    // Letting go ends the snapshot: the gate reopens, the abandonment is counted.
    drop(stuck);
    let deadline = Instant::now() + WAIT;
    let metrics = loop {
        let metrics = http_get(h.proxy.admin, "/metrics").unwrap().text();
        if metrics
            .lines()
            .any(|l| l == "heapgate_snapshot_in_progress 0")
        {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "the snapshot still runs {WAIT:?} after its client left:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        metrics
            .lines()
            .any(|l| l == "heapgate_snapshots_total{outcome=\"client_gone\"} 1"),
        "the abandoned snapshot is counted as client_gone:\n{metrics}"
    );
    h.finish("never_reading_client");
}

/// With `--source upstream` the app's own snapshot endpoint must not be reachable by plain
/// pass-through: that would go around the one-at-a-time gate and `--min-interval` (the app checks
/// the token itself, so a token holder could make it take snapshots back to back or at once).
/// The stub routes like Express by default (case-insensitive, optional trailing slash), which is
/// what makes the path variants reach it.
#[test]
fn the_apps_snapshot_endpoint_is_not_reachable_around_the_gate() {
    let t = token();
    let mut failures = Vec::new();
    // As configured in this file: --path /heapdump, --upstream-path /snapshot-endpoint.
    let distinct = Hostile::tiny();
    // As configured by default: --path and --upstream-path both /heapdump.
    let same = Hostile::start(&[("/heapdump", Endpoint::Tiny)], "/heapdump", &[]);
    for (h, case, target) in [
        (
            &distinct,
            "--upstream-path itself",
            format!("{SNAPSHOT_ENDPOINT}?hash={t}"),
        ),
        (
            &distinct,
            "--upstream-path with a trailing slash",
            format!("{SNAPSHOT_ENDPOINT}/?hash={t}"),
        ),
        (
            &distinct,
            "--upstream-path in other case",
            format!("/Snapshot-Endpoint?hash={t}"),
        ),
        (
            &same,
            "default paths, /heapdump/",
            format!("/heapdump/?hash={t}"),
        ),
        (
            &same,
            "default paths, /HEAPDUMP",
            format!("/HEAPDUMP?hash={t}"),
        ),
    ] {
        let before = h.stub.counts();
        let (replies, ended) = exchange(case, h.listen(), &get(&target), 1, false);
        let status = replies.first().map(|r| r.status);
        let taken = h.stub.counts().snapshots - before.snapshots;
        if !status.is_some_and(|s| (400..500).contains(&s)) || taken != 0 {
            failures.push(format!(
                "{case}: GET {}… answered {status:?} ({ended:?}), app took {taken} snapshot(s)",
                &target[..target.find('?').unwrap_or(target.len())]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "expected a 4xx and no snapshot:\n{}",
        failures.join("\n")
    );
    distinct.finish("apps_snapshot_endpoint, distinct paths");
    same.finish("apps_snapshot_endpoint, same paths");
}

/// A `GET target` head of exactly `size` bytes (padded with one header), without
/// `Connection: close`.
fn head_of_size(target: &str, size: usize) -> Vec<u8> {
    let start = format!("GET {target} HTTP/1.1\r\nHost: p\r\nX-Pad: ");
    let pad = size - start.len() - 4;
    let head = format!("{start}{}\r\n\r\n", "x".repeat(pad));
    assert_eq!(head.len(), size);
    head.into_bytes()
}

/// `--max-header-bytes` is "the largest request head accepted"; a head over it must be refused
/// however its bytes arrive, also when they arrive in one write.
#[test]
fn the_head_limit_is_exact() {
    let h = Hostile::tiny();
    let t = token();
    for size in [64 * 1024 + 1, 80_000, 100_000] {
        for target in [format!("/heapdump?hash={t}"), "/pass".to_owned()] {
            let case = format!(
                "{size}-byte head (limit 65536), one write, GET {}",
                &target[..target.len().min(9)]
            );
            h.refused_raw(&case, &head_of_size(&target, size), &[431], true, false);
        }
    }
    // At the limit exactly, the request is served.
    let case = "65536-byte head, one write";
    let (replies, ended) = exchange(
        case,
        h.listen(),
        &head_of_size("/pass", 64 * 1024),
        1,
        false,
    );
    let status = replies.first().map(|r| r.status);
    assert_eq!(status, Some(200), "{case} ({ended:?})");
    h.finish("the_head_limit_is_exact");
}

/// Nothing a client sends can start a line of its own in the proxy's log, in either format, on
/// the sidecar or the gateway: client text is escaped, and a task that is no task id is refused
/// before anything logs it.
#[test]
fn client_text_cannot_forge_a_log_line() {
    let t = token();
    let stub = Stub::start(&[("/heapdump", Endpoint::Tiny)]);
    let app = format!("http://{}", stub.addr);
    // The gateway routes to a real sidecar, named as a direct target (`ID=URL`).
    let behind = ProxyProc::start(
        Path::new(PROXY),
        &[
            "--source",
            "upstream",
            "--task-id",
            TASK,
            "--upstream",
            &app,
        ],
        &[("HEAPGATE_SECRET", SECRET)],
    );
    let target = format!("{TASK}=http://{}", behind.listen);
    let sidecar = [
        "--source",
        "upstream",
        "--task-id",
        TASK,
        "--upstream",
        &app,
    ];
    let gateway = ["--source", "gateway", "--upstream", &target];
    for (mode, flags) in [("sidecar", &sidecar[..]), ("gateway", &gateway[..])] {
        for format in ["text", "json"] {
            let mut args = flags.to_vec();
            args.extend(["--log-format", format]);
            let proxy = ProxyProc::start(Path::new(PROXY), &args, &[("HEAPGATE_SECRET", SECRET)]);
            for target in [
                format!("/heapdump?hash={t}&task=t1%0d%0aX-Evil:%201"),
                format!("/heapdump?hash={t}&task=t1%0aX-Evil:%201&probe=1"),
                "/heapdump?hash=%0d%0aX-Evil:%201".to_owned(),
                format!("/heapdump?hash={t}%0d%0aX-Evil:%201"),
                format!("/heapdump?hash={t}&task=nosuch"),
                format!("/heapdump?hash={t}"),
                "/x/../heapdump?%0d%0aX-Evil:%201".to_owned(),
                "/%68eapdump%0d%0aX-Evil:%201/..".to_owned(),
            ] {
                let case = format!("{mode}, {format}: {target}");
                let (replies, ended) = exchange(&case, proxy.listen, &get(&target), 1, false);
                assert!(!replies.is_empty(), "{case}: no answer ({ended:?})");
            }
            // Let the last log lines arrive.
            std::thread::sleep(Duration::from_millis(200));
            let output = proxy.proc.output();
            for line in output.lines() {
                let text = line.strip_prefix("err ").unwrap_or(line);
                assert!(
                    !text.trim_start().to_ascii_lowercase().starts_with("x-evil"),
                    "{mode}, {format}: a forged log line:\n{output}"
                );
                if format == "json" {
                    assert!(
                        serde_json::from_str::<serde_json::Value>(text).is_ok(),
                        "{mode}: a log line that is not one JSON object: {text:?}"
                    );
                }
            }
            assert!(
                output.contains("refused a spelling of a snapshot path"),
                "{mode}, {format}: the refusals were logged:\n{output}"
            );
        }
    }
}

/// `Host` must be one plain `host[:port]` (RFC 9112 §3.2): an app that builds its URL from
/// `Host` must not be steerable to its snapshot route, and HTTP/1.1 needs a `Host`.
#[test]
fn unclear_hosts_are_400() {
    let h = Hostile::tiny();
    for (case, head) in [
        (
            "path in Host",
            "GET /pass HTTP/1.1\r\nHost: x/heapdump?\r\n",
        ),
        ("fragment in Host", "GET /pass HTTP/1.1\r\nHost: x#\r\n"),
        (
            "backslash in Host",
            "GET /pass HTTP/1.1\r\nHost: x\\heapdump\r\n",
        ),
        ("userinfo in Host", "GET /pass HTTP/1.1\r\nHost: u@x\r\n"),
        ("list in Host", "GET /pass HTTP/1.1\r\nHost: x,y\r\n"),
        ("space in Host", "GET /pass HTTP/1.1\r\nHost: a b\r\n"),
        ("empty Host", "GET /pass HTTP/1.1\r\nHost: \r\n"),
        ("bad port", "GET /pass HTTP/1.1\r\nHost: x:80a\r\n"),
        ("no Host in HTTP/1.1", "GET /pass HTTP/1.1\r\n"),
        (
            "absolute form with a bad authority",
            "GET http://x%2fheapdump/pass HTTP/1.1\r\nHost: x\r\n",
        ),
    ] {
        let bytes = format!("{head}Connection: close\r\n\r\n");
        h.refused_raw(case, bytes.as_bytes(), &[400], false, false);
    }
    // Plain hosts, ports and IP literals still pass, and HTTP/1.0 may omit Host.
    for (case, head) in [
        (
            "name and port",
            "GET /pass HTTP/1.1\r\nHost: app.internal:8080\r\n",
        ),
        ("IPv6 literal", "GET /pass HTTP/1.1\r\nHost: [::1]:80\r\n"),
        ("HTTP/1.0 without Host", "GET /pass HTTP/1.0\r\n"),
    ] {
        let bytes = format!("{head}Connection: close\r\n\r\n");
        let (replies, ended) = exchange(case, h.listen(), bytes.as_bytes(), 1, false);
        let status = replies.first().map(|r| r.status);
        assert_eq!(status, Some(200), "{case}: {ended:?}");
    }
    h.finish("unclear_hosts");
}
