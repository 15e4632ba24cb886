//! The public router: the snapshot path, health paths during a snapshot, everything else to the
//! app.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body::{Frame, SizeHint};

use crate::config::SnapshotConfig;
use crate::gate::SnapshotGate;
use crate::gateway::Gateway;
use crate::metrics::{Metrics, Route};
use crate::passthrough::Upstream;
use crate::snapshot;
use crate::source::SnapshotSource;
use crate::task::TaskId;

/// Everything the handlers share.
pub struct AppState {
    pub snapshot: SnapshotConfig,
    pub task_id: TaskId,
    pub snapshots: Snapshots,
    pub upstream: Upstream,
    pub gate: Arc<SnapshotGate>,
    pub metrics: Arc<Metrics>,
    /// The wall clock, injectable for tests (tokens are checked against it).
    pub now: fn() -> DateTime<Utc>,
}

/// Who answers a verified snapshot request.
#[derive(Clone)]
pub enum Snapshots {
    /// This proxy takes the snapshot from its source (inspector, or the app's own endpoint).
    Local(Arc<dyn SnapshotSource>),
    /// This proxy routes the request to a chosen task behind `--upstream`.
    Gateway(Arc<Gateway>),
}

/// The public router.
pub fn app(state: Arc<AppState>) -> Router {
    let metrics = Arc::clone(&state.metrics);
    Router::new()
        .route(&state.snapshot.path, any(snapshot::handle))
        .fallback(passthrough)
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&metrics),
            refuse_ambiguous,
        ))
        .layer(middleware::from_fn_with_state(metrics, count_in_flight))
}

/// A request with two `Host` headers is answered 400 (RFC 9112 §3.2): the proxy and the app
/// could each believe a different one.
async fn refuse_ambiguous(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    if hosts.next().is_some() && hosts.next().is_some() {
        metrics.request(Route::Passthrough, StatusCode::BAD_REQUEST);
        return (StatusCode::BAD_REQUEST, "bad request: more than one Host\n").into_response();
    }
    next.run(request).await
}

/// Forwards to the app, except health checks while a snapshot blocks the app's event loop: the
/// orchestrator would otherwise kill the app mid-snapshot.
async fn passthrough(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let path = request.uri().path();
    if state.snapshot.guarded_paths.covers(path) {
        // `path` is recorded as a string field: escaped in text and JSON logs alike.
        tracing::warn!(
            path,
            "refused a spelling of a snapshot path on the pass-through route"
        );
        state
            .metrics
            .request(Route::Snapshot, StatusCode::NOT_FOUND);
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    if state.gate.is_running() && state.snapshot.health_paths.iter().any(|p| p == path) {
        state.metrics.request(Route::Health, StatusCode::OK);
        return (StatusCode::OK, "ok: snapshot in progress\n").into_response();
    }
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let response = state.upstream.forward(request, client).await;
    state.metrics.request(Route::Passthrough, response.status());
    response
}

/// Counts a request as in flight until its response body has been sent or dropped.
async fn count_in_flight(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    metrics.in_flight().inc();
    let guard = InFlight(metrics);
    next.run(request).await.map(|body| {
        Body::new(GuardedBody {
            body,
            _guard: guard,
        })
    })
}

struct InFlight(Arc<Metrics>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight().dec();
    }
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
