//! The pass-through rulebook: what both paths — the lane on raw bytes, the general path on
//! hyper's header maps — do to a message on its way through, written once. Each rule here has
//! one body of logic; where the two representations differ (a parsed head's `&[u8]` lines, an
//! `http::HeaderMap`) the rule reads or writes through a small adapter, never a second copy.
//!
//! - **Header names and their classes** ([`Name`], [`classify`]): the hop-by-hop headers of
//!   RFC 9110 §7.6.1 (`Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`,
//!   `Transfer-Encoding`, `Upgrade`) are dropped both ways, because they describe *our*
//!   connection to the peer, not the upstream one.
//! - **`Connection`-listed names** ([`may_be_listed_away`]): dropped with `Connection`, except
//!   `Host` and `Content-Length`.
//! - **`X-Forwarded-*`** ([`add_forwarded`]): the client IP appended to `X-Forwarded-For`
//!   (keeping any list a balancer put there: the app must trust only as many right-most entries
//!   as it has proxies); `X-Forwarded-Proto: http` and `X-Forwarded-Host` (the incoming `Host`)
//!   only when absent, because a balancer in front that terminated TLS knows better than we do.
//! - **The reserved prefix** ([`is_reserved`]): `X-Heapgate-*` from the app never reaches a
//!   client.
//! - **Answer framing** ([`AnswerFraming`]).
//! - **Error answers** ([`ForwardError`]): short, detail-free bodies; the detail goes to the log.
//! - **`Host`** ([`check_host`], [`is_host`]) and **the paths the proxy answers itself**
//!   ([`OwnPaths`]).

use std::fmt;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::gate::SnapshotGate;
use crate::guard::{GuardedPaths, Refusal, Verdict};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The header names pass-through acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Name {
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
    pub(crate) fn is_hop_by_hop(self) -> bool {
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

/// The class of a header name, in any case.
pub(crate) fn classify(name: &str) -> Name {
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

/// Whether a header named in `Connection` goes with it. `Host` and `Content-Length` never do:
/// `Host` routes the message and `Content-Length` frames it, so a client that could list them
/// away would change where the app thinks the message goes or ends (`Connection:
/// content-length` is a request-smuggling probe). Both paths keep them: the lane copies them,
/// the general path keeps `Host` and hyper re-frames the body with a length of its own.
pub(crate) fn may_be_listed_away(name: Name) -> bool {
    !matches!(name, Name::Host | Name::ContentLength)
}

/// The comma-separated tokens of one `Connection` (or `Upgrade`) header value.
pub(crate) fn connection_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&byte| byte == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty())
}

/// `Connection` options that name no header (`keep-alive`, `close`), or the upgrade request.
fn is_connection_option(token: &[u8]) -> bool {
    token.eq_ignore_ascii_case(b"keep-alive")
        || token.eq_ignore_ascii_case(b"close")
        || token.eq_ignore_ascii_case(b"upgrade")
}

/// The header names a raw head's `Connection` lines list, found while the head is read once;
/// dropped with it (see [`may_be_listed_away`]).
#[derive(Default)]
pub(crate) struct Listed<'a> {
    names: [&'a [u8]; 8],
    count: usize,
    /// More names than `names` holds: they are looked up in the `Connection` lines again.
    overflow: bool,
}

impl<'a> Listed<'a> {
    pub(crate) fn add(&mut self, token: &'a [u8]) {
        if is_connection_option(token) {
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
    pub(crate) fn drops(
        &self,
        header: &httparse::Header<'_>,
        name: Name,
        headers: &[httparse::Header<'_>],
    ) -> bool {
        if !may_be_listed_away(name) {
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

/// Drops the hop-by-hop headers of a header map: `Connection`, every header it names (but see
/// [`may_be_listed_away`]), and the fixed list.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names; most messages carry none of these, or only `Connection` with
    // options that name no header.
    let mut hop: Vec<HeaderName> = Vec::new();
    let mut connection = false;
    for name in headers.keys() {
        match classify(name.as_str()) {
            Name::Connection => connection = true,
            class if class.is_hop_by_hop() => hop.push(name.clone()),
            _ => {}
        }
    }
    if connection {
        let listed: Vec<HeaderName> = headers
            .get_all(http::header::CONNECTION)
            .iter()
            .flat_map(|value| connection_tokens(value.as_bytes()))
            .filter(|token| !is_connection_option(token))
            .filter_map(|token| HeaderName::from_bytes(token).ok())
            .filter(|name| may_be_listed_away(classify(name.as_str())))
            .collect();
        hop.extend(listed);
        hop.push(http::header::CONNECTION);
    }
    for name in hop {
        headers.remove(name);
    }
}

/// `X-Heapgate-*` ([`heapgate_protocol::RESERVED_HEADER_PREFIX`]), in any case: the proxy's own
/// voice (which task answered, which inspector session). An app must not be able to speak for
/// the proxy, since clients such as `heapgate fetch` decide where they landed from these.
pub(crate) fn is_reserved(name: &str) -> bool {
    let prefix = heapgate_protocol::RESERVED_HEADER_PREFIX;
    name.len() >= prefix.len()
        && name.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Removes every reserved header (see [`is_reserved`]). Allocates only when one is present.
pub(crate) fn strip_reserved(headers: &mut HeaderMap) {
    let reserved = |name: &HeaderName| is_reserved(name.as_str());
    if headers.keys().any(reserved) {
        let names: Vec<HeaderName> = headers.keys().filter(|n| reserved(n)).cloned().collect();
        for name in names {
            headers.remove(name);
        }
    }
}

/// The `X-Forwarded-*` header a rule writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forwarded {
    For,
    Proto,
    Host,
}

impl Forwarded {
    fn name(self) -> &'static str {
        match self {
            Forwarded::For => "X-Forwarded-For",
            Forwarded::Proto => "X-Forwarded-Proto",
            Forwarded::Host => "X-Forwarded-Host",
        }
    }
}

/// A request head being rewritten, as [`add_forwarded`] sees it: the lane's raw bytes or the
/// general path's header map.
pub(crate) trait ForwardedHead {
    /// The received values of `header`, in order.
    fn received(&self, header: Forwarded) -> impl Iterator<Item = &[u8]>;
    /// Sets `header` to the concatenation of `parts`, in place of the received lines.
    fn set(&mut self, header: Forwarded, parts: &[&[u8]]);
    /// Sets `X-Forwarded-Host` to the received `Host`, if there is one.
    fn forward_host(&mut self);
}

/// Adds the `X-Forwarded-*` headers (see the module docs for the rules). `peer` is `None` when
/// the client's address is unknown: `X-Forwarded-For` is then left as received.
pub(crate) fn add_forwarded(head: &mut impl ForwardedHead, peer: Option<&[u8]>) {
    if let Some(peer) = peer {
        // Several received lines are folded into one list, the peer last.
        let mut list: Option<BytesMut> = None;
        for value in head.received(Forwarded::For) {
            let value = value.trim_ascii();
            if !value.is_empty() {
                let list = list.get_or_insert_with(|| BytesMut::with_capacity(64));
                list.extend_from_slice(value);
                list.extend_from_slice(b", ");
            }
        }
        match list {
            Some(list) => head.set(Forwarded::For, &[&list, peer]),
            None => head.set(Forwarded::For, &[peer]),
        }
    }
    if head.received(Forwarded::Proto).next().is_none() {
        head.set(Forwarded::Proto, &[b"http"]);
    }
    if head.received(Forwarded::Host).next().is_none() {
        head.forward_host();
    }
}

impl ForwardedHead for HeaderMap {
    fn received(&self, header: Forwarded) -> impl Iterator<Item = &[u8]> {
        self.get_all(header.name())
            .iter()
            .map(HeaderValue::as_bytes)
    }

    fn set(&mut self, header: Forwarded, parts: &[&[u8]]) {
        let value = match parts {
            [one] => HeaderValue::from_bytes(one),
            _ => HeaderValue::from_bytes(&parts.concat()),
        };
        if let Ok(value) = value {
            self.insert(HeaderName::from_static(lowercase(header)), value);
        }
    }

    fn forward_host(&mut self) {
        if let Some(host) = self.get(HOST).cloned() {
            self.insert(HeaderName::from_static(lowercase(Forwarded::Host)), host);
        }
    }
}

fn lowercase(header: Forwarded) -> &'static str {
    match header {
        Forwarded::For => "x-forwarded-for",
        Forwarded::Proto => "x-forwarded-proto",
        Forwarded::Host => "x-forwarded-host",
    }
}

/// A raw request head being written into `out`: the received lines are `headers`, less those
/// `listed` in `Connection` (the caller copies all but `X-Forwarded-For`, which
/// [`add_forwarded`] writes last, folded).
pub(crate) struct RawHead<'h, 'o> {
    pub(crate) headers: &'h [httparse::Header<'h>],
    pub(crate) listed: &'o Listed<'h>,
    /// Which `X-Forwarded-*` the head holds (found while it was copied), so that an absent one
    /// costs no look-up: `[For, Proto, Host]`.
    pub(crate) present: [bool; 3],
    pub(crate) host: &'h [u8],
    pub(crate) out: &'o mut Vec<u8>,
}

impl ForwardedHead for RawHead<'_, '_> {
    fn received(&self, header: Forwarded) -> impl Iterator<Item = &[u8]> {
        let (class, present) = match header {
            Forwarded::For => (Name::XForwardedFor, self.present[0]),
            Forwarded::Proto => (Name::XForwardedProto, self.present[1]),
            Forwarded::Host => (Name::XForwardedHost, self.present[2]),
        };
        self.headers[..if present { self.headers.len() } else { 0 }]
            .iter()
            .filter(move |h| {
                classify(h.name) == class && !self.listed.drops(h, class, self.headers)
            })
            .map(|h| h.value)
    }

    fn set(&mut self, header: Forwarded, parts: &[&[u8]]) {
        let out = &mut *self.out;
        out.extend_from_slice(header.name().as_bytes());
        out.extend_from_slice(b": ");
        for part in parts {
            out.extend_from_slice(part);
        }
        out.extend_from_slice(b"\r\n");
    }

    fn forward_host(&mut self) {
        let host = self.host;
        self.set(Forwarded::Host, &[host]);
    }
}

/// One header line of a raw head.
pub(crate) fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A `Date` line for `now`, as hyper's server adds to answers without one; the text is
/// formatted once per second per thread.
pub(crate) fn date_line(out: &mut Vec<u8>, now: SystemTime) {
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

/// The answer-framing rule both paths follow (the lane while parsing the app's head, the
/// general path on what hyper's client parsed): every `Content-Length` is digits only (no
/// `5, 5` lists) and all are the same number; `Transfer-Encoding` appears once and is exactly
/// `chunked` (a coding such as `gzip, chunked` would be dropped on re-chunking, and `chunked,
/// gzip` is read to close). Anything else is a 502: an app that frames oddly is not guessed at.
/// Transfer-Encoding overrides Content-Length (RFC 9112 §6.3): the body is re-framed for the
/// client, so a length sent with it does not go on.
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
            _ => return Err(unavailable("invalid Content-Length in the answer")),
        }
        Ok(())
    }

    pub(crate) fn transfer_encoding(&mut self, value: &[u8]) -> Result<(), ForwardError> {
        if self.chunked || !value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            return Err(unavailable("unsupported Transfer-Encoding in the answer"));
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

/// Why a request could not be forwarded. Each variant maps to a short, detail-free answer
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

/// The app failed in a way named by `why` (for the log only).
pub(crate) fn unavailable(why: &'static str) -> ForwardError {
    ForwardError::Unavailable(why.into())
}

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

impl ForwardError {
    /// The status the client receives for this error.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::BadTarget(_) | Self::ClientBody(_) => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) | Self::UnexpectedUpgrade => StatusCode::BAD_GATEWAY,
            Self::TimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The answer's body: never a detail (it could reveal addresses or OS errors).
    pub(crate) fn public_body(&self) -> &'static str {
        match self {
            Self::BadTarget(_) | Self::ClientBody(_) => "bad request\n",
            Self::Unavailable(_) | Self::UnexpectedUpgrade => "upstream unavailable\n",
            Self::TimedOut(_) => "upstream timed out\n",
        }
    }

    /// The same answer as [`IntoResponse`] gives, as raw bytes into `out` (the lane's).
    pub(crate) fn write_answer(&self, out: &mut Vec<u8>, now: SystemTime, close: bool) {
        let status = self.status();
        let body = self.public_body();
        out.clear();
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nContent-Type: {TEXT_PLAIN}\r\nContent-Length: {}\r\n",
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
}

impl IntoResponse for ForwardError {
    fn into_response(self) -> Response {
        text_answer(self.status(), self.public_body())
    }
}

/// A short `text/plain` answer of the proxy's own.
pub(crate) fn text_answer(status: StatusCode, body: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    response
}

/// Logs a failed forward: `warn` for upstream trouble, `debug` for the client's own.
pub(crate) fn log_failure(method: &http::Method, path: &str, err: &ForwardError) {
    let status = err.status().as_u16();
    let error = ErrorChain(err);
    if matches!(err, ForwardError::ClientBody(_)) {
        tracing::debug!(%method, path, status, %error, "pass-through aborted by the client");
    } else {
        tracing::warn!(%method, path, status, %error, "pass-through failed");
    }
}

/// Displays an error with its `source()` chain, `outer: inner: …`, for log lines.
pub(crate) struct ErrorChain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

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

/// The `Host` rules of RFC 9112 §3.2, before anything routes on it: an HTTP/1.1 request needs
/// exactly one `Host`, and it must be a plain `host[:port]` (an app that builds its URL from
/// `Host` would otherwise route `Host: x/heapdump?` to its own snapshot path). With an
/// absolute-form target the target's authority is the host, so it replaces `Host`. `Err`
/// carries the 400 body.
pub(crate) fn check_host<B>(request: &mut http::Request<B>) -> Result<(), &'static str> {
    let mut hosts = request.headers().get_all(HOST).iter();
    let (first, second) = (hosts.next(), hosts.next());
    match (first, second) {
        (_, Some(_)) => return Err("bad request: more than one Host\n"),
        (None, None) if request.version() >= http::Version::HTTP_11 => {
            return Err("bad request: no Host\n");
        }
        (Some(host), None) if !is_host(host.as_bytes()) => {
            return Err("bad request: malformed Host\n");
        }
        _ => {}
    }
    if let Some(authority) = request.uri().authority() {
        let text = authority.as_str().as_bytes();
        match HeaderValue::from_bytes(text) {
            Ok(host) if is_host(text) => {
                request.headers_mut().insert(HOST, host);
            }
            _ => return Err("bad request: malformed authority\n"),
        }
    }
    Ok(())
}

/// `host[:port]`: a registered name of letters, digits, `-`, `.`, `_`, `~`, or a bracketed
/// IPv6 literal; the port, if any, digits only.
pub(crate) fn is_host(value: &[u8]) -> bool {
    let (host, port) = match value.iter().rposition(|&b| b == b':') {
        Some(colon) if !value[colon..].contains(&b']') => {
            (&value[..colon], Some(&value[colon + 1..]))
        }
        _ => (value, None),
    };
    let name_ok = !host.is_empty()
        && host
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let literal_ok = host.len() > 2
        && host.first() == Some(&b'[')
        && host.last() == Some(&b']')
        && host[1..host.len() - 1]
            .iter()
            .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    (name_ok || literal_ok) && port_ok
}

/// The paths the proxy answers itself, and how: the one classifier the lane (which leaves all
/// of them to the general path) and the public service (which answers them) share.
#[derive(Debug)]
pub(crate) struct OwnPaths {
    pub(crate) snapshot: String,
    /// The profile path, when this mode serves it.
    pub(crate) profile: Option<String>,
    /// Every spelling of a snapshot or profile path: refused, never forwarded.
    pub(crate) guarded: GuardedPaths,
    /// Health checks answered by the proxy while a snapshot blocks the app's event loop (the
    /// orchestrator would otherwise kill the app mid-snapshot).
    pub(crate) health: Vec<String>,
    pub(crate) gate: Arc<SnapshotGate>,
}

/// Who answers a request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Addressed {
    /// The snapshot or profile route.
    Route,
    /// Another spelling of a guarded path: 404, with a warning.
    Guarded,
    /// Refused outright by the path rules.
    Refused(Refusal),
    /// A health path while a snapshot runs: 200 from the proxy.
    Health,
    /// Forwarded to the app.
    App,
}

impl OwnPaths {
    /// Who answers `path` (the target's path, as received).
    pub(crate) fn classify(&self, path: &str) -> Addressed {
        if path == self.snapshot || self.profile.as_deref() == Some(path) {
            return Addressed::Route;
        }
        match self.guarded.check(path) {
            Verdict::Pass => {}
            Verdict::Guarded => return Addressed::Guarded,
            Verdict::Refused(why) => return Addressed::Refused(why),
        }
        if self.gate.is_running() && self.health.iter().any(|p| p == path) {
            return Addressed::Health;
        }
        Addressed::App
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
            ("connection", "keep-alive, X-Hop, Host, Content-Length"),
            ("connection", "x-other"),
            ("host", "h"),
            ("content-length", "0"),
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
        assert_eq!(
            names,
            ["content-length", "host", "proxy-authorization", "x-kept"]
        );
    }

    #[test]
    fn forwarded_for_folds_existing_lines_and_appends() {
        let mut map = headers(&[
            ("x-forwarded-for", "203.0.113.1"),
            ("x-forwarded-for", " 198.51.100.2 "),
            ("host", "app.example"),
        ]);
        add_forwarded(&mut map, Some(b"10.0.0.9"));
        assert_eq!(
            map.get_all("x-forwarded-for").iter().collect::<Vec<_>>(),
            ["203.0.113.1, 198.51.100.2, 10.0.0.9"]
        );
        assert_eq!(map["x-forwarded-proto"], "http");
        assert_eq!(map["x-forwarded-host"], "app.example");
    }

    #[test]
    fn raw_and_map_heads_get_the_same_forwarded_headers() {
        let received = [
            httparse::Header {
                name: "X-Forwarded-For",
                value: b"203.0.113.1",
            },
            httparse::Header {
                name: "x-forwarded-proto",
                value: b"https",
            },
        ];
        let mut out = Vec::new();
        let listed = Listed::default();
        let mut raw = RawHead {
            headers: &received,
            listed: &listed,
            present: [true, true, false],
            host: b"app.example",
            out: &mut out,
        };
        add_forwarded(&mut raw, Some(b"10.0.0.9"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "X-Forwarded-For: 203.0.113.1, 10.0.0.9\r\nX-Forwarded-Host: app.example\r\n"
        );
    }

    #[test]
    fn content_lengths() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b" 42 "), Some(42));
        let refused: [&[u8]; 6] = [b"", b"-1", b"1,1", b"+5", b"0x10", b"1234567890123456789"];
        let parsed: Vec<Option<u64>> = refused.iter().map(|value| parse_length(value)).collect();
        assert_eq!(parsed, [None; 6]);
    }

    #[test]
    fn header_names() {
        assert_eq!(classify("Content-Length"), Name::ContentLength);
        assert_eq!(classify("X-FORWARDED-FOR"), Name::XForwardedFor);
        assert_eq!(classify("x-custom"), Name::Other);
        assert!(is_reserved("X-Heapgate-Task"));
        assert!(!is_reserved("X-Heapgat"));
    }
}
