//! The public router, assembled: the snapshot and profile paths' handlers for the mode, health
//! paths during a snapshot, everything else to the app.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::Either;

use crate::gate::SnapshotGate;
use crate::guard::{GuardedPaths, Verdict};
use crate::metrics::{InFlight, Metrics, Route};
use crate::passthrough::{Peer, Upstream, UpstreamBody};

/// What pass-through needs.
pub(crate) struct Passing {
    pub(crate) upstream: Upstream,
    /// Every spelling of a snapshot path is refused here, never forwarded.
    pub(crate) guarded_paths: GuardedPaths,
    /// Health checks answered by the proxy while a snapshot blocks the app.
    pub(crate) health_paths: Vec<String>,
    pub(crate) gate: Arc<SnapshotGate>,
    pub(crate) metrics: Arc<Metrics>,
}

/// The public router: `snapshot` (the mode's handler, with its state) on `path`, the profile
/// handler on its path when served, the rest to the app.
pub(crate) fn app(
    path: &str,
    snapshot: MethodRouter,
    profile: Option<(&str, MethodRouter)>,
    passing: Arc<Passing>,
) -> Router {
    let metrics = Arc::clone(&passing.metrics);
    let mut router = Router::new().route_service(path, snapshot);
    if let Some((path, profile)) = profile {
        router = router.route_service(path, profile);
    }
    router
        .fallback(passthrough)
        .with_state(passing)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&metrics),
            refuse_unclear_host,
        ))
        .layer(middleware::from_fn_with_state(metrics, count_in_flight))
}

/// The `Host` rules of RFC 9112 §3.2, before anything routes on it: an HTTP/1.1 request needs
/// exactly one `Host`, and it must be a plain `host[:port]` (an app that builds its URL from
/// `Host` would otherwise route `Host: x/heapdump?` to its own snapshot path). With an
/// absolute-form target the target's authority is the host, so it replaces `Host`.
async fn refuse_unclear_host(
    State(metrics): State<Arc<Metrics>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Err(why) = check_host(&mut request) {
        metrics.request(Route::Passthrough, StatusCode::BAD_REQUEST);
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    next.run(request).await
}

/// The checks of [`refuse_unclear_host`]: `Err` carries the 400 body. With an absolute-form
/// target, `Host` is replaced by the target's authority.
pub(crate) fn check_host<B>(request: &mut http::Request<B>) -> Result<(), &'static str> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
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
                request.headers_mut().insert(header::HOST, host);
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

/// Forwards to the app, except health checks while a snapshot blocks the app's event loop: the
/// orchestrator would otherwise kill the app mid-snapshot.
async fn passthrough(State(state): State<Arc<Passing>>, request: Request) -> Response {
    if let Some(answer) = answered_here(&state, request.uri().path()) {
        return answer;
    }
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let response = state.upstream.forward(request, client).await;
    state.metrics.request(Route::Passthrough, response.status());
    response
}

/// [`passthrough`] for the pass-through workers: any request body, the peer formatted once per
/// connection, the upstream's body handed on unboxed.
pub(crate) async fn pass_through<B>(
    state: &Passing,
    request: http::Request<B>,
    peer: &Peer,
) -> http::Response<Either<UpstreamBody, Body>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Some(answer) = answered_here(state, request.uri().path()) {
        return answer.map(Either::Right);
    }
    let response = state.upstream.proxy(request, Some(peer)).await;
    state.metrics.request(Route::Passthrough, response.status());
    response
}

/// The answers the proxy gives itself on the pass-through route: spellings of the snapshot path
/// are refused, and health paths answer while a snapshot runs.
fn answered_here(state: &Passing, path: &str) -> Option<Response> {
    match state.guarded_paths.check(path) {
        Verdict::Pass => {}
        Verdict::Guarded => {
            // `path` is recorded as a string field: escaped in text and JSON logs alike.
            tracing::warn!(
                path,
                "refused a spelling of a snapshot path on the pass-through route"
            );
            state
                .metrics
                .request(Route::Snapshot, StatusCode::NOT_FOUND);
            return Some((StatusCode::NOT_FOUND, "not found\n").into_response());
        }
        Verdict::Refused(why) => {
            tracing::debug!(
                path,
                status = why.status().as_u16(),
                "refused a request path"
            );
            state.metrics.request(Route::Passthrough, why.status());
            return Some((why.status(), why.body()).into_response());
        }
    }
    if state.gate.is_running() && state.health_paths.iter().any(|p| p == path) {
        state.metrics.request(Route::Health, StatusCode::OK);
        return Some((StatusCode::OK, "ok: snapshot in progress\n").into_response());
    }
    None
}

/// Counts a request as in flight until its response body has been sent or dropped.
async fn count_in_flight(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let guard = InFlight::start(&metrics);
    next.run(request).await.map(|body| {
        Body::new(GuardedBody {
            body,
            _guard: guard,
        })
    })
}

struct GuardedBody {
    body: Body,
    _guard: InFlight,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
