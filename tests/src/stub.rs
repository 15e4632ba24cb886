//! The one configurable stub app of the test suites: an HTTP/1.1 server on loopback that records
//! every request it gets and answers what the test's handler says — including what a real app
//! or a real proxy cannot be made to do on demand: forged `X-Heapgate-*` headers, bodies cut
//! short, held open, paced or huge, late heads, upgrades, closes, unannounced idle closes, and
//! raw answers written verbatim.
//!
//! One thread per connection, keep-alive unless the client or the answer says close.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long a held answer waits for its client to go away, at most.
const HOLD_LIMIT: Duration = Duration::from_secs(60);

/// One request as the stub app received it.
#[derive(Debug, Clone)]
pub struct StubRequest {
    /// Which connection it came on (0 for the first accepted).
    pub connection: usize,
    pub method: String,
    /// The request target as sent.
    pub target: String,
    /// `HTTP/1.1`, `HTTP/1.0`.
    pub version: String,
    /// Names lowercased, in order, repeats kept.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl StubRequest {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    /// The raw value of the first `key=` in the query.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query()
            .split('&')
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
    }

    /// The first value of `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).into_iter().next()
    }

    /// Every value of `name` (lowercase), in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        crate::http::header_values(&self.headers, name)
    }

    /// Whether the client asked to close the connection after this request.
    pub fn asks_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
            || self.version == "HTTP/1.0"
    }
}

/// Whether `path` matches `route` the way Express routes by default: ASCII case-insensitive, a
/// trailing slash optional.
pub fn express_match(route: &str, path: &str) -> bool {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    route.eq_ignore_ascii_case(path)
}

/// A signal a paced body waits for ([`Part::WaitFor`]); the test fires it.
#[derive(Debug, Clone, Default)]
pub struct Release(Arc<(Mutex<bool>, Condvar)>);

impl Release {
    pub fn new() -> Release {
        Release::default()
    }

    pub fn fire(&self) {
        let (lock, ready) = &*self.0;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        ready.notify_all();
    }

    /// Waits until fired (at most [`HOLD_LIMIT`]).
    fn wait(&self) {
        let (lock, ready) = &*self.0;
        let fired = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = ready.wait_timeout_while(fired, HOLD_LIMIT, |fired| !*fired);
    }
}

/// A piece of a streamed body.
#[derive(Debug, Clone)]
pub enum Part {
    Data(Vec<u8>),
    /// Waits this long before the next part.
    Sleep(Duration),
    /// Waits until the test fires the release.
    WaitFor(Release),
}

/// An answer's body.
#[derive(Debug, Clone)]
pub enum Body {
    /// With a Content-Length (unless the answer is a 1xx, 204 or 304).
    Full(Vec<u8>),
    /// `total` bytes of spaces with a Content-Length, written as fast as the client takes them
    /// (counted in [`StubApp::body_bytes_written`]).
    Huge(u64),
    /// Chunked, one chunk a data part, flushed as it goes.
    Chunked(Vec<Part>),
    /// No framing: the end of the body is the close.
    Unframed(Vec<Part>),
}

/// How an answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// As framed; the connection is kept unless someone asked to close.
    Complete,
    /// The connection closes right after the body's parts, before the framing says the body is
    /// over (no last chunk, or short of the Content-Length).
    Cut,
    /// After the body's parts, nothing until the client goes away.
    Hold,
}

/// What the stub app answers to one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    pub ending: Ending,
    /// Waits this long before sending anything (a slow app).
    pub delay: Option<Duration>,
    /// Closes the connection after this answer.
    pub close: bool,
    /// After a 101: greets with these bytes, then echoes every byte on the upgraded connection.
    pub upgrade_greeting: Option<Vec<u8>>,
    /// Written verbatim instead of a head and body made from the fields above (framing the
    /// stub would never produce: chunk extensions, trailers, 1xx before the final answer,
    /// contradictory lengths), for HEAD requests too. Only `delay`, `close` and `idle_close` still
    /// apply.
    pub raw: Option<Vec<u8>>,
    /// After this answer (which advertises nothing of it), the connection closes this long
    /// later without another request being read: an app's keep-alive timeout. A request sent
    /// within that time is lost with the connection.
    pub idle_close: Option<Duration>,
}

impl Answer {
    /// `status` with `body` and a Content-Length.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: Body::Full(body.into()),
            ending: Ending::Complete,
            delay: None,
            close: false,
            upgrade_greeting: None,
            raw: None,
            idle_close: None,
        }
    }

    /// `bytes` written verbatim as the whole answer (the `raw` field); the connection is
    /// kept unless [`Answer::close`] says otherwise or the request asked to close.
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Answer {
        let mut answer = Answer::status(200);
        answer.raw = Some(bytes.into());
        answer
    }

    /// 200 with a text body.
    pub fn ok(body: impl Into<Vec<u8>>) -> Answer {
        Answer::new(200, body).header("Content-Type", "text/plain")
    }

    /// `status` with no body.
    pub fn status(status: u16) -> Answer {
        Answer::new(status, Vec::new())
    }

    /// 101 Switching Protocols to `protocol`; then greets with `greeting` and echoes.
    pub fn upgrade(protocol: &str, greeting: &[u8]) -> Answer {
        let mut answer = Answer::status(101)
            .header("Connection", "Upgrade")
            .header("Upgrade", protocol);
        answer.upgrade_greeting = Some(greeting.to_vec());
        answer
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Answer {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Adds the headers only heapgate may send, as an app trying to speak for it would.
    pub fn forged_heapgate_headers(self) -> Answer {
        self.header("X-Heapgate-Task", "forged")
            .header("X-Heapgate-Session", "forged")
            .header("X-Heapgate-Series", "forged")
            .header("X-HEAPGATE-Redacted", "forged")
    }

    pub fn body(mut self, body: Body) -> Answer {
        self.body = body;
        self
    }

    pub fn ending(mut self, ending: Ending) -> Answer {
        self.ending = ending;
        self
    }

    pub fn delay(mut self, delay: Duration) -> Answer {
        self.delay = Some(delay);
        self
    }

    pub fn close(mut self) -> Answer {
        self.close = true;
        self
    }

    /// Closes the connection `after` this answer, unannounced (the `idle_close` field).
    pub fn idle_close(mut self, after: Duration) -> Answer {
        self.idle_close = Some(after);
        self
    }
}

/// A connection as the stub app's handler threads see it (plain TCP, or TLS around it).
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

type Handler = dyn Fn(&StubRequest) -> Answer + Send + Sync;
type Wrap = dyn Fn(TcpStream) -> Option<Box<dyn Stream>> + Send + Sync;

#[derive(Debug, Default)]
struct Log {
    connections: usize,
    requests: Vec<StubRequest>,
}

/// The stub app; it serves until the test process ends.
pub struct StubApp {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    written: Arc<AtomicU64>,
}

impl StubApp {
    /// Serves every request with `handler`.
    pub fn start(handler: impl Fn(&StubRequest) -> Answer + Send + Sync + 'static) -> StubApp {
        StubApp::start_wrapped(handler, |stream| Some(Box::new(stream)))
    }

    /// As [`StubApp::start`], each accepted connection first passed through `wrap` (a TLS
    /// server, say; `None` drops the connection).
    pub fn start_wrapped(
        handler: impl Fn(&StubRequest) -> Answer + Send + Sync + 'static,
        wrap: impl Fn(TcpStream) -> Option<Box<dyn Stream>> + Send + Sync + 'static,
    ) -> StubApp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local addr: {e}"));
        let log = Arc::new(Mutex::new(Log::default()));
        let written = Arc::new(AtomicU64::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let wrap: Arc<Wrap> = Arc::new(wrap);
        let (shared_log, shared_written) = (Arc::clone(&log), Arc::clone(&written));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let connection = {
                    let mut log = lock(&shared_log);
                    log.connections += 1;
                    log.connections - 1
                };
                // A bound on how long a held answer waits for its client to go away.
                let _ = stream.set_read_timeout(Some(HOLD_LIMIT));
                let (log, written) = (Arc::clone(&shared_log), Arc::clone(&shared_written));
                let (handler, wrap) = (Arc::clone(&handler), Arc::clone(&wrap));
                std::thread::spawn(move || {
                    if let Some(stream) = wrap(stream) {
                        serve(stream, connection, &log, &written, &*handler);
                    }
                });
            }
        });
        StubApp { addr, log, written }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<StubRequest> {
        lock(&self.log).requests.clone()
    }

    /// How many requests so far.
    pub fn hits(&self) -> usize {
        lock(&self.log).requests.len()
    }

    /// How many requests so far for which `pick` holds.
    pub fn hits_where(&self, pick: impl Fn(&StubRequest) -> bool) -> usize {
        lock(&self.log).requests.iter().filter(|r| pick(r)).count()
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        lock(&self.log).connections
    }

    /// Body bytes of [`Body::Huge`] answers written so far.
    pub fn body_bytes_written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Answers requests on one connection until it is closed.
fn serve(
    stream: Box<dyn Stream>,
    connection: usize,
    log: &Mutex<Log>,
    written: &AtomicU64,
    handler: &Handler,
) {
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader, connection) {
        lock(log).requests.push(request.clone());
        let answer = handler(&request);
        let keep =
            write_answer(&mut reader, &answer, request.method == "HEAD", written).unwrap_or(false);
        if !keep || answer.close || request.asks_close() {
            return;
        }
        if let Some(after) = answer.idle_close {
            std::thread::sleep(after);
            return;
        }
    }
}

/// Reads one request (head and body); `None` when the connection ended or the request cannot be
/// read.
fn read_request(reader: &mut impl BufRead, connection: usize) -> Option<StubRequest> {
    let mut line = Vec::new();
    // HTTP/1.1 lets a client send empty lines before a request line.
    while line.trim_ascii().is_empty() {
        line.clear();
        if reader.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
    }
    let request_line = String::from_utf8_lossy(&line).trim_end().to_owned();
    let mut words = request_line.split(' ');
    let (method, target, version) = (words.next()?, words.next()?, words.next().unwrap_or(""));
    let mut request = StubRequest {
        connection,
        method: method.to_owned(),
        target: target.to_owned(),
        version: version.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
    };
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
            request
                .headers
                .push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
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
            let mut chunk = Vec::new();
            reader.by_ref().take(size).read_to_end(&mut chunk).ok()?;
            request.body.extend_from_slice(&chunk);
            io::copy(&mut reader.by_ref().take(2), &mut io::sink()).ok()?;
        }
    } else if let Some(length) = request.header("content-length") {
        let length: u64 = length.parse().ok()?;
        let mut body = Vec::new();
        reader.by_ref().take(length).read_to_end(&mut body).ok()?;
        request.body = body;
    }
    Some(request)
}

fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        404 => "Not Found",
        426 => "Upgrade Required",
        500 => "Internal Server Error",
        _ => "Stub",
    }
}

/// Writes the answer; whether the connection may carry another request.
fn write_answer(
    reader: &mut BufReader<Box<dyn Stream>>,
    answer: &Answer,
    head_request: bool,
    written: &AtomicU64,
) -> io::Result<bool> {
    if let Some(delay) = answer.delay {
        std::thread::sleep(delay);
    }
    if let Some(raw) = &answer.raw {
        let out = reader.get_mut();
        out.write_all(raw)?;
        out.flush()?;
        return Ok(true);
    }
    let status = answer.status;
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let no_body = matches!(status, 100..=199 | 204 | 304);
    match &answer.body {
        _ if no_body => {}
        Body::Full(bytes) => head.push_str(&format!("Content-Length: {}\r\n", bytes.len())),
        Body::Huge(total) => head.push_str(&format!("Content-Length: {total}\r\n")),
        Body::Chunked(_) => head.push_str("Transfer-Encoding: chunked\r\n"),
        Body::Unframed(_) => {}
    }
    let closes = answer.close
        || answer.ending != Ending::Complete
        || matches!(answer.body, Body::Unframed(_));
    if closes && status != 101 {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let out = reader.get_mut();
    out.write_all(head.as_bytes())?;
    out.flush()?;
    if let Some(greeting) = &answer.upgrade_greeting
        && status == 101
    {
        out.write_all(greeting)?;
        out.flush()?;
        let mut buf = [0u8; 4096];
        loop {
            // Bytes the client sent along with the upgrade request are already buffered.
            let n = reader.read(&mut buf)?;
            if n == 0 {
                return Ok(false);
            }
            reader.get_mut().write_all(&buf[..n])?;
            reader.get_mut().flush()?;
        }
    }
    if no_body || head_request {
        return Ok(!closes);
    }
    match &answer.body {
        Body::Full(bytes) => {
            let bytes = if answer.ending == Ending::Cut {
                &bytes[..bytes.len() / 2]
            } else {
                &bytes[..]
            };
            out.write_all(bytes)?;
        }
        Body::Huge(total) => {
            let total = if answer.ending == Ending::Cut {
                total / 2
            } else {
                *total
            };
            let chunk = [b' '; 64 * 1024];
            let mut sent = 0u64;
            while sent < total {
                let n =
                    usize::try_from(total - sent).map_or(chunk.len(), |left| left.min(chunk.len()));
                out.write_all(&chunk[..n])?;
                sent += n as u64;
                written.fetch_add(n as u64, Ordering::SeqCst);
            }
        }
        Body::Chunked(parts) | Body::Unframed(parts) => {
            let chunked = matches!(answer.body, Body::Chunked(_));
            for part in parts {
                match part {
                    Part::Data(data) if chunked => {
                        write!(out, "{:x}\r\n", data.len())?;
                        out.write_all(data)?;
                        out.write_all(b"\r\n")?;
                    }
                    Part::Data(data) => out.write_all(data)?,
                    Part::Sleep(pause) => std::thread::sleep(*pause),
                    Part::WaitFor(release) => release.wait(),
                }
                out.flush()?;
            }
            if chunked && answer.ending == Ending::Complete {
                out.write_all(b"0\r\n\r\n")?;
            }
        }
    }
    out.flush()?;
    match answer.ending {
        Ending::Complete => Ok(!closes),
        Ending::Cut => Ok(false),
        Ending::Hold => {
            // Until the client goes away (or the read timeout, should it never).
            let _ = reader.read(&mut [0; 64]);
            Ok(false)
        }
    }
}
