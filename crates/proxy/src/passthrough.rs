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
//! - **Upgrades.** A request that asks for a protocol switch (WebSocket) keeps its
//!   `Connection: upgrade` / `Upgrade` headers; when the app answers `101`, both connections are
//!   taken over from hyper and bytes are copied both ways until either side closes.
//! - **Failures are the sidecar's, not the app's.** If the app cannot be reached the client gets
//!   `502 upstream unavailable`; if it does not start answering within the configured head
//!   timeout, `504 upstream timed out`. The bodies never carry internal details (they could
//!   reveal addresses or OS errors to the internet); the detail is logged at `warn` instead.
//!   Bodies themselves have no timeout: a slow download or a long-lived stream is legitimate.
//! - **Speed.** Upstream connections are pooled and kept alive with `TCP_NODELAY`; the upstream
//!   URI reuses the already-parsed pieces of the incoming one (no allocation without a path
//!   prefix); header names are statics. The idle-pool timeout ([`DEFAULT_POOL_IDLE_TIMEOUT`]) is
//!   deliberately shorter than Node's default `keepAliveTimeout` of 5 s: reusing a connection
//!   that Node is closing at that very moment is the classic cause of sporadic `ECONNRESET` →
//!   502 behind a proxy.
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
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use http::header::{CONNECTION, CONTENT_TYPE, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

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

/// The base URL given for the upstream cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamUrlError {
    /// Not `http://…` (no scheme, or another one such as `https`).
    #[error("upstream URL must start with http:// (got {0:?})")]
    UnsupportedScheme(String),
    /// No host (and port) to connect to.
    #[error("upstream URL has no host: {0:?}")]
    MissingHost(String),
    /// A query on the base URL has no sensible meaning when joined with request paths.
    #[error("upstream URL must not have a query: {0:?}")]
    HasQuery(String),
}

/// Why a request could not be passed through. Each variant maps to a short, detail-free response
/// (see [`ForwardError::status`]); the `Display`/`source` chain carries the detail for logs.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The request target could not be joined with the upstream URL.
    #[error("request target cannot be mapped onto the upstream URL")]
    BadTarget(#[source] http::Error),
    /// Connecting to the upstream or exchanging the request head failed.
    #[error("upstream unavailable")]
    Unavailable(#[source] hyper_util::client::legacy::Error),
    /// The client's request body failed before the upstream answered (typically the client
    /// went away mid-upload); not the upstream's fault, so it is logged at `debug` only.
    #[error("client request body failed")]
    ClientBody(#[source] hyper_util::client::legacy::Error),
    /// The upstream did not send a response head within the configured time.
    #[error("upstream sent no response head within {0:?}")]
    TimedOut(Duration),
    /// The upstream answered `101 Switching Protocols` to a request that did not ask for it.
    #[error("upstream switched protocols without an upgrade request")]
    UnexpectedUpgrade,
}

impl ForwardError {
    /// The status the client receives for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadTarget(_) | Self::ClientBody(_) => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) | Self::UnexpectedUpgrade => StatusCode::BAD_GATEWAY,
            Self::TimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn public_body(&self) -> &'static str {
        match self {
            Self::BadTarget(_) | Self::ClientBody(_) => "bad request\n",
            Self::Unavailable(_) | Self::UnexpectedUpgrade => "upstream unavailable\n",
            Self::TimedOut(_) => "upstream timed out\n",
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

/// The application behind the sidecar, with a keep-alive connection pool to it.
///
/// Cheap to clone (one reference count); clones share the pool.
#[derive(Clone, Debug)]
pub struct Upstream {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client<HttpConnector, Body>,
    authority: Authority,
    /// Path prefix without a trailing `/`; `None` when requests keep their path.
    prefix: Option<Box<str>>,
    head_timeout: Option<Duration>,
}

impl Upstream {
    /// Prepares pass-through to `base` (see the module docs for how a path prefix is applied).
    ///
    /// `head_timeout` bounds the wait from sending a request until the upstream's response head
    /// arrives (`None`: wait as long as it takes). It includes the time to send the request body
    /// if the app reads the whole body before answering, so allow for slow uploads.
    ///
    /// Needs no runtime; forwarding must run inside Tokio.
    pub fn new(base: Uri, head_timeout: Option<Duration>) -> Result<Self, UpstreamUrlError> {
        let target = heapgate_keys::redact_userinfo(&base.to_string()).into_owned();
        let parts = base.into_parts();
        if parts.scheme.as_ref() != Some(&Scheme::HTTP) {
            return Err(UpstreamUrlError::UnsupportedScheme(target));
        }
        let Some(authority) = parts.authority else {
            return Err(UpstreamUrlError::MissingHost(target));
        };
        if authority.host().is_empty() {
            return Err(UpstreamUrlError::MissingHost(target));
        }
        let prefix = match &parts.path_and_query {
            Some(pq) if pq.query().is_some() => return Err(UpstreamUrlError::HasQuery(target)),
            Some(pq) => path_prefix(pq.path()),
            None => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                client: pooled_client(),
                authority,
                prefix,
                head_timeout,
            }),
        })
    }

    /// Passes `req` to the upstream and returns its response, or a short 4xx/5xx text response
    /// if that fails (the failure is logged at `warn`).
    ///
    /// `client_addr` is the peer of the incoming connection (from axum's `ConnectInfo`); it is
    /// appended to `X-Forwarded-For`. With `None` that header is left as received.
    pub async fn forward(&self, req: Request, client_addr: Option<SocketAddr>) -> Response {
        let method = req.method().clone();
        let uri = req.uri().clone();
        match self.try_forward(req, client_addr).await {
            Ok(response) => response,
            Err(err) => {
                log_failure(&method, uri.path(), &err);
                err.into_response()
            }
        }
    }

    /// Like [`Upstream::forward`], but hands the error back instead of logging it and turning it
    /// into a response (`ForwardError` implements `IntoResponse` for that).
    pub async fn try_forward(
        &self,
        mut req: Request,
        client_addr: Option<SocketAddr>,
    ) -> Result<Response, ForwardError> {
        let upgrade = ClientUpgrade::take(&mut req);
        let protocol = upgrade.as_ref().map(|u| u.protocol.clone());
        let upstream_req = self.upstream_request(req, client_addr, protocol)?;
        let mut response = self.send(upstream_req).await?;

        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let upgrade = upgrade.ok_or(ForwardError::UnexpectedUpgrade)?;
            return Ok(splice_upgrade(upgrade.on_upgrade, response));
        }
        strip_hop_by_hop(response.headers_mut());
        strip_reserved(response.headers_mut());
        Ok(response.map(Body::new))
    }

    /// Rewrites the incoming request into the one sent upstream.
    fn upstream_request(
        &self,
        req: Request,
        client_addr: Option<SocketAddr>,
        upgrade_protocol: Option<HeaderValue>,
    ) -> Result<Request, ForwardError> {
        let (mut parts, body) = req.into_parts();
        parts.uri = self.upstream_uri(std::mem::take(&mut parts.uri))?;
        // Always HTTP/1.1 upstream, whatever the client spoke, so the connection can be pooled.
        parts.version = Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        add_forwarded_headers(&mut parts.headers, client_addr);
        if let Some(protocol) = upgrade_protocol {
            parts.headers.insert(CONNECTION, UPGRADE_TOKEN);
            parts.headers.insert(UPGRADE, protocol);
        }
        Ok(Request::from_parts(parts, body))
    }

    /// The absolute upstream URI for an incoming request target, reusing its parsed pieces.
    fn upstream_uri(&self, incoming: Uri) -> Result<Uri, ForwardError> {
        let path_and_query = incoming
            .into_parts()
            .path_and_query
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let path_and_query = match &self.inner.prefix {
            Some(prefix) => with_prefix(prefix, &path_and_query)?,
            None => path_and_query,
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.inner.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).map_err(|err| ForwardError::BadTarget(err.into()))
    }

    /// Sends the request and waits (bounded by the head timeout) for the response head.
    async fn send(&self, req: Request) -> Result<hyper::Response<Incoming>, ForwardError> {
        let pending = self.inner.client.request(req);
        let result = match self.inner.head_timeout {
            Some(limit) => tokio::time::timeout(limit, pending)
                .await
                .map_err(|_elapsed| ForwardError::TimedOut(limit))?,
            None => pending.await,
        };
        result.map_err(|err| {
            if request_body_failed(&err) {
                ForwardError::ClientBody(err)
            } else {
                ForwardError::Unavailable(err)
            }
        })
    }
}

/// Logs a failed pass-through: `warn` for upstream trouble, `debug` for the client's own.
fn log_failure(method: &http::Method, path: &str, err: &ForwardError) {
    let status = err.status().as_u16();
    let error = ErrorChain(err);
    if matches!(err, ForwardError::ClientBody(_)) {
        tracing::debug!(%method, path, status, %error, "pass-through aborted by the client");
    } else {
        tracing::warn!(%method, path, status, %error, "pass-through failed");
    }
}

/// Whether the client error came from reading the incoming request body (the only source of
/// `axum::Error` in the chain) rather than from the upstream connection.
fn request_body_failed(err: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.is::<axum::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The keep-alive client used for every upstream request.
fn pooled_client() -> Client<HttpConnector, Body> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(DEFAULT_POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .build(connector)
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
    /// The `Upgrade` header to pass on (e.g. `websocket`).
    protocol: HeaderValue,
    /// Resolves to the client connection once our `101` has been written.
    on_upgrade: OnUpgrade,
}

impl ClientUpgrade {
    /// Takes the upgrade handle out of `req` if it asks for a protocol switch.
    fn take(req: &mut Request) -> Option<Self> {
        let headers = req.headers();
        let asks = headers
            .get_all(CONNECTION)
            .iter()
            .flat_map(connection_tokens)
            .any(|token| token.eq_ignore_ascii_case(b"upgrade"));
        let protocol = headers.get(UPGRADE).filter(|_| asks)?.clone();
        Some(Self {
            protocol,
            on_upgrade: hyper::upgrade::on(req),
        })
    }
}

/// Turns the upstream's `101` into ours and spawns the byte copy between the two connections.
fn splice_upgrade(client: OnUpgrade, mut upstream_response: hyper::Response<Incoming>) -> Response {
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
    Response::from_parts(parts, Body::empty())
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
    remove_connection_listed(headers);
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Removes `Connection` and the headers it names. Allocates only when it names a header other
/// than the usual `keep-alive` / `close` / `upgrade` (which are handled without parsing).
fn remove_connection_listed(headers: &mut HeaderMap) {
    let names_others = headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(connection_tokens)
        .any(|token| !is_common_connection_token(token));
    if names_others {
        let listed: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .flat_map(connection_tokens)
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

/// The comma-separated tokens of one `Connection` header value.
fn connection_tokens(value: &HeaderValue) -> impl Iterator<Item = &[u8]> {
    value
        .as_bytes()
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
fn add_forwarded_headers(headers: &mut HeaderMap, client_addr: Option<SocketAddr>) {
    if let Some(addr) = client_addr {
        append_forwarded_for(headers, addr.ip().to_canonical());
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(&X_FORWARDED_PROTO, PROTO_HTTP);
    }
    if !headers.contains_key(&X_FORWARDED_HOST) {
        if let Some(host) = headers.get(HOST).cloned() {
            headers.insert(&X_FORWARDED_HOST, host);
        }
    }
}

/// Appends `ip` to `X-Forwarded-For`, folding several received header lines into one list.
fn append_forwarded_for(headers: &mut HeaderMap, ip: IpAddr) {
    use fmt::Write as _;

    let mut list = BytesMut::with_capacity(64);
    for existing in headers.get_all(&X_FORWARDED_FOR) {
        let existing = existing.as_bytes().trim_ascii();
        if !existing.is_empty() {
            list.extend_from_slice(existing);
            list.extend_from_slice(b", ");
        }
    }
    // Writing into a BytesMut cannot fail; the value is ASCII from valid header values.
    if write!(list, "{ip}").is_ok() {
        if let Ok(value) = HeaderValue::from_maybe_shared(list.freeze()) {
            headers.insert(&X_FORWARDED_FOR, value);
        }
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
        append_forwarded_for(&mut map, mapped_v4.to_canonical());
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
