//! The plain-request lane: ordinary HTTP/1.1 requests passed through by hand.
//!
//! Most of a service's traffic is plain: `GET /x HTTP/1.1`, one `Host`, perhaps a small body
//! with `Content-Length`, answered with `Content-Length` or chunked. For those, the general path
//! (hyper's server and client, [`crate::passthrough::general`]) costs more than the work itself: header
//! maps built and rebuilt, two protocol state machines, a timer armed per request. This lane does
//! what nginx does instead: it parses the head in place (with httparse, as hyper does), writes the
//! upstream request straight from the received bytes, and copies the answer back with its framing
//! checked, on the connection's own task, with no allocation per request. Profiled and measured
//! against nginx by `bench/passthrough`.
//!
//! Anything the lane is not sure of goes to the general path, which then serves the rest of the
//! connection, starting with the bytes already read; the split names why ([`Reason`], counted
//! in `heapgate_passthrough_split_total`, logged at debug): HTTP/1.0, `Transfer-Encoding` or `Expect`
//! on a request, upgrades, absolute-form or unusual targets, the snapshot path and every spelling
//! of it, health paths during a snapshot, malformed or oversized heads (hyper answers those with
//! its 400 or 431), bodies over [`MAX_BUFFERED_BODY`], and a body still incomplete when the
//! header timeout passes (hyper streams it, with no timeout of its own). So every refusal, and
//! every rare case, keeps exactly the general path's behaviour.
//!
//! What the lane does follows the rulebook both paths share ([`crate::passthrough::rules`]):
//! hop-by-hop headers are dropped both ways
//! (`Connection` and the headers it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`,
//! `Transfer-Encoding`, `Upgrade`), `X-Forwarded-*` are added, `X-Heapgate-*` from the app are
//! dropped, failures get the same 502/504 and short bodies, and the same timeouts apply. Header
//! names keep the case they were sent in. Request bodies (at most [`MAX_BUFFERED_BODY`]) are read
//! whole before they are sent, like nginx's `proxy_request_buffering`; answers stream, with their
//! framing checked so a confused app can never desynchronise the client's connection (chunked
//! answers are decoded and chunked again: the app's chunk extensions and trailer fields stay
//! behind, as on the general path). An idle pooled connection the app has closed is never used; a
//! request whose connection fails before any answer is retried on a new one when that is safe
//! (idempotent methods, as nginx does). While the app works, the client's socket is watched:
//! a client that leaves ends the exchange (recorded as 499, nginx's "client closed request"),
//! and so does a half-close with no further request behind the one in flight.
//! At shutdown, a request already in is finished and answered with `Connection: close`, and
//! every connection ends with a lingering close (a FIN, then what the client still sends is
//! read and dropped for up to [`LINGER`]), never a reset.
//!
//! By job: [`request`] (the split and the upstream request), [`answer`] (the app's head and the
//! body relayed), [`chunked`] (the chunked framing's state machine), [`buffers`] (buffers and
//! timers).

use std::future::poll_fn;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use http::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::conn_pool::{self, RawConn, Unread};
use crate::metrics::{InFlight, Route};
use crate::passthrough::Passthrough;
use crate::passthrough::rules::{ForwardError, log_failure, unavailable};
use crate::passthrough::upstream::Peer;
use crate::server::{ConnLimits, SendTimeout};

mod answer;
mod buffers;
mod chunked;
mod request;

use answer::{AnswerHead, AnswerRead, MAX_RESPONSE_HEAD, Relayed, plan_answer, relay_body};
use buffers::{Buffers, Closing, Deadline, InBuf, Read, Spare, within};
use request::{PlainRequest, Planned};
pub(crate) use request::{Reason, Split};

/// Request bodies up to this size are read whole and sent with the head; larger ones, and
/// bodies of unknown length, take the general path (which streams them).
pub(crate) const MAX_BUFFERED_BODY: usize = 64 * 1024;

/// Header fields per message, as hyper's default.
const MAX_HEADERS: usize = 100;
/// How long a closing connection reads and drops what the client still sends, so that its
/// close is a FIN rather than a reset that could destroy the last answer in flight (nginx's
/// lingering close).
const LINGER: Duration = Duration::from_secs(1);

/// The client's socket, with the send timeout.
type Client = SendTimeout<TcpStream>;

/// How the lane leaves a connection.
pub(crate) enum Ending {
    /// Closed, by either side or on an error.
    Done,
    /// For the general path to serve from here, for this reason; these bytes were read and not
    /// yet used.
    General(Vec<u8>, Reason),
}

/// The lane for one client connection.
pub(crate) struct Lane<'a> {
    pub(crate) passthrough: &'a Passthrough,
    pub(crate) peer: &'a Peer,
    pub(crate) limits: ConnLimits,
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
                Arrival::Request(request) => {
                    Split::Lane.count(&self.passthrough.metrics);
                    request
                }
                Arrival::General(reason) => {
                    return Ending::General(buffers.request.into_unread(), reason);
                }
                Arrival::Closed => return Ending::Done,
                Arrival::Close => {
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
    ) -> Arrival {
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
            let general = |reason| {
                if finishing {
                    Arrival::Close
                } else {
                    Arrival::General(reason)
                }
            };
            if buffers.request.len() > 0 && buffers.request.len() >= need {
                match self.plan(buffers.request.bytes(), &mut buffers.out) {
                    Planned::Ready(request) => return Arrival::Request(request),
                    Planned::General(reason) => return general(reason),
                    Planned::NeedMore => {}
                    Planned::NeedBody(total) => need = total,
                }
            }
            if finishing && need == 0 {
                return Arrival::Close;
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
                // Not reached in practice: a head over the limit is malformed (above) before the buffer,
                // which also holds a buffered body, is full.
                Wait::Read(Ok(Read::Full)) => return general(Reason::MalformedHead),
                Wait::Read(Ok(Read::Eof) | Err(_)) => return Arrival::Closed,
                // The head came in time and its body is slow: hyper streams a body with no
                // timeout of its own, so the general path takes it from here.
                Wait::TimedOut if need > 0 => return general(Reason::SlowBody),
                Wait::TimedOut => {
                    tracing::debug!("read header from client timeout");
                    return Arrival::Close;
                }
            }
        }
    }

    /// One request to the app and its answer back to the client. Records the outcome once, and
    /// returns whether the client connection stays open.
    async fn exchange(
        &self,
        client: &mut Client,
        buffers: &mut Buffers,
        request: &PlainRequest,
        closing: &mut Closing<'_>,
    ) -> bool {
        let metrics = &self.passthrough.metrics;
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
                err.write_answer(&mut buffers.out, SystemTime::now(), close);
                return client.write_all(&buffers.out).await.is_ok() && !close;
            }
        };
        metrics.request(Route::Passthrough, head.status);
        let upstream = &self.passthrough.upstream;
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
        request: &PlainRequest,
        closing: &mut Closing<'_>,
        now: Instant,
    ) -> Result<(RawConn, AnswerHead), Failure> {
        let upstream = &self.passthrough.upstream;
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
                        AnswerRead::NeedMore => break,
                        AnswerRead::Informational(len) => buffers.answer.consume(len),
                        AnswerRead::Bad(err) => return Err(Failure::Forward(err)),
                        AnswerRead::Ready(head) => return Ok((conn, head)),
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

/// Ends a connection: a FIN, then whatever the client still sends is read and dropped for a
/// moment, so the last answer is not destroyed by a reset.
async fn linger(client: &mut Client, buffer: &mut InBuf) {
    if client.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        loop {
            buffer.clear();
            match poll_fn(|cx| buffer.poll_read(client, Spare::Request.size(), cx)).await {
                Ok(Read::Bytes) => {}
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// What [`Lane::next_request`] found.
enum Arrival {
    Request(PlainRequest),
    General(Reason),
    /// The client closed, or the connection failed.
    Closed,
    /// End the connection (shutdown, or the header timeout).
    Close,
}

enum Wait {
    Read(std::io::Result<Read>),
    Closing,
    TimedOut,
}
