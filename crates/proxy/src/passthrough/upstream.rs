//! The app behind the sidecar, as both pass-through paths reach it: its base URL (checked once,
//! with the configuration), the connections to it, and the client as `X-Forwarded-For` names it.
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
//!
//! The idle-pool timeout ([`DEFAULT_POOL_IDLE_TIMEOUT`]) is deliberately shorter than Node's
//! default `keepAliveTimeout` of 5 s: reusing a connection that Node is closing at that very
//! moment is the classic cause of sporadic `ECONNRESET` → 502 behind a proxy.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use http::Uri;
use http::uri::{Authority, PathAndQuery, Scheme};
use prometheus_client::metrics::counter::Counter;
use tokio::net::TcpStream;

use crate::passthrough::rules::ForwardError;

/// How long an idle upstream connection stays in the pool. Below Node's default
/// `server.keepAliveTimeout` (5 s) so the sidecar, not Node, closes idle connections.
pub(crate) const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// How long to wait for a TCP connection to the upstream. Loopback refusals are immediate; this
/// only bounds a black-holed upstream address when no head timeout is configured.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Distinguishes upstreams in the per-thread connection pools.
static NEXT_UPSTREAM_ID: AtomicU64 = AtomicU64::new(1);

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

    pub(crate) fn from_ip(ip: IpAddr) -> Peer {
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

    /// `Host` for requests that arrive without one (HTTP/1.0).
    pub(crate) fn host(&self) -> &HeaderValue {
        &self.inner.host
    }

    /// Protocols a connection may switch to, lowercase.
    pub(crate) fn upgrades(&self) -> &[String] {
        &self.inner.upgrades
    }
}

/// A failed TCP connect, named as such in logs.
#[derive(Debug, thiserror::Error)]
#[error("tcp connect error")]
struct ConnectError(#[source] std::io::Error);

/// The prefix to put before request paths, or `None` for `""` and `"/"`.
pub(crate) fn path_prefix(path: &str) -> Option<Box<str>> {
    let trimmed = path.trim_end_matches('/');
    (!trimmed.is_empty()).then(|| trimmed.into())
}

/// `prefix` + the request's path and query. Targets that are not paths (`OPTIONS *`) are kept.
pub(crate) fn with_prefix(
    prefix: &str,
    path_and_query: &PathAndQuery,
) -> Result<PathAndQuery, ForwardError> {
    let original = path_and_query.as_str();
    if !original.starts_with('/') {
        return Ok(path_and_query.clone());
    }
    let mut joined = String::with_capacity(prefix.len() + original.len());
    joined.push_str(prefix);
    joined.push_str(original);
    PathAndQuery::try_from(joined).map_err(|err| ForwardError::BadTarget(err.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn peers_are_written_as_plain_ips() {
        let mapped_v4: IpAddr = "::ffff:10.0.0.9".parse().expect("literal");
        assert_eq!(
            Peer::from_ip(mapped_v4.to_canonical()).as_bytes(),
            b"10.0.0.9"
        );
    }
}
