//! The general path: forwarding through hyper's server and client, for every request the
//! plain-request lane ([`crate::passthrough::lane`]) leaves (see [`crate::passthrough::lane::Split`] for
//! which, and why), and for the rest of that connection.
//!
//! It follows the rulebook ([`crate::passthrough::rules`]) on hyper's header maps:
//!
//! - **Unchanged requests.** Method, path, query, headers (including `Host` and
//!   `Proxy-Authorization`) and body go through as received, less the hop-by-hop headers, plus
//!   `X-Forwarded-*`. The original `Host` is kept (like nginx's `proxy_set_header Host $host`)
//!   so the app builds absolute URLs and virtual-host routing as it would without the sidecar.
//! - **Streaming.** Bodies are handed frame by frame between the two hyper connections; nothing
//!   is buffered whole, so uploads and downloads of any size cost constant memory and a
//!   server-sent-events or long-poll response reaches the client as the app writes it.
//! - **Upgrades.** A request that asks to switch to WebSocket (or a protocol allowed with
//!   `--allow-upgrade`) keeps its `Connection: upgrade` / `Upgrade` headers, naming only the
//!   allowed protocols; any other `Upgrade` (`h2c` with `HTTP2-Settings`, say) is dropped as the
//!   hop-by-hop header it is, and the request goes on as an ordinary one. When the app answers
//!   `101` with one of the protocols asked for, both connections are taken over from hyper and
//!   bytes are copied both ways until either side closes; a `101` to anything else is a 502 (the
//!   proxy would otherwise stop reading the client's requests, snapshot path included).
//! - **Failures are the sidecar's, not the app's.** If the app cannot be reached the client gets
//!   `502 upstream unavailable`; if it does not start answering within the configured head
//!   timeout, `504 upstream timed out` ([`ForwardError`]). Bodies themselves have no timeout: a
//!   slow download or a long-lived stream is legitimate.
//! - **Speed.** Each worker thread runs its own current-thread runtime ([`crate::workers`]);
//!   the upstream connections a worker opens are driven on that thread and pooled per thread
//!   ([`crate::conn_pool`]), so a request and its upstream exchange never wake another thread.
//!   The upstream URI reuses the already-parsed pieces of the incoming one; the client address
//!   for `X-Forwarded-For` is formatted once per connection ([`Peer`]). A request that could
//!   not even be written on a reused connection (the app closed it meanwhile) is retried on
//!   another one.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::IntoResponse;
use bytes::Bytes;
use http::header::{CONNECTION, HOST, TRANSFER_ENCODING, UPGRADE};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri, Version};
use http_body::{Frame, SizeHint};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;

use crate::conn_pool::{self, UpstreamConn, Watch, Watched};
use crate::passthrough::rules::{
    AnswerFraming, ErrorChain, ForwardError, add_forwarded, connection_tokens, log_failure,
    strip_hop_by_hop, strip_reserved,
};
use crate::passthrough::upstream::{Peer, Upstream, with_prefix};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const UPGRADE_TOKEN: HeaderValue = HeaderValue::from_static("upgrade");

/// The general path's answer: the app's body, or one of the proxy's own.
pub(crate) type GeneralResponse = http::Response<Either<UpstreamBody, Body>>;

/// Forwards `request` to `upstream` and returns the app's answer, or a short 4xx/5xx text
/// answer if that fails (the failure is logged). `peer` is appended to `X-Forwarded-For`.
pub(crate) async fn forward<B>(
    upstream: &Upstream,
    request: Request<B>,
    peer: Option<&Peer>,
) -> GeneralResponse
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let method = request.method().clone();
    let path = request.uri().path_and_query().cloned();
    match General(upstream).exchange(request, peer).await {
        Ok(response) => response.map(Either::Left),
        Err(err) => {
            let path = path.as_ref().map_or("", PathAndQuery::path);
            log_failure(&method, path, &err);
            err.into_response().map(Either::Right)
        }
    }
}

/// An upstream as the general path uses it: through hyper's client.
struct General<'a>(&'a Upstream);

impl General<'_> {
    /// One request to the app and the head of its answer, rewritten for the client.
    async fn exchange<B>(
        &self,
        mut req: Request<B>,
        peer: Option<&Peer>,
    ) -> Result<http::Response<UpstreamBody>, ForwardError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let upgrade = ClientUpgrade::take(&mut req, self.0.upgrades());
        let protocol = upgrade.as_ref().map(|u| u.protocol.clone());
        let upstream_req = self.upstream_request(req, peer, protocol)?;
        let (mut response, sender) = self.send(upstream_req).await?;

        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            // The connection now belongs to the tunnel, never to the pool; its I/O must still be
            // polled until it hands over the socket.
            sender.detach();
            let upgrade = upgrade
                .filter(|upgrade| upgrade.answered_by(response.headers()))
                .ok_or(ForwardError::UnexpectedUpgrade)?;
            return Ok(splice_upgrade(upgrade.on_upgrade, response));
        }
        let mut framing = AnswerFraming::default();
        for value in response.headers().get_all(http::header::CONTENT_LENGTH) {
            framing.content_length(value.as_bytes())?;
        }
        for value in response.headers().get_all(TRANSFER_ENCODING) {
            framing.transfer_encoding(value.as_bytes())?;
        }
        // Transfer-Encoding overrides Content-Length (see `AnswerFraming`).
        if response.headers().contains_key(TRANSFER_ENCODING) {
            response.headers_mut().remove(http::header::CONTENT_LENGTH);
        }
        strip_hop_by_hop(response.headers_mut());
        strip_reserved(response.headers_mut());
        normalize_length(response.headers_mut());
        let reuse = Reuse {
            sender,
            upstream: self.0.id(),
            idle_timeout: self.0.idle_timeout(),
            oversent: self.0.oversent().clone(),
        };
        Ok(response.map(|body| UpstreamBody {
            inner: Some(body),
            reuse: Some(reuse),
        }))
    }

    /// Rewrites the incoming request into the one sent upstream.
    fn upstream_request<B>(
        &self,
        req: Request<B>,
        peer: Option<&Peer>,
        upgrade_protocol: Option<HeaderValue>,
    ) -> Result<Request<Body>, ForwardError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = req.into_parts();
        parts.uri = self.upstream_uri(std::mem::take(&mut parts.uri))?;
        // Always HTTP/1.1 upstream, whatever the client spoke, so the connection can be pooled.
        parts.version = Version::HTTP_11;
        let headers = &mut parts.headers;
        // Room for the X-Forwarded-* headers in one step rather than several regrowths.
        headers.reserve(3);
        strip_hop_by_hop(headers);
        add_forwarded(headers, peer.map(Peer::as_bytes));
        if !headers.contains_key(HOST) {
            headers.insert(HOST, self.0.host().clone());
        }
        if let Some(protocol) = upgrade_protocol {
            headers.insert(CONNECTION, UPGRADE_TOKEN);
            headers.insert(UPGRADE, protocol);
        }
        Ok(Request::from_parts(parts, Body::new(body)))
    }

    /// The origin-form upstream target for an incoming request target, reusing its parsed
    /// pieces (the connection already goes to the upstream's authority).
    fn upstream_uri(&self, incoming: Uri) -> Result<Uri, ForwardError> {
        let path_and_query = incoming
            .into_parts()
            .path_and_query
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let path_and_query = match self.0.prefix() {
            Some(prefix) => with_prefix(prefix, &path_and_query)?,
            None => path_and_query,
        };
        Ok(Uri::from(path_and_query))
    }

    /// Sends the request and waits (bounded by the head timeout) for the response head. Returns
    /// the connection with it, to be pooled again once the response body is complete.
    async fn send(
        &self,
        req: Request<Body>,
    ) -> Result<(hyper::Response<Incoming>, UpstreamConn), ForwardError> {
        let exchange = self.on_a_connection(req);
        match self.0.head_timeout() {
            Some(limit) => tokio::time::timeout(limit, exchange)
                .await
                .map_err(|_elapsed| ForwardError::TimedOut(limit))?,
            None => exchange.await,
        }
    }

    /// One request on a pooled connection, or a new one. A request that was not written because
    /// the pooled connection had closed meanwhile goes to the next one (it has not been seen by
    /// the app, so this is safe for any method). The connection is driven from this task.
    async fn on_a_connection(
        &self,
        mut req: Request<Body>,
    ) -> Result<(hyper::Response<Incoming>, UpstreamConn), ForwardError> {
        loop {
            let (mut conn, reused) = match conn_pool::checkout(self.0.id(), Instant::now()) {
                Some(conn) => (conn, true),
                None => (self.connect().await?, false),
            };
            let ready = std::future::poll_fn(|cx| {
                if conn.sender.is_ready() {
                    return Poll::Ready(Ok(()));
                }
                conn.drive(cx);
                conn.sender.poll_ready(cx)
            })
            .await;
            if let Err(err) = ready {
                if reused {
                    continue;
                }
                return Err(ForwardError::Unavailable(Box::new(err)));
            }
            let mut sending = std::pin::pin!(conn.sender.try_send_request(req));
            let sent = std::future::poll_fn(|cx| {
                conn.drive(cx);
                sending.as_mut().poll(cx)
            })
            .await;
            match sent {
                // Bytes were waiting right before the request was written: what came back may be
                // them, not the answer. Never used again, nor its answer.
                Ok(_) if conn.oversent() => {
                    conn_pool::retire(self.0.oversent());
                    return Err(ForwardError::Unavailable(
                        "the app sent bytes outside an answer".into(),
                    ));
                }
                Ok(response) => return Ok((response, conn)),
                Err(mut err) => match err.take_message() {
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(from_hyper(err.into_error())),
                },
            }
        }
    }
    async fn connect(&self) -> Result<UpstreamConn, ForwardError> {
        let stream = self.0.connect_tcp().await?;
        let watch = Arc::new(Watch::default());
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(Watched::new(stream, Arc::clone(&watch))))
            .await
            .map_err(|err| ForwardError::Unavailable(Box::new(err)))?;
        Ok(UpstreamConn::new(sender, connection.with_upgrades(), watch))
    }
}

/// The upstream's response body. Once it has been read to the end, the connection it came on
/// goes back to this thread's pool.
pub(crate) struct UpstreamBody {
    /// `None` for the empty body of a `101` we answer ourselves.
    inner: Option<Incoming>,
    reuse: Option<Reuse>,
}

struct Reuse {
    sender: UpstreamConn,
    upstream: u64,
    idle_timeout: Duration,
    oversent: Counter,
}

impl UpstreamBody {
    fn empty() -> UpstreamBody {
        UpstreamBody {
            inner: None,
            reuse: None,
        }
    }

    fn release(&mut self) {
        if let Some(reuse) = self.reuse.take() {
            conn_pool::checkin(
                reuse.upstream,
                reuse.idle_timeout,
                &reuse.oversent,
                reuse.sender,
                Instant::now(),
            );
        }
    }
}

impl fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamBody").finish_non_exhaustive()
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        // The connection's reads fill the body; nobody else polls it.
        if let Some(reuse) = this.reuse.as_mut() {
            reuse.sender.drive(cx);
        }
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            // Trailers are a chunked body's last frame (hyper's client has read the whole
            // message to yield them), and hyper's server stops polling after them: release now,
            // or the connection would be dropped with the body.
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => this.release(),
            // A broken body leaves the connection in an unknown state: never reuse it.
            Poll::Ready(Some(Err(_))) => this.reuse = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), http_body::Body::size_hint)
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // hyper's server stops polling once `is_end_stream` says so (bodies of known length):
        // the response is complete and the connection reusable. A body dropped before its end
        // (the client went away) takes the connection with it.
        if http_body::Body::is_end_stream(self) {
            self.release();
        }
    }
}

/// From a failed exchange on an upstream connection.
fn from_hyper(err: hyper::Error) -> ForwardError {
    if request_body_failed(&err) {
        ForwardError::ClientBody(Box::new(err))
    } else {
        ForwardError::Unavailable(Box::new(err))
    }
}

/// One `Content-Length`, in decimal without leading zeros, as the lane writes it: hyper's client
/// has checked that every value is the same number (`34` and `034` are), and hyper's server
/// drops it from a 204 and beside `Transfer-Encoding` (already removed).
fn normalize_length(headers: &mut HeaderMap) {
    let mut values = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let Some(first) = values.next() else {
        return;
    };
    let text = first.as_bytes().trim_ascii();
    let plain = values.next().is_none() && (text == b"0" || !text.starts_with(b"0"));
    if plain && text.len() == first.len() {
        return;
    }
    let length = std::str::from_utf8(text)
        .ok()
        .and_then(|digits| digits.parse::<u64>().ok());
    if let Some(length) = length {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(length));
    }
}

/// Whether the exchange failed reading the incoming request body (the only source of
/// `axum::Error` in the chain) rather than on the upstream connection.
fn request_body_failed(err: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.is::<axum::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The client side of a requested protocol switch.
struct ClientUpgrade {
    /// The `Upgrade` header to pass on: the allowed protocols the client asked for, in its
    /// order (e.g. `websocket`).
    protocol: HeaderValue,
    /// Resolves to the client connection once our `101` has been written.
    on_upgrade: OnUpgrade,
}

impl ClientUpgrade {
    /// Takes the upgrade handle out of `req` if it asks for a switch to one of `allowed`
    /// (lowercase protocol names, matched without a version: `websocket` allows `WebSocket/13`).
    fn take<B>(req: &mut Request<B>, allowed: &[String]) -> Option<Self> {
        let headers = req.headers();
        let asks = headers
            .get_all(CONNECTION)
            .iter()
            .flat_map(|value| connection_tokens(value.as_bytes()))
            .any(|token| token.eq_ignore_ascii_case(b"upgrade"));
        if !asks {
            return None;
        }
        let kept: Vec<&[u8]> = headers
            .get_all(UPGRADE)
            .iter()
            .flat_map(|value| connection_tokens(value.as_bytes()))
            .filter(|protocol| is_allowed(protocol, allowed))
            .collect();
        if kept.is_empty() {
            return None;
        }
        let protocol = HeaderValue::from_bytes(&kept.join(&b", "[..])).ok()?;
        Some(Self {
            protocol,
            on_upgrade: hyper::upgrade::on(req),
        })
    }

    /// Whether a `101`'s `Upgrade` names exactly one protocol, one this request asked for.
    fn answered_by(&self, headers: &HeaderMap) -> bool {
        let mut answers = headers
            .get_all(UPGRADE)
            .iter()
            .flat_map(|value| connection_tokens(value.as_bytes()));
        let (Some(answer), None) = (answers.next(), answers.next()) else {
            return false;
        };
        connection_tokens(self.protocol.as_bytes()).any(|asked| asked.eq_ignore_ascii_case(answer))
    }
}

/// Whether `protocol` (`name[/version]` from an `Upgrade` header) is one of `allowed`.
fn is_allowed(protocol: &[u8], allowed: &[String]) -> bool {
    let name = protocol.split(|&b| b == b'/').next().unwrap_or_default();
    allowed
        .iter()
        .any(|allowed| allowed.as_bytes().eq_ignore_ascii_case(name))
}

/// Turns the upstream's `101` into ours and spawns the byte copy between the two connections.
fn splice_upgrade(
    client: OnUpgrade,
    mut upstream_response: hyper::Response<Incoming>,
) -> http::Response<UpstreamBody> {
    let upstream = hyper::upgrade::on(&mut upstream_response);
    tokio::spawn(tunnel(client, upstream));

    let (mut parts, _empty_body) = upstream_response.into_parts();
    let protocol = parts.headers.get(UPGRADE).cloned();
    strip_hop_by_hop(&mut parts.headers);
    strip_reserved(&mut parts.headers);
    parts.headers.insert(CONNECTION, UPGRADE_TOKEN);
    if let Some(protocol) = protocol {
        parts.headers.insert(UPGRADE, protocol);
    }
    http::Response::from_parts(parts, UpstreamBody::empty())
}

/// Copies bytes both ways between the upgraded connections until either side closes.
async fn tunnel(client: OnUpgrade, upstream: OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(err) => {
            tracing::warn!(error = %ErrorChain(&err), "protocol upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((to_upstream, to_client)) => {
            tracing::debug!(to_upstream, to_client, "upgraded connection closed");
        }
        // Resets and aborted peers are routine for long-lived connections.
        Err(err) => tracing::debug!(error = %err, "upgraded connection ended with an error"),
    }
}
