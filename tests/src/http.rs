//! The one raw HTTP/1.1 client of the test suites: exact bytes out, every response on the
//! connection parsed back (status, headers, body, and whether the body ended as framed).
//!
//! Deliberately small and strict: tests need to see exactly what a server sent and how a body
//! ended, which a full client library would smooth over. Every read and write has a timeout, so
//! a server that hangs fails the test instead of stalling it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Longest wait for any answer or close in a hand-written exchange; reaching it means the server
/// hung.
pub const WAIT: Duration = Duration::from_secs(10);

/// Longest wait for a whole response to [`http_request`] (snapshots of real Node apps take a
/// while to build).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// One response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Names lowercased, in order, repeats kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the body ended as framed (last chunk, or Content-Length reached, or the close for
    /// a body framed by the close); false when the connection broke first.
    pub complete: bool,
}

impl HttpResponse {
    /// The first value of `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_values(&self.headers, name).into_iter().next()
    }

    /// Every value of `name` (lowercase), in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        header_values(&self.headers, name)
    }

    /// The `x-heapgate-*` headers: only the proxy may send them.
    pub fn heapgate_headers(&self) -> Vec<&(String, String)> {
        self.headers
            .iter()
            .filter(|(name, _)| name.starts_with("x-heapgate-"))
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Every value of header `name` (lowercase) in `headers` (names lowercased), in order.
pub fn header_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// `METHOD target HTTP/1.1` with `Host: heapgate`, `Connection: close` and `extra` header lines
/// (each ending CRLF), no body.
pub fn request(method: &str, target: &str, extra: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nHost: heapgate\r\nConnection: close\r\n{extra}\r\n")
        .into_bytes()
}

/// `METHOD target HTTP/1.1` with `Host: app.example`, `extra` header lines (each ending CRLF)
/// and no `Connection` header: the connection is kept.
pub fn kept(method: &str, target: &str, extra: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nHost: app.example\r\n{extra}\r\n").into_bytes()
}

/// `GET target` as [`request`] makes it.
pub fn get(target: &str) -> Vec<u8> {
    request("GET", target, "")
}

/// Whether an I/O error is a timeout.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// One client connection: raw bytes out, responses parsed back, with timeouts on both.
pub struct Conn {
    reader: BufReader<TcpStream>,
    pacer: Pacer,
}

impl Conn {
    /// Connects to `addr`; reads and writes time out after `timeout`.
    pub fn open(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Conn {
            reader: BufReader::new(stream),
            pacer: Pacer::new(None),
        })
    }

    /// Reads bodies at about `rate` bytes per second (a slow client).
    pub fn read_rate(mut self, rate: Option<u64>) -> Conn {
        self.pacer = Pacer::new(rate);
        self
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// Writes `bytes` in one go.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(bytes)?;
        stream.flush()
    }

    /// The next response; `None` on a close before its first byte. `head` marks the answer to a
    /// HEAD request (no body).
    pub fn response(&mut self, head: bool) -> io::Result<Option<HttpResponse>> {
        read_response(&mut self.reader, head, &mut self.pacer)
    }

    /// The next chunk of a chunked body whose head was read with `response(true)`; empty for the
    /// last chunk.
    pub fn chunk(&mut self) -> io::Result<Vec<u8>> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| io::Error::other(format!("bad chunk size line {line:?}")))?;
        let mut chunk = vec![0; size + 2];
        self.reader.read_exact(&mut chunk)?;
        chunk.truncate(size);
        Ok(chunk)
    }

    /// What one read returns (empty on a close); a timeout is an error.
    pub fn read_some(&mut self) -> io::Result<Vec<u8>> {
        let mut buf = [0u8; 4096];
        let n = self.reader.read(&mut buf)?;
        Ok(buf[..n].to_vec())
    }

    /// Exactly `n` bytes (after an upgrade, say).
    pub fn read_exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; n];
        self.reader.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// Reads and discards until the server closes; whether it did within the read timeout.
    pub fn closed_by_server(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) => return !is_timeout(&e),
            }
        }
    }
}

/// How a connection ended before the responses wanted arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Closed cleanly before a response's first byte.
    Closed,
    /// Reset, or broken inside a response head.
    Error(String),
    /// Neither an answer nor a close within the timeout: the server hung.
    TimedOut,
}

/// What one hand-written exchange got back.
#[derive(Debug)]
pub struct Exchange {
    pub responses: Vec<HttpResponse>,
    /// Why fewer responses than wanted arrived.
    pub ended: Option<Ended>,
    /// The error writing the request, if the server stopped reading it (a refusal mid-request).
    pub write_error: Option<String>,
}

impl Exchange {
    pub fn statuses(&self) -> Vec<u16> {
        self.responses.iter().map(|r| r.status).collect()
    }

    pub fn first(&self) -> Option<&HttpResponse> {
        self.responses.first()
    }
}

/// Writes `bytes` in one go on a new connection and reads up to `want` responses (within
/// [`WAIT`] each). A request starting with `HEAD ` is read as one.
pub fn exchange(addr: SocketAddr, bytes: &[u8], want: usize) -> Exchange {
    exchange_with(addr, bytes, want, WAIT)
}

/// [`exchange`] with another timeout.
pub fn exchange_with(addr: SocketAddr, bytes: &[u8], want: usize, timeout: Duration) -> Exchange {
    let head = bytes.starts_with(b"HEAD ");
    let mut conn = match Conn::open(addr, timeout) {
        Ok(conn) => conn,
        Err(e) => {
            return Exchange {
                responses: Vec::new(),
                ended: Some(Ended::Error(format!("connect: {e}"))),
                write_error: None,
            };
        }
    };
    let write_error = conn.send(bytes).err();
    if write_error.as_ref().is_some_and(is_timeout) {
        // The server neither read the request nor closed.
        return Exchange {
            responses: Vec::new(),
            ended: Some(Ended::TimedOut),
            write_error: write_error.map(|e| e.to_string()),
        };
    }
    let mut responses = Vec::new();
    let mut ended = None;
    while responses.len() < want {
        match conn.response(head) {
            Ok(Some(response)) => responses.push(response),
            Ok(None) => ended = Some(Ended::Closed),
            Err(e) if is_timeout(&e) => ended = Some(Ended::TimedOut),
            Err(e) => ended = Some(Ended::Error(e.to_string())),
        }
        if ended.is_some() {
            break;
        }
    }
    Exchange {
        responses,
        ended,
        write_error: write_error.map(|e| e.to_string()),
    }
}

/// Options for [`http_request`].
#[derive(Debug, Default, Clone)]
pub struct RequestOptions<'a> {
    /// `GET` when empty.
    pub method: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    /// Read the body at about this many bytes per second (a slow client).
    pub read_rate: Option<u64>,
}

/// A plain HTTP/1.1 request on a fresh connection (`Connection: close`), its response read to
/// the end (within [`REQUEST_TIMEOUT`] per read).
pub fn http_request(
    addr: SocketAddr,
    target: &str,
    options: &RequestOptions<'_>,
) -> io::Result<HttpResponse> {
    let mut conn = Conn::open(addr, REQUEST_TIMEOUT)?.read_rate(options.read_rate);
    let method = if options.method.is_empty() {
        "GET"
    } else {
        options.method
    };
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in options.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !options.body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", options.body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(options.body);
    conn.send(&bytes)?;
    conn.response(method == "HEAD")?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "closed without an answer"))
}

/// GET `target` with default options.
pub fn http_get(addr: SocketAddr, target: &str) -> io::Result<HttpResponse> {
    http_request(addr, target, &RequestOptions::default())
}

/// One response from `reader`; `None` on EOF before its first byte.
fn read_response(
    reader: &mut impl BufRead,
    head: bool,
    pacer: &mut Pacer,
) -> io::Result<Option<HttpResponse>> {
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
    let mut response = HttpResponse {
        status,
        headers,
        body: Vec::new(),
        complete: true,
    };
    if head || matches!(status, 100..=199 | 204 | 304) {
        return Ok(Some(response));
    }
    if response
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        response.complete = read_chunked(reader, &mut response.body, pacer)?;
    } else if let Some(length) = response.header("content-length") {
        let length = length
            .parse::<usize>()
            .map_err(|_| io::Error::other(format!("bad content-length {length:?}")))?;
        response.complete = read_up_to(reader, length, &mut response.body, pacer)? == length;
    } else {
        read_up_to(reader, usize::MAX, &mut response.body, pacer)?;
    }
    Ok(Some(response))
}

/// Reads chunked framing; true when the terminating chunk arrived. A timeout is an error; a
/// break is an incomplete body.
fn read_chunked(
    reader: &mut impl BufRead,
    body: &mut Vec<u8>,
    pacer: &mut Pacer,
) -> io::Result<bool> {
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(e) if is_timeout(&e) => return Err(e),
            Err(_) => return Ok(false),
        }
        let Ok(size) = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
        else {
            return Ok(false);
        };
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    return Ok(true);
                }
            }
        }
        if read_up_to(reader, size, body, pacer)? != size {
            return Ok(false);
        }
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return Ok(false);
        }
    }
}

/// Reads up to `limit` bytes (until EOF or a broken connection); how many were read. A timeout
/// is an error: the server hung mid-body.
fn read_up_to(
    reader: &mut impl BufRead,
    limit: usize,
    body: &mut Vec<u8>,
    pacer: &mut Pacer,
) -> io::Result<usize> {
    let mut total = 0;
    let mut buf = [0u8; 16 * 1024];
    while total < limit {
        let want = buf.len().min(limit - total);
        match reader.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => {
                body.extend_from_slice(&buf[..n]);
                total += n;
                pacer.consumed(n);
            }
            Err(e) if is_timeout(&e) => return Err(e),
            Err(_) => break,
        }
    }
    Ok(total)
}

/// Sleeps to hold reading to a byte rate.
struct Pacer {
    rate: Option<u64>,
    started: Instant,
    bytes: u64,
}

impl Pacer {
    fn new(rate: Option<u64>) -> Pacer {
        Pacer {
            rate,
            started: Instant::now(),
            bytes: 0,
        }
    }

    fn consumed(&mut self, n: usize) {
        let Some(rate) = self.rate else { return };
        self.bytes += n as u64;
        let due = Duration::from_secs_f64(self.bytes as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}
