//! Pass-through of ordinary traffic to the application behind the sidecar.
//!
//! The sidecar sits in front of every request of a production service, but only one path is its
//! own; everything else must reach the app as if the sidecar were not there. That drives the
//! design:
//!
//! - **Unchanged requests.** Method, path, query, headers (including `Host` and
//!   `Proxy-Authorization`) and body go through as received. Only the hop-by-hop headers of
//!   RFC 9110 §7.6.1 are dropped (`Connection` and every header it names, `Keep-Alive`,
//!   `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`), in both directions,
//!   because they describe *our* connection to the peer, not the upstream one. The original
//!   `Host` is kept (like nginx's `proxy_set_header Host $host`) so the app builds absolute URLs
//!   and virtual-host routing as it would without the sidecar.
//! - **`X-Forwarded-*`.** The app loses the client's address behind the sidecar, so the client IP
//!   is appended to `X-Forwarded-For` (keeping any list a load balancer put there — the app must
//!   trust only as many right-most entries as it has proxies). `X-Forwarded-Proto` (`http`) and
//!   `X-Forwarded-Host` (the incoming `Host`) are added only when absent, because a balancer in
//!   front (ALB, nginx) that terminated TLS knows better than we do.
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
//!   timeout, `504 upstream timed out`. The bodies never carry internal details (they could
//!   reveal addresses or OS errors to the internet); the detail is logged at `warn` instead.
//!   Bodies themselves have no timeout: a slow download or a long-lived stream is legitimate.
//! - **Speed.** The sidecar must not cost more per request than nginx would in its place. Plain
//!   requests never reach this module: the plain-request lane ([`crate::lane`]) passes them by
//!   hand, and only what it leaves (upgrades, streamed uploads, HTTP/1.0, unusual targets, the
//!   snapshot path's spellings) comes here, through hyper. Each worker thread runs its own
//!   current-thread runtime ([`crate::workers`]); the upstream connections a worker opens are
//!   driven on that thread and pooled per thread ([`crate::conn_pool`]), so a request and its
//!   upstream exchange never wake another thread. Connections are kept alive with `TCP_NODELAY`;
//!   the upstream URI reuses the already-parsed pieces of the incoming one; the client address
//!   for `X-Forwarded-For` is formatted once per connection ([`Peer`]).
//!   The idle-pool timeout ([`DEFAULT_POOL_IDLE_TIMEOUT`]) is deliberately shorter than Node's
//!   default `keepAliveTimeout` of 5 s: reusing a connection that Node is closing at that very
//!   moment is the classic cause of sporadic `ECONNRESET` → 502 behind a proxy. A request that
//!   could not even be written on a reused connection (the app closed it meanwhile) is retried
//!   on another one.
//!
//! # Upstream URL
//!
//! The upstream is a base URL such as `http://127.0.0.1:3000`. Only `http` is supported (the app
//! runs next to the sidecar; TLS would only cost time). The base may carry a path prefix:
//! with `http://127.0.0.1:3000/app` a request for `/users?id=1` is sent to `/app/users?id=1`
//! (a trailing `/` on the prefix is ignored, so `/app/` behaves the same). Without a path, or
//! with `/`, paths go through unchanged. The base must not carry a query.
//!
//! A request without a `Host` header (HTTP/1.0) gets the upstream's host and port as `Host`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_TYPE, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, Uri, Version};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use prometheus_client::metrics::counter::Counter;

use crate::conn_pool::{self, UpstreamConn, Watch, Watched};

/// How long an idle upstream connection stays in the pool. Below Node's default
/// `server.keepAliveTimeout` (5 s) so the sidecar, not Node, closes idle connections.
pub(crate) const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// How long to wait for a TCP connection to the upstream. Loopback refusals are immediate; this
/// only bounds a black-holed upstream address when no head timeout is configured.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Hop-by-hop headers that are always dropped (besides `Connection` and the names it lists).
static HOP_BY_HOP: [&HeaderName; 6] = [
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &TE,
    &TRAILER,
    &TRANSFER_ENCODING,
    &UPGRADE,
];

const UPGRADE_TOKEN: HeaderValue = HeaderValue::from_static("upgrade");
const PROTO_HTTP: HeaderValue = HeaderValue::from_static("http");
const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// Distinguishes upstreams in the per-thread connection pools.
static NEXT_UPSTREAM_ID: AtomicU64 = AtomicU64::new(1);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a text is not an upstream base URL. Texts quoted here have their user info redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UpstreamUrlError {
    #[error("is not a URL: {0:?}")]
    NotAUrl(String),
    /// Not `http://host…` (another scheme such as `https`, or no host).
    #[error("must be http://HOST[:PORT], got {0:?}")]
    NotHttp(String),
    /// A query on the base URL has no sensible meaning when joined with request paths.
    #[error("must not have a query")]
    HasQuery,
    /// The proxy sends no credentials upstream; any `@` counts (a password holding `/` or `#`
    /// makes a parsed authority end before it).
    #[error("must not carry user:password@ (the proxy sends no credentials upstream)")]
    HasUserinfo,
}

/// An upstream base URL, checked once, when the configuration is: `http://HOST[:PORT][/prefix]`,
/// no query, no user info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UpstreamUrl {
    uri: Uri,
    authority: Authority,
    /// `Host` for requests that arrive without one (HTTP/1.0).
    host: HeaderValue,
}

impl UpstreamUrl {
    pub(crate) fn parse(text: &str) -> Result<UpstreamUrl, UpstreamUrlError> {
        let shown = || heapgate_keys::redact_userinfo(text).into_owned();
        if text.contains('@') {
            return Err(UpstreamUrlError::HasUserinfo);
        }
        let uri: Uri = text
            .parse()
            .map_err(|_| UpstreamUrlError::NotAUrl(shown()))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(UpstreamUrlError::NotHttp(shown()));
        }
        let authority = match uri.authority() {
            Some(authority) if !authority.host().is_empty() => authority.clone(),
            _ => return Err(UpstreamUrlError::NotHttp(shown())),
        };
        if uri.query().is_some() {
            return Err(UpstreamUrlError::HasQuery);
        }
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| UpstreamUrlError::NotHttp(shown()))?;
        Ok(UpstreamUrl {
            uri,
            authority,
            host,
        })
    }

    pub(crate) fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The path below which the app is mounted (`/` for none).
    pub(crate) fn path(&self) -> &str {
        self.uri.path()
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.uri.fmt(f)
    }
}

/// Why a request could not be passed through. Each variant maps to a short, detail-free response
/// (see [`ForwardError::status`]); the `Display`/`source` chain carries the detail for logs.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    /// The request target could not be joined with the upstream URL.
    #[error("request target cannot be mapped onto the upstream URL")]
    BadTarget(#[source] http::Error),
    /// Connecting to the upstream or exchanging the request head failed.
    #[error("upstream unavailable")]
    Unavailable(#[source] BoxError),
    /// The client's request body failed before the upstream answered (typically the client
    /// went away mid-upload); not the upstream's fault, so it is logged at `debug` only.
    #[error("client request body failed")]
    ClientBody(#[source] BoxError),
    /// The upstream did not send a response head within the configured time.
    #[error("upstream sent no response head within {0:?}")]
    TimedOut(Duration),
    /// The upstream answered `101 Switching Protocols` to a request that did not ask for it.
    #[error("upstream switched protocols without an upgrade request")]
    UnexpectedUpgrade,
}

impl ForwardError {
    /// The status the client receives for this error.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::BadTarget(_) | Self::ClientBody(_) => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) | Self::UnexpectedUpgrade => StatusCode::BAD_GATEWAY,
            Self::TimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub(crate) fn public_body(&self) -> &'static str {
        match self {
            Self::BadTarget(_) | Self::ClientBody(_) => "bad request\n",
            Self::Unavailable(_) | Self::UnexpectedUpgrade => "upstream unavailable\n",
            Self::TimedOut(_) => "upstream timed out\n",
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
}

impl IntoResponse for ForwardError {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.public_body()));
        *response.status_mut() = self.status();
        response.headers_mut().insert(CONTENT_TYPE, TEXT_PLAIN);
        response
    }
}

/// The client end of a connection, as appended to `X-Forwarded-For`: formatted once per
/// connection rather than once per request.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    header: HeaderValue,
}

impl Peer {
    /// The address as written into `X-Forwarded-For`.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.header.as_bytes()
    }

    /// The peer of an incoming connection (IPv4-mapped IPv6 addresses shown as IPv4).
    pub(crate) fn new(addr: SocketAddr) -> Peer {
        Peer::from_ip(addr.ip().to_canonical())
    }

    fn from_ip(ip: IpAddr) -> Peer {
        // An IP address in text is always a valid header value.
        let header = HeaderValue::from_maybe_shared(Bytes::from(ip.to_string()))
            .unwrap_or(HeaderValue::from_static("unknown"));
        Peer { header }
    }
}

/// The application behind the sidecar, with keep-alive connections to it (see
/// [`crate::conn_pool`]).
///
/// Cheap to clone (one reference count); clones share the pool.
#[derive(Clone, Debug)]
pub(crate) struct Upstream {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Key of this upstream's connections in the per-thread pools.
    id: u64,
    authority: Authority,
    /// `Host` for requests that arrive without one (HTTP/1.0).
    host: HeaderValue,
    /// Path prefix without a trailing `/`; `None` when requests keep their path.
    prefix: Option<Box<str>>,
    head_timeout: Option<Duration>,
    idle_timeout: Duration,
    /// `heapgate_upstream_oversent_total`.
    oversent: Counter,
    /// Protocols a connection may switch to, lowercase (`websocket` and `--allow-upgrade`).
    upgrades: Box<[String]>,
}

impl Upstream {
    /// Prepares pass-through to `base` (see the module docs for how a path prefix is applied).
    ///
    /// `head_timeout` bounds the wait from sending a request until the upstream's response head
    /// arrives (`None`: wait as long as it takes). It includes the time to send the request body
    /// if the app reads the whole body before answering, so allow for slow uploads.
    ///
    /// Needs no runtime; forwarding must run inside Tokio.
    pub(crate) fn new(
        base: &UpstreamUrl,
        head_timeout: Option<Duration>,
        oversent: Counter,
    ) -> Self {
        let authority = base.authority.clone();
        let host = base.host.clone();
        let prefix = path_prefix(base.path());
        Self {
            inner: Arc::new(Inner {
                id: NEXT_UPSTREAM_ID.fetch_add(1, Ordering::Relaxed),
                authority,
                host,
                prefix,
                head_timeout,
                idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
                oversent,
                upgrades: Box::new(["websocket".to_owned()]),
            }),
        }
    }

    /// The protocols a pass-through connection may switch to (lowercase); WebSocket only by
    /// default. For a new upstream, before it is shared.
    pub(crate) fn allowing_upgrades(mut self, protocols: &[String]) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.upgrades = protocols.iter().map(|p| p.to_ascii_lowercase()).collect();
        }
        self
    }

    /// Passes `req` to the upstream and returns its response, or a short 4xx/5xx text response
    /// if that fails (the failure is logged at `warn`).
    ///
    /// `client_addr` is the peer of the incoming connection (from axum's `ConnectInfo`); it is
    /// appended to `X-Forwarded-For`. With `None` that header is left as received.
    pub(crate) async fn forward(
        &self,
        req: axum::extract::Request,
        client_addr: Option<SocketAddr>,
    ) -> Response {
        let peer = client_addr.map(Peer::new);
        self.proxy(req, peer.as_ref()).await.map(Body::new)
    }

    /// The hot path behind [`Upstream::forward`]: any request body, the peer already formatted,
    /// and the upstream's body handed on without boxing. Failures are logged and answered with
    /// a short text body.
    pub(crate) async fn proxy<B>(
        &self,
        req: Request<B>,
        peer: Option<&Peer>,
    ) -> http::Response<http_body_util::Either<UpstreamBody, Body>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let method = req.method().clone();
        let path = req.uri().path_and_query().cloned();
        match self.try_proxy(req, peer).await {
            Ok(response) => response.map(http_body_util::Either::Left),
            Err(err) => {
                let path = path.as_ref().map_or("", PathAndQuery::path);
                log_failure(&method, path, &err);
                err.into_response().map(http_body_util::Either::Right)
            }
        }
    }

    /// Like [`Upstream::proxy`], handing the error back.
    pub(crate) async fn try_proxy<B>(
        &self,
        mut req: Request<B>,
        peer: Option<&Peer>,
    ) -> Result<http::Response<UpstreamBody>, ForwardError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let upgrade = ClientUpgrade::take(&mut req, &self.inner.upgrades);
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
        // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3): the body is re-framed for
        // the client, so a length sent with it must not go on.
        if response.headers().contains_key(TRANSFER_ENCODING) {
            response.headers_mut().remove(http::header::CONTENT_LENGTH);
        }
        strip_hop_by_hop(response.headers_mut());
        strip_reserved(response.headers_mut());
        normalize_length(response.headers_mut());
        let reuse = Reuse {
            sender,
            upstream: self.inner.id,
            idle_timeout: self.inner.idle_timeout,
            oversent: self.inner.oversent.clone(),
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
        add_forwarded_headers(headers, peer);
        if !headers.contains_key(HOST) {
            headers.insert(HOST, self.inner.host.clone());
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
        let path_and_query = match &self.inner.prefix {
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
        let exchange = self.exchange(req);
        match self.inner.head_timeout {
            Some(limit) => tokio::time::timeout(limit, exchange)
                .await
                .map_err(|_elapsed| ForwardError::TimedOut(limit))?,
            None => exchange.await,
        }
    }

    /// One request on a pooled connection, or a new one. A request that was not written because
    /// the pooled connection had closed meanwhile goes to the next one (it has not been seen by
    /// the app, so this is safe for any method). The connection is driven from this task.
    async fn exchange(
        &self,
        mut req: Request<Body>,
    ) -> Result<(hyper::Response<Incoming>, UpstreamConn), ForwardError> {
        loop {
            let (mut conn, reused) = match conn_pool::checkout(self.inner.id, Instant::now()) {
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
                    conn_pool::retire(&self.inner.oversent);
                    return Err(ForwardError::Unavailable(
                        "the app sent bytes outside an answer".into(),
                    ));
                }
                Ok(response) => return Ok((response, conn)),
                Err(mut err) => match err.take_message() {
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(ForwardError::from_hyper(err.into_error())),
                },
            }
        }
    }

    /// Opens a TCP connection to the upstream, with `TCP_NODELAY`.
    pub(crate) async fn connect_tcp(&self) -> Result<TcpStream, ForwardError> {
        let authority = &self.inner.authority;
        let host = authority.host();
        // `[::1]` in a URL is `::1` to the resolver.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = authority.port_u16().unwrap_or(80);
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_elapsed| {
                ForwardError::Unavailable(
                    format!("tcp connect timed out after {CONNECT_TIMEOUT:?}").into(),
                )
            })?
            .map_err(|err| ForwardError::Unavailable(Box::new(ConnectError(err))))?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// Key of this upstream's connections in the per-thread pools.
    pub(crate) fn id(&self) -> u64 {
        self.inner.id
    }

    /// The path prefix put before request paths, if any (no trailing `/`).
    pub(crate) fn prefix(&self) -> Option<&str> {
        self.inner.prefix.as_deref()
    }

    /// How long to wait for the response head, if bounded.
    pub(crate) fn head_timeout(&self) -> Option<Duration> {
        self.inner.head_timeout
    }

    /// How long an idle connection stays pooled.
    pub(crate) fn idle_timeout(&self) -> Duration {
        self.inner.idle_timeout
    }

    /// `heapgate_upstream_oversent_total`.
    pub(crate) fn oversent(&self) -> &Counter {
        &self.inner.oversent
    }

    /// Opens a connection to the upstream (driven by whoever uses it, see [`conn_pool`]).
    async fn connect(&self) -> Result<UpstreamConn, ForwardError> {
        let stream = self.connect_tcp().await?;
        let watch = Arc::new(Watch::default());
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(Watched::new(stream, Arc::clone(&watch))))
            .await
            .map_err(|err| ForwardError::Unavailable(Box::new(err)))?;
        Ok(UpstreamConn::new(sender, connection.with_upgrades(), watch))
    }
}

/// A failed TCP connect, named as such in logs.
#[derive(Debug, thiserror::Error)]
#[error("tcp connect error")]
struct ConnectError(#[source] std::io::Error);

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

/// Logs a failed pass-through: `warn` for upstream trouble, `debug` for the client's own.
pub(crate) fn log_failure(method: &http::Method, path: &str, err: &ForwardError) {
    let status = err.status().as_u16();
    let error = ErrorChain(err);
    if matches!(err, ForwardError::ClientBody(_)) {
        tracing::debug!(%method, path, status, %error, "pass-through aborted by the client");
    } else {
        tracing::warn!(%method, path, status, %error, "pass-through failed");
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

/// The prefix to put before request paths, or `None` for `""` and `"/"`.
fn path_prefix(path: &str) -> Option<Box<str>> {
    let trimmed = path.trim_end_matches('/');
    (!trimmed.is_empty()).then(|| trimmed.into())
}

/// `prefix` + the request's path and query. Targets that are not paths (`OPTIONS *`) are kept.
fn with_prefix(prefix: &str, path_and_query: &PathAndQuery) -> Result<PathAndQuery, ForwardError> {
    let original = path_and_query.as_str();
    if !original.starts_with('/') {
        return Ok(path_and_query.clone());
    }
    let mut joined = String::with_capacity(prefix.len() + original.len());
    joined.push_str(prefix);
    joined.push_str(original);
    PathAndQuery::try_from(joined).map_err(|err| ForwardError::BadTarget(err.into()))
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

/// Drops the hop-by-hop headers: `Connection`, every header it names, and the fixed list.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names (most messages carry none of these, or only `Connection`) rather
    // than a hash lookup per name.
    let mut connection = false;
    let mut present = 0u8;
    for name in headers.keys() {
        if name == CONNECTION {
            connection = true;
        } else if let Some(index) = HOP_BY_HOP.iter().position(|hop| name == *hop) {
            present |= 1 << index;
        }
    }
    if connection {
        remove_connection_listed(headers);
    }
    for (index, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << index) != 0 {
            headers.remove(*name);
        }
    }
}

/// Removes `Connection` and the headers it names. Allocates only when it names a header other
/// than the usual `keep-alive` / `close` / `upgrade` (which are handled without parsing).
fn remove_connection_listed(headers: &mut HeaderMap) {
    let names_others = headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|value| connection_tokens(value.as_bytes()))
        .any(|token| !is_common_connection_token(token));
    if names_others {
        let listed: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .flat_map(|value| connection_tokens(value.as_bytes()))
            .filter_map(|token| HeaderName::from_bytes(token).ok())
            // `Connection: host` must not strip the request of its `Host`.
            .filter(|name| name != HOST)
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    headers.remove(CONNECTION);
}

/// The answer-framing rule both paths follow (the lane while parsing the app's head, the
/// general path on what hyper's client parsed): every `Content-Length` is digits only (no
/// `5, 5` lists) and all are the same number; `Transfer-Encoding` appears once and is exactly
/// `chunked` (a coding such as `gzip, chunked` would be dropped on re-chunking, and `chunked,
/// gzip` is read to close). Anything else is a 502: an app that frames oddly is not guessed at.
#[derive(Debug, Default)]
pub(crate) struct AnswerFraming {
    pub(crate) length: Option<u64>,
    pub(crate) chunked: bool,
}

impl AnswerFraming {
    pub(crate) fn content_length(&mut self, value: &[u8]) -> Result<(), ForwardError> {
        match (self.length, parse_length(value)) {
            (None, Some(n)) => self.length = Some(n),
            (Some(m), Some(n)) if m == n => {}
            _ => {
                return Err(ForwardError::Unavailable(
                    "invalid Content-Length in the answer".into(),
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn transfer_encoding(&mut self, value: &[u8]) -> Result<(), ForwardError> {
        if self.chunked || !value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            return Err(ForwardError::Unavailable(
                "unsupported Transfer-Encoding in the answer".into(),
            ));
        }
        self.chunked = true;
        Ok(())
    }
}

/// A `Content-Length` value: digits only (at most 18, so it cannot overflow).
pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// One `Content-Length`, in decimal without leading zeros, as the lane writes it: hyper's client
/// has checked that every value is the same number (`34` and `034` are), and hyper's server
/// drops it from a 204 and beside `Transfer-Encoding` (already removed above).
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

/// Removes every `X-Heapgate-*` header. Those names are the proxy's voice (which task answered,
/// which inspector session): an app must not be able to speak for the proxy, since clients such
/// as `heapgate fetch` decide where they landed from them. Allocates only when one is present.
pub(crate) fn strip_reserved(headers: &mut HeaderMap) {
    let reserved = |name: &HeaderName| name.as_str().starts_with(RESERVED_PREFIX);
    if headers.keys().any(reserved) {
        let names: Vec<HeaderName> = headers.keys().filter(|n| reserved(n)).cloned().collect();
        for name in names {
            headers.remove(name);
        }
    }
}

/// The prefix of the headers only the proxy may send (header names are lowercase in `http`).
pub(crate) const RESERVED_PREFIX: &str = "x-heapgate-";

/// The comma-separated tokens of one `Connection` header value (the lane reads raw bytes).
pub(crate) fn connection_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&byte| byte == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty())
}

fn is_common_connection_token(token: &[u8]) -> bool {
    token.eq_ignore_ascii_case(b"keep-alive")
        || token.eq_ignore_ascii_case(b"close")
        || token.eq_ignore_ascii_case(b"upgrade")
}

/// Adds the `X-Forwarded-*` headers (see the module docs for the rules).
fn add_forwarded_headers(headers: &mut HeaderMap, peer: Option<&Peer>) {
    if let Some(peer) = peer {
        append_forwarded_for(headers, peer);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(&X_FORWARDED_PROTO, PROTO_HTTP);
    }
    if !headers.contains_key(&X_FORWARDED_HOST)
        && let Some(host) = headers.get(HOST).cloned()
    {
        headers.insert(&X_FORWARDED_HOST, host);
    }
}

/// Appends the peer to `X-Forwarded-For`, folding several received header lines into one list.
/// Without a received list the peer's preformatted value is used as is (no allocation).
fn append_forwarded_for(headers: &mut HeaderMap, peer: &Peer) {
    if !headers.contains_key(&X_FORWARDED_FOR) {
        headers.insert(&X_FORWARDED_FOR, peer.header.clone());
        return;
    }
    let mut list = BytesMut::with_capacity(64);
    for existing in headers.get_all(&X_FORWARDED_FOR) {
        let existing = existing.as_bytes().trim_ascii();
        if !existing.is_empty() {
            list.extend_from_slice(existing);
            list.extend_from_slice(b", ");
        }
    }
    list.extend_from_slice(peer.header.as_bytes());
    if let Ok(value) = HeaderValue::from_maybe_shared(list.freeze()) {
        headers.insert(&X_FORWARDED_FOR, value);
    }
}

/// Displays an error with its `source()` chain, `outer: inner: …`, for log lines.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn strips_connection_listed_and_fixed_hop_by_hop_headers() {
        let mut map = headers(&[
            ("connection", "keep-alive, X-Hop"),
            ("connection", "x-other"),
            ("x-hop", "1"),
            ("x-other", "2"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic abc"),
            ("x-kept", "3"),
        ]);
        strip_hop_by_hop(&mut map);
        let mut names: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["proxy-authorization", "x-kept"]);
    }

    #[test]
    fn forwarded_for_folds_existing_lines_and_appends() {
        let mut map = headers(&[
            ("x-forwarded-for", "203.0.113.1"),
            ("x-forwarded-for", " 198.51.100.2 "),
        ]);
        let mapped_v4: IpAddr = "::ffff:10.0.0.9".parse().expect("literal");
        append_forwarded_for(&mut map, &Peer::from_ip(mapped_v4.to_canonical()));
        assert_eq!(
            map.get_all(&X_FORWARDED_FOR).iter().collect::<Vec<_>>(),
            ["203.0.113.1, 198.51.100.2, 10.0.0.9"]
        );
    }

    #[test]
    fn prefix_rules() {
        assert_eq!(path_prefix(""), None);
        assert_eq!(path_prefix("/"), None);
        assert_eq!(path_prefix("/app/").as_deref(), Some("/app"));
        let joined = with_prefix("/app", &PathAndQuery::from_static("/a?b=1")).expect("valid");
        assert_eq!(joined.as_str(), "/app/a?b=1");
        let star = with_prefix("/app", &PathAndQuery::from_static("*")).expect("valid");
        assert_eq!(star.as_str(), "*");
    }
}
