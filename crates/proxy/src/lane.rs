//! The plain-request lane: ordinary HTTP/1.1 requests passed through by hand.
//!
//! Most of a service's traffic is plain: `GET /x HTTP/1.1`, one `Host`, perhaps a small body
//! with `Content-Length`, answered with `Content-Length` or chunked. For those, the general path
//! (hyper's server and client, [`crate::passthrough`]) costs more than the work itself: header
//! maps built and rebuilt, two protocol state machines, a timer armed per request. This lane does
//! what nginx does instead: it parses the head in place (with httparse, as hyper does), writes the
//! upstream request straight from the received bytes, and copies the answer back with its framing
//! checked, on the connection's own task, with no allocation per request. Profiled and measured
//! against nginx by `bench/passthrough`.
//!
//! Anything the lane is not sure of goes to the general path, which then serves the rest of the
//! connection, starting with the bytes already read: HTTP/1.0, `Transfer-Encoding` or `Expect`
//! on a request, upgrades, absolute-form or unusual targets, the snapshot path and every spelling
//! of it, health paths during a snapshot, malformed or oversized heads (hyper answers those with
//! its 400 or 431), bodies over [`MAX_BUFFERED_BODY`], and a body still incomplete when the
//! header timeout passes (hyper streams it, with no timeout of its own). So every refusal, and
//! every rare case, keeps exactly the general path's behaviour.
//!
//! What the lane does follows the general path's rules: hop-by-hop headers are dropped both ways
//! (`Connection` and the headers it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`,
//! `Transfer-Encoding`, `Upgrade`), `X-Forwarded-*` are added, `X-Heapgate-*` from the app are
//! dropped, failures get the same 502/504 and short bodies, and the same timeouts apply. Header
//! names keep the case they were sent in. Request bodies (at most [`MAX_BUFFERED_BODY`]) are read
//! whole before they are sent, like nginx's `proxy_request_buffering`; answers stream, with their
//! framing checked so a confused app can never desynchronise the client's connection (chunked
//! answers are decoded and chunked again: the app's chunk extensions and trailer fields stay
//! behind, as on the general path). `Host` and `Content-Length` are never dropped because
//! `Connection` names them. An idle pooled connection the app has closed is never used; a
//! request whose connection fails before any answer is retried on a new one when that is safe
//! (idempotent methods, as nginx does). While the app works, the client's socket is watched:
//! a client that leaves ends the exchange (recorded as 499, nginx's "client closed request"),
//! and so does a half-close with no further request behind the one in flight.
//! At shutdown, a request already in is finished and answered with `Connection: close`, and
//! every connection ends with a lingering close (a FIN, then what the client still sends is
//! read and dropped for up to [`LINGER`]), never a reset.

use std::future::{Future, poll_fn};
use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, SystemTime};

use http::{Method, StatusCode};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use crate::app::{Passing, is_host};
use crate::conn_pool::{self, RawConn, Unread};
use crate::guard::Verdict;
use crate::metrics::{InFlight, Route};
use crate::passthrough::{
    AnswerFraming, ForwardError, Peer, RESERVED_PREFIX, connection_tokens, log_failure,
    parse_length,
};
use crate::server::{ConnLimits, SendTimeout};

/// Request bodies up to this size are read whole and sent with the head; larger ones, and
/// bodies of unknown length, take the general path (which streams them).
pub(crate) const MAX_BUFFERED_BODY: usize = 64 * 1024;

/// Header fields per message, as hyper's default.
const MAX_HEADERS: usize = 100;
/// The largest answer head accepted from the app: what hyper's client reads (its default
/// `max_buf_size`), so the general path and the lane refuse the same heads.
const MAX_RESPONSE_HEAD: usize = 8192 + 4096 * 100;
/// A connection's buffers, taken when a request arrives and given back when it waits for the
/// next (see [`spare`]): this large to start with.
const REQUEST_BUFFER: usize = 8 * 1024;
const OUT_BUFFER: usize = 4 * 1024;
/// How long a closing connection reads and drops what the client still sends, so that its
/// close is a FIN rather than a reset that could destroy the last answer in flight (nginx's
/// lingering close).
const LINGER: Duration = Duration::from_secs(1);
/// Reads of the app's answer.
const READ_SIZE: usize = 16 * 1024;
/// Answer bytes that go out in the same write as the head.
const COALESCE: usize = 16 * 1024;

/// The client's socket, with the send timeout.
type Client = SendTimeout<TcpStream>;

/// How the lane leaves a connection.
pub(crate) enum Ending {
    /// Closed, by either side or on an error.
    Done,
    /// For the general path to serve from here; these bytes were read and not yet used.
    General(Vec<u8>),
}

/// The lane for one client connection.
pub(crate) struct Lane<'a> {
    pub(crate) passing: &'a Passing,
    pub(crate) snapshot_path: &'a str,
    pub(crate) peer: &'a Peer,
    pub(crate) limits: ConnLimits,
}

/// A connection's buffers and timers, reused from request to request.
struct Buffers {
    /// From the client.
    request: InBuf,
    /// From the app.
    answer: InBuf,
    /// To the app (the rewritten request), then to the client (the rewritten answer head).
    out: Vec<u8>,
    head_wait: Deadline,
    answer_wait: Deadline,
}

impl Lane<'_> {
    /// Serves requests on `client` until it closes, fails, or needs the general path.
    /// `closing` resolves when the proxy is shutting down: the connection is closed at the next
    /// point where no request is in flight.
    pub(crate) async fn serve(
        &self,
        client: &mut Client,
        closing: &mut oneshot::Receiver<()>,
    ) -> Ending {
        let mut closing = Closing {
            signal: closing,
            fired: false,
        };
        // No memory until the client sends something: an idle connection costs its socket and
        // its task, nothing more.
        let mut buffers = Buffers {
            request: InBuf::new(Spare::Request),
            answer: InBuf::new(Spare::Answer),
            out: Vec::new(),
            head_wait: Deadline::new(),
            answer_wait: Deadline::new(),
        };
        loop {
            let request = match self.next_request(client, &mut buffers, &mut closing).await {
                Next::Request(request) => request,
                Next::General => return Ending::General(buffers.request.into_unread()),
                Next::Closed => return Ending::Done,
                Next::Close => {
                    linger(client, &mut buffers.request).await;
                    return Ending::Done;
                }
            };
            // Boxed, so that the connection's task stays small while it waits for a request.
            let keep = Box::pin(self.exchange(client, &mut buffers, &request, &mut closing)).await;
            buffers.request.consume(request.len);
            if !keep {
                linger(client, &mut buffers.request).await;
                return Ending::Done;
            }
        }
    }

    /// Reads until a whole plain request is buffered (and rewritten into `out`), or the
    /// connection ends or needs the general path.
    async fn next_request(
        &self,
        client: &mut Client,
        buffers: &mut Buffers,
        closing: &mut Closing<'_>,
    ) -> Next {
        let read_limit = self.limits.max_header_bytes + MAX_BUFFERED_BODY;
        // Once the head is whole: the bytes the request needs in all (it is not parsed again
        // until they are there).
        let mut need = 0;
        let mut waiting = false;
        loop {
            // No new request once the proxy is shutting down (as hyper's graceful shutdown),
            // except one that is already in (whole, or its head): it is finished and answered
            // with `Connection: close`. Nothing goes to the general path any more.
            let finishing = closing.fired_now();
            let general = if finishing {
                Next::Close
            } else {
                Next::General
            };
            if buffers.request.len() > 0 && buffers.request.len() >= need {
                match self.plan(buffers.request.bytes(), &mut buffers.out) {
                    Planned::Ready(request) => return Next::Request(request),
                    Planned::General => return general,
                    Planned::NeedMore => {}
                    Planned::NeedBody(total) => need = total,
                }
            }
            if finishing && need == 0 {
                return Next::Close;
            }
            // Like hyper's header read timeout: from when the wait for a head begins (an idle
            // keep-alive connection included) until the head is complete.
            if !waiting {
                buffers
                    .head_wait
                    .set(Instant::now() + self.limits.header_timeout);
                waiting = true;
            }
            let waited = poll_fn(|cx| {
                if !finishing && closing.poll(cx).is_ready() {
                    return Poll::Ready(Wait::Closing);
                }
                // A buffer is taken only once the client may have sent something, and given
                // back as soon as a read finds nothing and nothing is buffered: a connection
                // waiting for its next request holds no memory.
                let readable = buffers.request.is_allocated()
                    || client.get_ref().poll_read_ready(cx).is_ready();
                if readable {
                    if let Poll::Ready(read) = buffers.request.poll_read(client, read_limit, cx) {
                        return Poll::Ready(Wait::Read(read));
                    }
                    if buffers.request.len() == 0 {
                        buffers.release();
                    }
                }
                let head_wait = &mut buffers.head_wait;
                if head_wait.poll(cx).is_ready() {
                    return Poll::Ready(Wait::TimedOut);
                }
                Poll::Pending
            })
            .await;
            match waited {
                Wait::Read(Ok(Read::Bytes)) | Wait::Closing => {}
                Wait::Read(Ok(Read::Full)) => return general,
                Wait::Read(Ok(Read::Eof) | Err(_)) => return Next::Closed,
                // The head came in time and its body is slow: hyper streams a body with no
                // timeout of its own, so the general path takes it from here.
                Wait::TimedOut if need > 0 => return general,
                Wait::TimedOut => {
                    tracing::debug!("read header from client timeout");
                    return Next::Close;
                }
            }
        }
    }

    /// Whether `bytes` start with a whole plain request; if so, writes the upstream request
    /// into `out`.
    fn plan(&self, bytes: &[u8], out: &mut Vec<u8>) -> Planned {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut []);
        let head_len = match parsed.parse_with_uninit_headers(bytes, &mut slots) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if bytes.len() <= self.limits.max_header_bytes => {
                return Planned::NeedMore;
            }
            // Malformed or oversized: the general path gives the error answer.
            _ => return Planned::General,
        };
        if head_len > self.limits.max_header_bytes || parsed.version != Some(1) {
            return Planned::General;
        }
        let (Some(method), Some(target)) = (parsed.method, parsed.path) else {
            return Planned::General;
        };
        if method == "CONNECT" || !is_plain_target(target) {
            return Planned::General;
        }
        let path = target.split_once('?').map_or(target, |(path, _)| path);
        let passing = self.passing;
        if path == self.snapshot_path
            || passing.guarded_paths.check(path) != Verdict::Pass
            || (passing.gate.is_running() && passing.health_paths.iter().any(|p| p == path))
        {
            return Planned::General;
        }
        let headers = &*parsed.headers;

        // What the head says about framing and this connection.
        let mut host = None;
        let mut hosts = 0;
        let mut content_length = None;
        let mut close = false;
        let mut listed = Listed::default();
        for header in headers {
            match classify(header.name) {
                Name::Host => {
                    hosts += 1;
                    host = Some(header.value);
                }
                Name::ContentLength => match (content_length, parse_length(header.value)) {
                    (None, Some(length)) => content_length = Some(length),
                    _ => return Planned::General,
                },
                Name::TransferEncoding | Name::Expect => return Planned::General,
                Name::Connection => {
                    for token in connection_tokens(header.value) {
                        if token.eq_ignore_ascii_case(b"close") {
                            close = true;
                        } else if token.eq_ignore_ascii_case(b"upgrade") {
                            return Planned::General;
                        } else {
                            listed.add(token);
                        }
                    }
                }
                _ => {}
            }
        }
        let Some(host) = host.filter(|host| hosts == 1 && is_host(host)) else {
            return Planned::General;
        };
        let body_len = match content_length.map(usize::try_from) {
            None => 0,
            Some(Ok(length)) if length <= MAX_BUFFERED_BODY => length,
            Some(_) => return Planned::General,
        };
        if bytes.len() < head_len + body_len {
            return Planned::NeedBody(head_len + body_len);
        }

        // The request as the app gets it.
        out.clear();
        if out.capacity() == 0 {
            *out = spare::take(Spare::Out);
        }
        out.extend_from_slice(method.as_bytes());
        out.push(b' ');
        if let Some(prefix) = passing.upstream.prefix() {
            out.extend_from_slice(prefix.as_bytes());
        }
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let (mut forwarded_for, mut forwarded_proto, mut forwarded_host) = (false, false, false);
        let kept = |header: &httparse::Header<'_>, name: Name| {
            !name.is_hop_by_hop() && !listed.drops(header, name, headers)
        };
        for header in headers {
            let name = classify(header.name);
            if !kept(header, name) {
                continue;
            }
            match name {
                // All lines folded into one, with the client appended, where the first was.
                Name::XForwardedFor => {
                    if !forwarded_for {
                        forwarded_for = true;
                        out.extend_from_slice(b"X-Forwarded-For: ");
                        for earlier in headers {
                            let value = earlier.value.trim_ascii();
                            if classify(earlier.name) == Name::XForwardedFor && !value.is_empty() {
                                out.extend_from_slice(value);
                                out.extend_from_slice(b", ");
                            }
                        }
                        out.extend_from_slice(self.peer.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                    continue;
                }
                Name::XForwardedProto => forwarded_proto = true,
                Name::XForwardedHost => forwarded_host = true,
                _ => {}
            }
            header_line(out, header.name.as_bytes(), header.value);
        }
        if !forwarded_for {
            header_line(out, b"X-Forwarded-For", self.peer.as_bytes());
        }
        if !forwarded_proto {
            out.extend_from_slice(b"X-Forwarded-Proto: http\r\n");
        }
        if !forwarded_host {
            header_line(out, b"X-Forwarded-Host", host);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&bytes[head_len..head_len + body_len]);

        // Where the path is, for logs: an offset from the first unread byte, which stays valid
        // while the buffer grows or compacts (the request is consumed after its exchange).
        let path_at = path.as_ptr().addr() - bytes.as_ptr().addr();
        Planned::Ready(Request {
            len: head_len + body_len,
            method: Method::from_bytes(method.as_bytes()).unwrap_or_default(),
            path: path_at..path_at + path.len(),
            close,
        })
    }

    /// One request to the app and its answer back to the client. Records the outcome once, and
    /// returns whether the client connection stays open.
    async fn exchange(
        &self,
        client: &mut Client,
        buffers: &mut Buffers,
        request: &Request,
        closing: &mut Closing<'_>,
    ) -> bool {
        let metrics = &self.passing.metrics;
        let _in_flight = InFlight::start(metrics);
        let now = Instant::now();
        let answered = self
            .answer_head(client, buffers, request, closing, now)
            .await;
        let (conn, head) = match answered {
            Ok(answer) => answer,
            Err(Failure::ClientGone) => {
                tracing::debug!("pass-through: the client left before the app answered");
                metrics.request(Route::Passthrough, CLIENT_CLOSED_REQUEST);
                return false;
            }
            Err(Failure::Forward(err)) => {
                let path = std::str::from_utf8(&buffers.request.bytes()[request.path.clone()])
                    .unwrap_or_default();
                log_failure(&request.method, path, &err);
                metrics.request(Route::Passthrough, err.status());
                let close = request.close || closing.fired_now();
                error_answer(&mut buffers.out, &err, SystemTime::now(), close);
                return client.write_all(&buffers.out).await.is_ok() && !close;
            }
        };
        metrics.request(Route::Passthrough, head.status);
        let upstream = &self.passing.upstream;
        match relay_body(client, conn, buffers, &head).await {
            Ok(Relayed::Reusable(conn)) => {
                conn_pool::checkin(
                    upstream.id(),
                    upstream.idle_timeout(),
                    upstream.oversent(),
                    conn,
                    Instant::now().into_std(),
                );
                !head.close
            }
            Ok(Relayed::Oversent) => {
                conn_pool::retire(upstream.oversent());
                !head.close
            }
            Ok(Relayed::Done) => !head.close,
            // The answer is cut short: closing the client connection is how it learns.
            Err(()) => false,
        }
    }

    /// Sends the request in `out` and reads the answer's head, whose rewritten form is left in
    /// `out`. Bounded by the upstream head timeout, like the general path; given up as soon as
    /// the client leaves (bytes it sends meanwhile are kept for later).
    async fn answer_head(
        &self,
        client: &mut Client,
        buffers: &mut Buffers,
        request: &Request,
        closing: &mut Closing<'_>,
        now: Instant,
    ) -> Result<(RawConn, Head), Failure> {
        let upstream = &self.passing.upstream;
        match upstream.head_timeout() {
            Some(limit) => buffers.answer_wait.set(now + limit),
            None => buffers.answer_wait.clear(),
        }
        let timed_out = || {
            Failure::Forward(ForwardError::TimedOut(
                upstream.head_timeout().unwrap_or_default(),
            ))
        };
        let gone = || {
            Failure::Forward(unavailable(
                "upstream closed the connection before answering",
            ))
        };
        let read_limit = self.limits.max_header_bytes + MAX_BUFFERED_BODY;
        let mut watch_client = true;
        loop {
            let (mut conn, reused) =
                match conn_pool::checkout::<RawConn>(upstream.id(), now.into_std()) {
                    Some(conn) => (conn, true),
                    None => {
                        let connect = upstream.connect_tcp();
                        let stream = within(&mut buffers.answer_wait, connect)
                            .await
                            .ok_or_else(timed_out)?
                            .map_err(Failure::Forward)?;
                        (RawConn { stream }, false)
                    }
                };
            // Bytes already there before the request goes out cannot be its answer: the app sent
            // them outside any answer. The connection is retired and another one used.
            if reused {
                match conn_pool::unread(&conn.stream) {
                    Unread::Nothing => {}
                    Unread::Bytes => {
                        conn_pool::retire(upstream.oversent());
                        continue;
                    }
                    Unread::Closed => continue,
                }
            }
            let sent = within(
                &mut buffers.answer_wait,
                conn.stream.write_all(&buffers.out),
            )
            .await
            .ok_or_else(timed_out)?;
            if let Err(err) = sent {
                // A reused connection the app closed meanwhile: it never read the request.
                if reused {
                    continue;
                }
                return Err(Failure::Forward(ForwardError::Unavailable(Box::new(err))));
            }
            buffers.answer.clear();
            loop {
                let answer = &mut buffers.answer;
                let stream = &mut conn.stream;
                let socket = client.get_ref();
                let read = within(
                    &mut buffers.answer_wait,
                    poll_fn(|cx| {
                        if let Poll::Ready(read) = answer.poll_read(stream, MAX_RESPONSE_HEAD, cx) {
                            return Poll::Ready(Some(read));
                        }
                        // Readiness only: no syscall unless the client has sent something.
                        if watch_client && socket.poll_read_ready(cx).is_ready() {
                            return Poll::Ready(None);
                        }
                        Poll::Pending
                    }),
                )
                .await
                .ok_or_else(timed_out)?;
                let Some(read) = read else {
                    let request_buffer = &mut buffers.request;
                    let polled =
                        poll_fn(|cx| Poll::Ready(request_buffer.poll_read(client, read_limit, cx)))
                            .await;
                    match polled {
                        // A client that half-closes after pipelining more requests still
                        // wants their answers. One that half-closes with only this request
                        // in is taken as gone (below), as nginx and hyper's server (without
                        // `half_close`) take it: most clients close both ways when they leave.
                        Poll::Ready(Ok(Read::Eof)) if buffers.request.len() > request.len => {
                            watch_client = false;
                        }
                        Poll::Ready(Ok(Read::Eof) | Err(_)) => return Err(Failure::ClientGone),
                        Poll::Ready(Ok(Read::Full)) => watch_client = false,
                        Poll::Ready(Ok(Read::Bytes)) | Poll::Pending => {}
                    }
                    continue;
                };
                match read {
                    Ok(Read::Bytes) => {}
                    Ok(Read::Full) => {
                        return Err(Failure::Forward(unavailable("response head too large")));
                    }
                    Ok(Read::Eof) | Err(_) if reused && buffers.answer.len() == 0 => {
                        // Closed as the request arrived: safe to send again only if repeating
                        // it cannot do harm.
                        if request.method.is_idempotent() {
                            break;
                        }
                        return Err(gone());
                    }
                    Ok(Read::Eof) => return Err(gone()),
                    Err(err) => {
                        return Err(Failure::Forward(ForwardError::Unavailable(Box::new(err))));
                    }
                }
                loop {
                    let close = request.close || closing.fired_now();
                    match plan_answer(
                        buffers.answer.bytes(),
                        request,
                        close,
                        &mut buffers.out,
                        SystemTime::now,
                    ) {
                        Answer::NeedMore => break,
                        Answer::Informational(len) => buffers.answer.consume(len),
                        Answer::Bad(err) => return Err(Failure::Forward(err)),
                        Answer::Ready(head) => return Ok((conn, head)),
                    }
                }
            }
        }
    }
}

/// Why an exchange ended without an answer from the app.
enum Failure {
    /// Answered with the error's status.
    Forward(ForwardError),
    /// The client closed its connection while the app was still working.
    ClientGone,
}

/// Recorded for an exchange the client left before the app answered (nginx's 499).
const CLIENT_CLOSED_REQUEST: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => StatusCode::BAD_REQUEST,
};

/// The proxy's shutdown signal as one connection sees it; remembered once seen (a oneshot must
/// not be polled after it has resolved).
struct Closing<'a> {
    signal: &'a mut oneshot::Receiver<()>,
    fired: bool,
}

impl Closing<'_> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.fired && Pin::new(&mut *self.signal).poll(cx).is_ready() {
            self.fired = true;
        }
        if self.fired {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Whether shutdown has begun, without waiting.
    fn fired_now(&mut self) -> bool {
        self.poll(&mut Context::from_waker(Waker::noop()))
            .is_ready()
    }
}

/// Ends a connection: a FIN, then whatever the client still sends is read and dropped for a
/// moment, so the last answer is not destroyed by a reset.
async fn linger(client: &mut Client, buffer: &mut InBuf) {
    if client.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        loop {
            buffer.clear();
            match poll_fn(|cx| buffer.poll_read(client, REQUEST_BUFFER, cx)).await {
                Ok(Read::Bytes) => {}
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// What [`Lane::next_request`] found.
enum Next {
    Request(Request),
    General,
    /// The client closed, or the connection failed.
    Closed,
    /// End the connection (shutdown, or the header timeout).
    Close,
}

enum Wait {
    Read(io::Result<Read>),
    Closing,
    TimedOut,
}

enum Planned {
    Ready(Request),
    /// The head is not whole yet.
    NeedMore,
    /// The head is whole; the body is not: the request is this long in all.
    NeedBody(usize),
    General,
}

/// A plain request, rewritten into the buffers' `out`.
struct Request {
    /// Head and body, in the request buffer.
    len: usize,
    method: Method,
    /// The path, in the request buffer.
    path: std::ops::Range<usize>,
    /// `Connection: close`: the client connection ends with this answer.
    close: bool,
}

/// How the app frames its answer's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// None (`HEAD`, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the app closes the connection (sent on to the client chunked).
    UntilClose,
}

/// The app's answer head.
struct Head {
    /// Its length in the answer buffer.
    len: usize,
    status: StatusCode,
    framing: Framing,
    /// Whether the upstream connection may carry another request once the body is read.
    reusable: bool,
    /// Whether the client connection ends with this answer (`Connection: close` sent).
    close: bool,
}

enum Answer {
    Ready(Head),
    /// A 1xx other than 101, this long: dropped, as hyper's client does.
    Informational(usize),
    NeedMore,
    Bad(ForwardError),
}

fn unavailable(why: &'static str) -> ForwardError {
    ForwardError::Unavailable(why.into())
}

/// Parses the app's answer head in `bytes`; if whole, writes the client's head into `out`.
fn plan_answer(
    bytes: &[u8],
    request: &Request,
    close: bool,
    out: &mut Vec<u8>,
    wall_clock: fn() -> SystemTime,
) -> Answer {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let parsing = httparse::ParserConfig::default();
    let head_len = match parsing.parse_response_with_uninit_headers(&mut parsed, bytes, &mut slots)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Answer::NeedMore,
        Err(_) => return Answer::Bad(unavailable("malformed response head")),
    };
    let (Some(status), Some(version)) = (parsed.code, parsed.version) else {
        return Answer::Bad(unavailable("malformed response head"));
    };
    // Three digits (httparse), so 100..=999 is a status; 000..=099 is not.
    let Ok(status) = StatusCode::from_u16(status) else {
        return Answer::Bad(unavailable("impossible status in the answer"));
    };
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Answer::Bad(ForwardError::UnexpectedUpgrade);
    }
    if status.is_informational() {
        return Answer::Informational(head_len);
    }
    let headers = &*parsed.headers;
    let mut framed = AnswerFraming::default();
    let mut app_closes = false;
    let mut keep_alive = false;
    let mut has_date = false;
    let mut listed = Listed::default();
    for header in headers {
        match classify(header.name) {
            Name::ContentLength => {
                if let Err(err) = framed.content_length(header.value) {
                    return Answer::Bad(err);
                }
            }
            Name::TransferEncoding => {
                if let Err(err) = framed.transfer_encoding(header.value) {
                    return Answer::Bad(err);
                }
            }
            Name::Connection => {
                for token in connection_tokens(header.value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        app_closes = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        keep_alive = true;
                    } else {
                        listed.add(token);
                    }
                }
            }
            _ => {}
        }
    }
    let AnswerFraming { length, chunked } = framed;
    let mut reusable = !app_closes && (version == 1 || keep_alive);
    let framing = if request.method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(length) = length {
        Framing::Length(length)
    } else {
        reusable = false;
        Framing::UntilClose
    };

    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(parsed.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for header in headers {
        let name = classify(header.name);
        // The length is written once below, as the framing decided it.
        let dropped = name.is_hop_by_hop()
            || name == Name::ContentLength
            || listed.drops(header, name, headers)
            || is_reserved(header.name);
        if !dropped {
            has_date |= name == Name::Date;
            header_line(out, header.name.as_bytes(), header.value);
        }
    }
    // One answer-header policy with the general path (hyper's server): one `Content-Length`,
    // digits as a number, when the body is length-framed or a HEAD answer announces it; none on
    // a 204 or 304, or beside a chunked body.
    match (framing, length) {
        (Framing::Chunked | Framing::UntilClose, _) => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        (Framing::Length(length), _) => length_line(out, length),
        (Framing::Empty, Some(length))
            if !chunked && !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED) =>
        {
            length_line(out, length);
        }
        (Framing::Empty, _) => {}
    }
    if !has_date {
        date_line(out, wall_clock());
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Answer::Ready(Head {
        len: head_len,
        status,
        framing,
        reusable,
        close,
    })
}

/// What became of the upstream connection once an answer was relayed.
enum Relayed {
    Reusable(RawConn),
    /// The app sent more than the answer's framing: retired.
    Oversent,
    /// Not reusable (the app closes it, or the body ended with the connection).
    Done,
}

/// Sends the answer head (in `out`) and body to the client. Returns what became of the upstream
/// connection, or `Err` if the answer could not be sent whole.
async fn relay_body(
    client: &mut Client,
    mut conn: RawConn,
    buffers: &mut Buffers,
    head: &Head,
) -> Result<Relayed, ()> {
    let Buffers { answer, out, .. } = buffers;
    answer.consume(head.len);
    // Bytes after the answer's end, in the same read: the app sent more than it framed.
    let mut oversent = false;
    match head.framing {
        Framing::Empty => {
            oversent = answer.len() > 0;
            client.write_all(out).await.map_err(drop)?;
        }
        Framing::Length(length) => {
            let mut left = length;
            let mut first = true;
            loop {
                let bytes = answer.bytes();
                let take = bytes.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                // More than announced: the connection's state is unknown.
                oversent |= take != bytes.len();
                left -= take as u64;
                if first {
                    first = false;
                    if take <= COALESCE {
                        out.extend_from_slice(&bytes[..take]);
                        client.write_all(out).await.map_err(drop)?;
                    } else {
                        client.write_all(out).await.map_err(drop)?;
                        client.write_all(&bytes[..take]).await.map_err(drop)?;
                    }
                } else if take > 0 {
                    client.write_all(&bytes[..take]).await.map_err(drop)?;
                }
                answer.clear();
                if left == 0 {
                    break;
                }
                read_body(&mut conn.stream, answer).await?;
            }
        }
        Framing::Chunked => {
            // Decoded and chunked again, one chunk per read, as the general path does: the
            // app's chunk extensions and trailer fields (which could speak for the proxy or
            // name hop-by-hop headers) never reach the client.
            let mut chunks = Chunks::default();
            loop {
                let bytes = answer.bytes();
                let size_at = out.len();
                out.extend_from_slice(b"00000000\r\n");
                let data_at = out.len();
                let take = chunks
                    .scan(bytes, |data| out.extend_from_slice(data))
                    .map_err(|()| {
                        tracing::warn!("pass-through: malformed chunked body from the app");
                    })?;
                oversent |= take != bytes.len();
                let size = out.len() - data_at;
                if size == 0 {
                    out.truncate(size_at);
                } else {
                    // Leading zeros are allowed in a chunk size (RFC 9112 §7.1: 1*HEXDIG).
                    out[size_at..size_at + 8].copy_from_slice(&hex8(size));
                    out.extend_from_slice(b"\r\n");
                }
                if chunks.done() {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                if !out.is_empty() {
                    client.write_all(out).await.map_err(drop)?;
                }
                out.clear();
                answer.clear();
                if chunks.done() {
                    break;
                }
                read_body(&mut conn.stream, answer).await?;
            }
        }
        Framing::UntilClose => {
            client.write_all(out).await.map_err(drop)?;
            loop {
                if answer.len() > 0 {
                    out.clear();
                    let _ = write!(out, "{:x}\r\n", answer.len());
                    out.extend_from_slice(answer.bytes());
                    out.extend_from_slice(b"\r\n");
                    client.write_all(out).await.map_err(drop)?;
                    answer.clear();
                }
                match poll_fn(|cx| answer.poll_read(&mut conn.stream, READ_SIZE, cx)).await {
                    Ok(Read::Bytes) => {}
                    Ok(Read::Eof) => break,
                    Ok(Read::Full) | Err(_) => return Err(()),
                }
            }
            client.write_all(b"0\r\n\r\n").await.map_err(drop)?;
        }
    }
    Ok(if oversent {
        Relayed::Oversent
    } else if head.reusable {
        Relayed::Reusable(conn)
    } else {
        Relayed::Done
    })
}

/// The next bytes of an answer body; the app closing before its end is an error.
async fn read_body(stream: &mut TcpStream, answer: &mut InBuf) -> Result<(), ()> {
    match poll_fn(|cx| answer.poll_read(stream, READ_SIZE, cx)).await {
        Ok(Read::Bytes) => Ok(()),
        Ok(Read::Eof) => {
            tracing::warn!("pass-through: the app closed the connection mid-answer");
            Err(())
        }
        Ok(Read::Full) | Err(_) => Err(()),
    }
}

/// The short answer of a failed pass-through, as the general path gives it.
fn error_answer(out: &mut Vec<u8>, err: &ForwardError, now: SystemTime, close: bool) {
    let status = err.status();
    let body = err.public_body();
    out.clear();
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    date_line(out, now);
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

/// Runs `fut` until `deadline` passes (`None` then).
async fn within<T>(deadline: &mut Deadline, fut: impl Future<Output = T>) -> Option<T> {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        if let Poll::Ready(value) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(value));
        }
        if deadline.poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// A deadline that is cheap to move later: moving it touches no timer. The timer fires at the
/// earliest deadline set since it last fired, and is then re-armed for the current one if that
/// has moved on. A keep-alive connection thus re-arms its timer about once per timeout period
/// instead of once per request (which is what hyper's per-request header timer costs).
struct Deadline {
    sleep: Pin<Box<Sleep>>,
    at: Option<Instant>,
}

impl Deadline {
    fn new() -> Deadline {
        Deadline {
            // Not registered with the timer until first polled.
            sleep: Box::pin(tokio::time::sleep_until(far_future())),
            at: None,
        }
    }

    fn set(&mut self, at: Instant) {
        self.at = Some(at);
    }

    fn clear(&mut self) {
        self.at = None;
    }

    /// Ready once the deadline has passed; never, when none is set.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(at) = self.at else {
            return Poll::Pending;
        };
        if self.sleep.deadline() > at {
            self.sleep.as_mut().reset(at);
        }
        loop {
            ready!(self.sleep.as_mut().poll(cx));
            if Instant::now() >= at {
                return Poll::Ready(());
            }
            self.sleep.as_mut().reset(at);
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

impl Buffers {
    /// Gives the buffers back once nothing is buffered (a pipelined request keeps them).
    fn release(&mut self) {
        if self.request.len() == 0 && self.request.is_allocated() {
            self.request.release();
            self.answer.release();
            spare::give(Spare::Out, std::mem::take(&mut self.out));
        }
    }
}

/// The kinds of buffer a connection takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spare {
    Request,
    Answer,
    Out,
}

impl Spare {
    /// The size buffers of this kind start with.
    const fn size(self) -> usize {
        match self {
            Spare::Request => REQUEST_BUFFER,
            Spare::Answer => READ_SIZE,
            Spare::Out => OUT_BUFFER,
        }
    }
}

/// Buffers given back by connections waiting for their next request, per thread, for the next
/// request to take: a busy thread does not allocate (or zero) per request, an idle connection
/// holds no buffer, and after a burst at most [`spare::KEPT`] of each kind stay per thread (the
/// rest, and any that grew past their size, are freed).
mod spare {
    use std::cell::RefCell;

    use super::Spare;

    /// Spare buffers kept per kind and thread.
    pub(super) const KEPT: usize = 64;

    thread_local! {
        static SPARE: RefCell<[Vec<Vec<u8>>; 3]> = const {
            RefCell::new([Vec::new(), Vec::new(), Vec::new()])
        };
    }

    fn index(kind: Spare) -> usize {
        match kind {
            Spare::Request => 0,
            Spare::Answer => 1,
            Spare::Out => 2,
        }
    }

    /// A buffer of `kind`'s size: `len` that size for read buffers (initialized memory), empty
    /// with that capacity for `Out`.
    pub(super) fn take(kind: Spare) -> Vec<u8> {
        let reused = SPARE
            .try_with(|spare| spare.borrow_mut()[index(kind)].pop())
            .ok()
            .flatten();
        let mut buffer = reused.unwrap_or_else(|| match kind {
            Spare::Out => Vec::with_capacity(kind.size()),
            Spare::Request | Spare::Answer => vec![0; kind.size()],
        });
        if kind == Spare::Out {
            buffer.clear();
        }
        buffer
    }

    /// Gives `buffer` back; kept for reuse if it has its kind's size and there is room.
    pub(super) fn give(kind: Spare, buffer: Vec<u8>) {
        let fits = match kind {
            Spare::Out => buffer.capacity() == kind.size(),
            Spare::Request | Spare::Answer => {
                buffer.len() == kind.size() && buffer.capacity() == kind.size()
            }
        };
        if !fits {
            return;
        }
        let _ = SPARE.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            let kept = &mut spare[index(kind)];
            if kept.len() < KEPT {
                kept.push(buffer);
            }
        });
    }
}

/// A read buffer of initialized memory: `data[start..end]` is unread.
struct InBuf {
    /// Empty until the first read.
    data: Vec<u8>,
    start: usize,
    end: usize,
    kind: Spare,
}

enum Read {
    /// Some bytes arrived.
    Bytes,
    Eof,
    /// The buffer holds its limit unread.
    Full,
}

impl InBuf {
    /// A buffer that takes its memory at the first read.
    fn new(kind: Spare) -> InBuf {
        InBuf {
            data: Vec::new(),
            start: 0,
            end: 0,
            kind,
        }
    }

    fn is_allocated(&self) -> bool {
        !self.data.is_empty()
    }

    /// Gives the memory back (what is unread is dropped).
    fn release(&mut self) {
        spare::give(self.kind, std::mem::take(&mut self.data));
        self.clear();
    }

    fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.clear();
        }
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    fn into_unread(mut self) -> Vec<u8> {
        self.data.truncate(self.end);
        self.data.drain(..self.start);
        self.data
    }

    /// Reads what is available into the free space, making room first (up to `limit` bytes
    /// unread in all).
    fn poll_read<S: AsyncRead + Unpin>(
        &mut self,
        io: &mut S,
        limit: usize,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Read>> {
        if self.end == self.data.len() {
            if self.start > 0 {
                self.data.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.data.is_empty() && limit > 0 {
                self.data = spare::take(self.kind);
                self.data.truncate(limit);
            } else if self.data.len() < limit {
                let grown = (self.data.len() * 2).min(limit);
                self.data.resize(grown, 0);
            } else {
                return Poll::Ready(Ok(Read::Full));
            }
        }
        let mut free = ReadBuf::new(&mut self.data[self.end..]);
        ready!(Pin::new(io).poll_read(cx, &mut free))?;
        let n = free.filled().len();
        self.end += n;
        Poll::Ready(Ok(if n == 0 { Read::Eof } else { Read::Bytes }))
    }
}

/// The header names the lane acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    ProxyConnection,
    Te,
    Trailer,
    Upgrade,
    Expect,
    Date,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    Other,
}

impl Name {
    /// Dropped on the way through, both ways (RFC 9110 §7.6.1).
    fn is_hop_by_hop(self) -> bool {
        matches!(
            self,
            Name::Connection
                | Name::KeepAlive
                | Name::ProxyConnection
                | Name::Te
                | Name::Trailer
                | Name::TransferEncoding
                | Name::Upgrade
        )
    }
}

fn classify(name: &str) -> Name {
    let name = name.as_bytes();
    let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
    match name.len() {
        2 if is(b"te") => Name::Te,
        4 if is(b"host") => Name::Host,
        4 if is(b"date") => Name::Date,
        6 if is(b"expect") => Name::Expect,
        7 if is(b"upgrade") => Name::Upgrade,
        7 if is(b"trailer") => Name::Trailer,
        10 if is(b"connection") => Name::Connection,
        10 if is(b"keep-alive") => Name::KeepAlive,
        14 if is(b"content-length") => Name::ContentLength,
        15 if is(b"x-forwarded-for") => Name::XForwardedFor,
        16 if is(b"proxy-connection") => Name::ProxyConnection,
        16 if is(b"x-forwarded-host") => Name::XForwardedHost,
        17 if is(b"transfer-encoding") => Name::TransferEncoding,
        17 if is(b"x-forwarded-proto") => Name::XForwardedProto,
        _ => Name::Other,
    }
}

/// `X-Heapgate-*`: the proxy's own voice, never the app's.
fn is_reserved(name: &str) -> bool {
    name.len() >= RESERVED_PREFIX.len()
        && name.as_bytes()[..RESERVED_PREFIX.len()].eq_ignore_ascii_case(RESERVED_PREFIX.as_bytes())
}

/// The header names a message's `Connection` lists (RFC 9110 §7.6.1), dropped with it. `Host`
/// and `Content-Length` are never dropped this way: they route and frame the message (the general
/// path, which re-frames bodies itself, ends up sending both too).
#[derive(Default)]
struct Listed<'a> {
    names: [&'a [u8]; 8],
    count: usize,
    /// More names than `names` holds: they are looked up in the `Connection` lines again.
    overflow: bool,
}

impl<'a> Listed<'a> {
    fn add(&mut self, token: &'a [u8]) {
        if token.eq_ignore_ascii_case(b"keep-alive") || token.eq_ignore_ascii_case(b"close") {
            return;
        }
        if self.count == self.names.len() {
            self.overflow = true;
        } else {
            self.names[self.count] = token;
            self.count += 1;
        }
    }

    /// Whether `header` (named `name`) goes with the `Connection` lines of `headers`.
    fn drops(
        &self,
        header: &httparse::Header<'_>,
        name: Name,
        headers: &[httparse::Header<'_>],
    ) -> bool {
        if matches!(name, Name::Host | Name::ContentLength) {
            return false;
        }
        let listed = |token: &[u8]| token.eq_ignore_ascii_case(header.name.as_bytes());
        if self.overflow {
            headers
                .iter()
                .filter(|h| classify(h.name) == Name::Connection)
                .flat_map(|h| connection_tokens(h.value))
                .any(listed)
        } else {
            self.names[..self.count].iter().any(|token| listed(token))
        }
    }
}

/// An origin-form target of unreserved, sub-delim, `:`, `@`, `/`, `?` and `%` bytes: one the
/// `http` crate would parse as is (no fragment, nothing it could reject or rewrite).
fn is_plain_target(target: &str) -> bool {
    target.starts_with('/')
        && target.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'@'
                        | b'/'
                        | b'?'
                        | b'%'
                )
        })
}

/// `Content-Length: N`, N in decimal without leading zeros.
fn length_line(out: &mut Vec<u8>, length: u64) {
    let _ = write!(out, "Content-Length: {length}\r\n");
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A `Date` line for `now`, as hyper's server adds to answers without one; the text is
/// formatted once per second per thread.
fn date_line(out: &mut Vec<u8>, now: SystemTime) {
    thread_local! {
        static DATE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
    }
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(cached, text)| {
        if *cached != second || text.is_empty() {
            *text = httpdate::fmt_http_date(now);
            *cached = second;
        }
        header_line(out, b"Date", text.as_bytes());
    });
}

/// Finds where a chunked body ends, checking its framing on the way (RFC 9112 §7.1).
#[derive(Debug, Default)]
struct Chunks {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// In a chunk size, with its value so far.
    #[default]
    SizeStart,
    Size(u64),
    /// In chunk extensions, the size known.
    Extension(u64),
    SizeLf(u64),
    /// This many data bytes left.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

impl Chunks {
    fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// How many of `bytes` belong to the body (all, unless it ends within them); `data` gets
    /// the chunks' data bytes, in order.
    fn scan(&mut self, bytes: &[u8], mut data: impl FnMut(&[u8])) -> Result<usize, ()> {
        use ChunkState as S;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.state = match self.state {
                S::Done => return Ok(i),
                S::Data(left) => {
                    let take = (bytes.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    data(&bytes[i..i + take]);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 { S::DataCr } else { S::Data(left) };
                    continue;
                }
                S::SizeStart => S::Size(hex(b).map(u64::from).ok_or(())?),
                S::Size(size) => match (b, hex(b)) {
                    // Any number of digits (leading zeros too), as long as the value fits.
                    (_, Some(d)) => S::Size(
                        size.checked_mul(16)
                            .and_then(|n| n.checked_add(u64::from(d)))
                            .ok_or(())?,
                    ),
                    (b';' | b' ' | b'\t', _) => S::Extension(size),
                    (b'\r', _) => S::SizeLf(size),
                    _ => return Err(()),
                },
                S::Extension(size) => match b {
                    b'\r' => S::SizeLf(size),
                    b'\n' => return Err(()),
                    _ => S::Extension(size),
                },
                S::SizeLf(size) => match (b, size) {
                    (b'\n', 0) => S::TrailerStart,
                    (b'\n', size) => S::Data(size),
                    _ => return Err(()),
                },
                S::DataCr if b == b'\r' => S::DataLf,
                S::DataLf if b == b'\n' => S::SizeStart,
                S::TrailerStart if b == b'\r' => S::EndLf,
                S::TrailerStart | S::TrailerLine if b != b'\r' && b != b'\n' => S::TrailerLine,
                S::TrailerLine if b == b'\r' => S::TrailerLf,
                S::TrailerLf if b == b'\n' => S::TrailerStart,
                S::EndLf if b == b'\n' => S::Done,
                _ => return Err(()),
            };
            i += 1;
        }
        Ok(i)
    }
}

/// `n` as 8 hex digits, zero-padded (a read is far below 4 GiB).
fn hex8(n: usize) -> [u8; 8] {
    let mut digits = [b'0'; 8];
    for (i, digit) in digits.iter_mut().enumerate() {
        *digit = b"0123456789abcdef"[(n >> (4 * (7 - i))) & 0xf];
    }
    digits
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(parts: &[&[u8]]) -> Result<(usize, bool), ()> {
        let mut chunks = Chunks::default();
        let mut total = 0;
        for part in parts {
            total += chunks.scan(part, |_| {})?;
        }
        Ok((total, chunks.done()))
    }

    #[test]
    fn chunked_bodies_end_where_their_framing_says() {
        let body: &[u8] = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n";
        assert_eq!(scan_all(&[body]), Ok((body.len(), true)));
        // The data alone, without sizes, extensions or trailers.
        let mut decoded = Vec::new();
        let mut chunks = Chunks::default();
        for byte in body.chunks(1) {
            chunks
                .scan(byte, |data| decoded.extend_from_slice(data))
                .unwrap();
        }
        assert_eq!(decoded, b"hello world");
        // Split at every byte: the same end.
        for at in 0..body.len() {
            assert_eq!(
                scan_all(&[&body[..at], &body[at..]]),
                Ok((body.len(), true)),
                "{at}"
            );
        }
        // Bytes after the end are not the body's.
        let mut extra = body.to_vec();
        extra.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        assert_eq!(scan_all(&[&extra]), Ok((body.len(), true)));
        assert_eq!(scan_all(&[b"0\r\n\r\n"]), Ok((5, true)));
        assert_eq!(scan_all(&[b"a\r\n0123456789"]), Ok((13, false)));
    }

    #[test]
    fn malformed_chunk_framing_is_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"5\nhello",
            b"5\r\nhelloX",
            b"\r\n",
            b"0\r\n\n",
            b"1234567890abcdef0\r\n",
        ] {
            assert_eq!(
                scan_all(&[bad]),
                Err(()),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn content_lengths() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b" 42 "), Some(42));
        for bad in [
            &b""[..],
            b"-1",
            b"1,1",
            b"+5",
            b"0x10",
            b"1234567890123456789",
        ] {
            assert_eq!(
                parse_length(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn plain_targets() {
        for plain in ["/", "/a/b?c=1&d=%20", "/users/42;v=1", "/@me:x"] {
            assert!(is_plain_target(plain), "{plain}");
        }
        for unusual in [
            "*",
            "http://h/",
            "/a#frag",
            "/a b",
            "/q?x[]=1",
            "/\"",
            "/a\\b",
            "",
        ] {
            assert!(!is_plain_target(unusual), "{unusual}");
        }
    }

    #[test]
    fn header_names() {
        assert_eq!(classify("Content-Length"), Name::ContentLength);
        assert_eq!(classify("X-FORWARDED-FOR"), Name::XForwardedFor);
        assert_eq!(classify("x-custom"), Name::Other);
        assert!(is_reserved("X-Heapgate-Task"));
        assert!(!is_reserved("X-Heapgat"));
        assert_eq!(hex8(0x4000), *b"00004000");
        assert_eq!(hex8(11), *b"0000000b");
    }
}
