//! `--source gateway`: land snapshot requests on one chosen task behind a load balancer.
//!
//! Behind a balancer without stickiness (ALB in front of ECS tasks, a Kubernetes Service) each
//! new connection may reach a different task, yet a leak hunt needs several snapshots of the
//! same process. The gateway verifies the token, then repeats the request upstream on fresh
//! connections with `task=<chosen>`: heapgate sidecars that are not the chosen task answer 421
//! without taking anything, so retrying is cheap, and the chosen one streams its snapshot, which
//! the gateway passes back. It never hands back another task's snapshot: a 200 from a task other
//! than the chosen one is dropped.
//!
//! The chosen task is the request's `task`, or else the task the gateway pinned: the first one
//! that answered, kept for `pin_ttl` after its last use so a series lands on one process;
//! `repin=1` chooses anew. With `ID=URL` targets the chosen task is reached directly.
//!
//! Only targets the operator configured are ever contacted; a client can name a task, never an
//! address.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use heapgate_protocol::{
    Answer, Head, Landing, NotReached, REDACTED_HEADER, SnapshotQuery, Step, TASK_HEADER, TaskId,
    is_id_text, names_task,
};
use http::{Request, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use super::{Authorizer, Refusal, finish_on};
use crate::log_text::Escaped;
use crate::metrics::{Metrics, Route};
use crate::source::upstream::snapshot_uri;

/// Longest wait for one attempt's response head (sidecars send theirs at once).
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the gateway sends snapshot requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Targets {
    /// A balancer (or a single instance): it picks a task per connection.
    Balancer(Uri),
    /// Instances by task id, in the operator's order.
    Direct(Vec<(TaskId, Uri)>),
}

/// Gateway settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GatewayConfig {
    pub targets: Targets,
    /// The snapshot path on the targets (their `--path`).
    pub path: String,
    pub pin_ttl: Duration,
    pub max_attempts: u32,
}

/// What the gateway handler needs: one per path (snapshot, profile), sharing one [`Gateway`] so
/// both land on the same pinned task.
pub(crate) struct Routing {
    pub(crate) authorizer: Authorizer,
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) metrics: Arc<Metrics>,
    /// Which path this is, for metrics.
    pub(crate) route: Route,
    /// The same path on the sidecars.
    pub(crate) upstream_path: String,
}

/// `GET <path>?hash=…[&task=…][&probe=1][&repin=1]`, routed to the chosen task.
pub(crate) async fn handle(
    State(state): State<Arc<Routing>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    finish_on(
        state.route,
        &state.metrics,
        route(&state, &method, &uri, &headers).await,
    )
}

async fn route(
    state: &Routing,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, Refusal> {
    let request = state.authorizer.check(method, uri)?;
    let (result, attempts) = state
        .gateway
        .route(RouteRequest {
            path: &state.upstream_path,
            hash: &request.hash,
            query: &request.query,
            accept_encoding: headers.get(header::ACCEPT_ENCODING),
        })
        .await;
    state.metrics.gateway_attempts(attempts);
    match result {
        Ok(response) => {
            let task = response
                .headers()
                .get(TASK_HEADER)
                .and_then(TaskId::from_header);
            tracing::info!(attempts, task = task.as_ref().map(TaskId::as_str), status = %response.status(), "gateway routed");
            Ok(response)
        }
        Err(e) => {
            tracing::warn!(attempts, error = %Escaped(&e), "gateway could not route");
            Err(Refusal::Gateway(e))
        }
    }
}

/// What a client asked the gateway for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteRequest<'a> {
    /// The path on the sidecars (their snapshot or profile path).
    pub(crate) path: &'a str,
    /// The (already verified) token, forwarded as it is.
    pub(crate) hash: &'a str,
    pub(crate) query: &'a SnapshotQuery,
    /// The client's `Accept-Encoding`, forwarded so the chosen sidecar compresses; its encoded
    /// stream is relayed as is.
    pub(crate) accept_encoding: Option<&'a HeaderValue>,
}

/// Why a request could not be routed. Bodies name tasks (the client chose them), never addresses.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GatewayError {
    #[error("{0}")]
    NotReached(NotReached),
    #[error("no such task: {0}")]
    UnknownTask(TaskId),
    #[error("upstream: {0}")]
    Stopped(String),
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = match self {
            GatewayError::UnknownTask(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_GATEWAY,
        };
        (status, format!("{self}\n")).into_response()
    }
}

/// Routes snapshot requests to a chosen task; see the module docs.
#[derive(Debug)]
pub(crate) struct Gateway {
    config: GatewayConfig,
    client: Client<HttpConnector, Empty<Bytes>>,
    pin: Mutex<Option<Pinned>>,
}

#[derive(Debug, Clone)]
struct Pinned {
    task: TaskId,
    until: Instant,
}

impl Gateway {
    pub(crate) fn new(config: GatewayConfig) -> Gateway {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        // No pooling: a balancer picks its target per connection, so every attempt needs one.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Gateway {
            config,
            client,
            pin: Mutex::new(None),
        }
    }

    /// The task pinned now, if any.
    fn pinned(&self, now: Instant) -> Option<TaskId> {
        let pin = self.pin.lock().unwrap_or_else(PoisonError::into_inner);
        pin.as_ref()
            .filter(|p| p.until > now)
            .map(|p| p.task.clone())
    }

    fn set_pin(&self, task: Option<&TaskId>, now: Instant) {
        let mut pin = self.pin.lock().unwrap_or_else(PoisonError::into_inner);
        *pin = task.map(|task| Pinned {
            task: task.clone(),
            until: now + self.config.pin_ttl,
        });
    }

    /// Routes one verified request by the shared land-on-a-task policy ([`Landing`]). Returns
    /// the response to pass back, and how many attempts it took.
    pub(crate) async fn route(
        &self,
        request: RouteRequest<'_>,
    ) -> (Result<Response, GatewayError>, u32) {
        let now = Instant::now();
        if request.query.repin {
            self.set_pin(None, now);
        }
        let explicit = request.query.task.clone();
        let chosen = explicit.clone().or_else(|| self.pinned(now));
        // Varies the retry jitter between requests, so concurrent ones do not march in step.
        let seed = getrandom::u64().unwrap_or_else(|_| u64::from(std::process::id()));
        let mut landing = Landing::new(chosen, request.query.probe, self.config.max_attempts, seed);
        while let Some(attempt) = landing.next_attempt() {
            let Some(target) = self.target(landing.target(), attempt) else {
                let task = landing
                    .target()
                    .cloned()
                    .expect("only a chosen task can be unknown");
                return (Err(GatewayError::UnknownTask(task)), attempt);
            };
            let (answer, response) = self.attempt(&target, &request, &landing).await;
            match (landing.answer(&answer), response) {
                // The chosen task's answer, busy or not: a busy one is handed back so the
                // client waits, not the gateway.
                (Step::Deliver(task) | Step::Pinned(task), Some(response)) => {
                    if explicit.is_none() {
                        // Pin (or keep pinned) the task that answered, refreshing its lifetime.
                        self.set_pin(Some(&task), Instant::now());
                    }
                    return (Ok(pass_back(response)), attempt);
                }
                (Step::Busy { .. }, Some(response)) => return (Ok(pass_back(response)), attempt),
                (Step::Retry { delay, .. }, _) => tokio::time::sleep(delay).await,
                (Step::Stop(why), _) => {
                    let why = format!("{why} ({})", landing.describe(&answer));
                    return (Err(GatewayError::Stopped(why)), attempt);
                }
                (Step::Deliver(_) | Step::Pinned(_) | Step::Busy { .. }, None) => {
                    unreachable!("only a response head is delivered")
                }
            }
        }
        (
            Err(GatewayError::NotReached(landing.not_reached())),
            landing.attempts(),
        )
    }

    /// The URL for an attempt, or `None` when a direct table has no such task.
    fn target(&self, chosen: Option<&TaskId>, attempt: u32) -> Option<Uri> {
        match &self.config.targets {
            Targets::Balancer(base) => Some(base.clone()),
            Targets::Direct(table) => match chosen {
                Some(task) => table
                    .iter()
                    .find(|(id, _)| id == task)
                    .map(|(_, uri)| uri.clone()),
                // Unpinned: walk the table in order until one answers.
                None => {
                    let index = (attempt as usize - 1) % table.len().max(1);
                    table.get(index).map(|(_, uri)| uri.clone())
                }
            },
        }
    }

    /// One request on a new connection, and what its head says.
    async fn attempt(
        &self,
        base: &Uri,
        request: &RouteRequest<'_>,
        landing: &Landing,
    ) -> (Answer, Option<http::Response<hyper::body::Incoming>>) {
        let query = SnapshotQuery {
            hash: Some(request.hash.to_owned()),
            task: landing.target().cloned(),
            probe: landing.probing(),
            repin: false,
            format: request.query.format,
        };
        let Some(uri) = snapshot_uri(base, request.path, &query.to_query_string()) else {
            return (
                Answer::Transport("the target URL cannot be formed".into()),
                None,
            );
        };
        let mut upstream_request = Request::get(uri).header(header::CONNECTION, "close");
        if let Some(accept) = request.accept_encoding {
            upstream_request = upstream_request.header(header::ACCEPT_ENCODING, accept);
        }
        let Ok(upstream_request) = upstream_request.body(Empty::<Bytes>::new()) else {
            return (
                Answer::Transport("the request cannot be formed".into()),
                None,
            );
        };
        match tokio::time::timeout(HEAD_TIMEOUT, self.client.request(upstream_request)).await {
            Ok(Ok(response)) => {
                let answer = Answer::Head(Head::new(
                    response.status().as_u16(),
                    task_of(response.status(), response.headers()),
                    response
                        .headers()
                        .get(header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                ));
                (answer, Some(response))
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %Escaped(&e), "gateway attempt failed");
                (Answer::Transport("no answer".into()), None)
            }
            Err(_) => (Answer::Transport("no answer head in time".into()), None),
        }
    }
}

/// The task an upstream response says it came from: only on the snapshot path's own answers,
/// and only a well-formed task id.
fn task_of(status: StatusCode, headers: &HeaderMap) -> Option<TaskId> {
    headers
        .get(TASK_HEADER)
        .filter(|_| names_task(status.as_u16()))
        .and_then(TaskId::from_header)
}

/// The upstream's answer with only the headers a snapshot client needs, body streamed.
fn pass_back(response: http::Response<hyper::body::Incoming>) -> Response {
    let (parts, body) = response.into_parts();
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = parts.status;
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_DISPOSITION,
        header::RETRY_AFTER,
        header::CACHE_CONTROL,
        header::CONTENT_ENCODING,
        header::VARY,
    ] {
        if let Some(value) = parts.headers.get(&name) {
            out.headers_mut().insert(name, value.clone());
        }
    }
    // The sidecar's own headers, re-set from what was checked; nothing else `X-Heapgate-*`.
    if let Some(task) = task_of(parts.status, &parts.headers) {
        out.headers_mut().insert(TASK_HEADER, task.header_value());
    }
    let session =
        heapgate_protocol::session_of(&parts.headers).filter(|v| is_id_text(v.as_bytes()));
    if let Some(session) = session {
        heapgate_protocol::set_session(out.headers_mut(), session.clone());
    }
    if parts
        .headers
        .get(REDACTED_HEADER)
        .map(HeaderValue::as_bytes)
        == Some(b"strings")
    {
        out.headers_mut()
            .insert(REDACTED_HEADER, HeaderValue::from_static("strings"));
    }
    out
}
