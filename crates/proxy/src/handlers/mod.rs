//! The snapshot path, mounted by mode: [`snapshot`] takes the snapshot here (from the inspector
//! or the app's own endpoint), [`gateway`] routes it to a chosen task behind `--upstream`. Both
//! start with [`Authorizer::check`], and both end in [`finish`], the one place a snapshot-path
//! request's outcome is logged and counted.
//!
//! Order matters. The token is checked before anything else, so a client without the secret
//! learns nothing (not even the task id) and cannot make the proxy touch the app. Only then do
//! the task (421), probe (204) and gate (429) answers follow, each carrying `X-Heapgate-Task` so
//! a client behind a balancer can tell where it landed.

mod authorize;
pub(crate) mod gateway;
pub(crate) mod profile;
pub(crate) mod snapshot;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use heapgate_protocol::{QueryError, TASK_HEADER, TaskId};

pub(crate) use self::authorize::Authorizer;
use self::gateway::GatewayError;
use crate::gate::Busy;
use crate::headroom::Refused;
use crate::log_text::Escaped;
use crate::metrics::{Metrics, Outcome, RejectReason, Route};
use crate::source::SourceError;

/// Every non-200 answer of the snapshot path. Bodies are fixed short texts: the reason for a 403
/// goes to logs and metrics only.
#[derive(Debug)]
pub(crate) enum Refusal {
    MethodNotAllowed,
    Query(QueryError),
    MissingHash,
    /// The token's form is wrong; the reason is for the log.
    MalformedHash(String),
    Forbidden,
    Misdirected {
        here: TaskId,
        wanted: TaskId,
    },
    Busy(TaskId, Busy),
    Unreachable(TaskId, SourceError),
    Gateway(GatewayError),
    /// `format=` on the snapshot path.
    FormatOnSnapshot,
    /// The headroom rule refused the snapshot (507); the text says why.
    Headroom {
        task: TaskId,
        refused: Refused,
        profile_path: String,
    },
    /// A profile asked for too soon after the last one (429).
    ProfileBusy(TaskId, Busy),
    /// A profile asked for while a snapshot blocks the app (429).
    SnapshotRunning(TaskId),
    /// The profile could not be read (502); the reason is for the log.
    ProfileUnavailable(TaskId, SourceError),
}

impl Refusal {
    /// Logs and counts the refusal (naming the path it came on), then answers it.
    fn record(self, metrics: &Metrics, route: Route) -> Response {
        let path = match route {
            Route::Profile => "profile",
            _ => "snapshot",
        };
        match &self {
            Refusal::MethodNotAllowed
            | Refusal::Query(_)
            | Refusal::Gateway(_)
            | Refusal::FormatOnSnapshot => {}
            Refusal::Headroom { refused, .. } => {
                tracing::warn!(reason = %refused, "snapshot refused by the headroom rule: 507");
                metrics.snapshot(Outcome::Headroom);
            }
            Refusal::ProfileBusy(..) | Refusal::SnapshotRunning(_) => {
                metrics.profile(Outcome::Busy, 0);
            }
            Refusal::ProfileUnavailable(_, e) => {
                tracing::warn!(error = %Escaped(e), "sampling heap profile unavailable: 502");
                metrics.profile(Outcome::Unreachable, 0);
            }
            Refusal::MissingHash => {
                metrics.rejection(RejectReason::Missing);
                tracing::warn!(path, "request without hash: 400");
            }
            Refusal::MalformedHash(why) => {
                metrics.rejection(RejectReason::Malformed);
                tracing::warn!(path, reason = %Escaped(why), "request with malformed hash: 400");
            }
            Refusal::Forbidden => {
                metrics.rejection(RejectReason::NoMatch);
                tracing::warn!(path, "request with an invalid or expired token: 403");
            }
            Refusal::Misdirected { wanted, .. } => {
                tracing::info!(
                    path,
                    wanted = wanted.as_str(),
                    "request for another task: 421"
                );
            }
            Refusal::Busy(..) => metrics.snapshot(Outcome::Busy),
            Refusal::Unreachable(_, e) => {
                tracing::warn!(error = %Escaped(e), "snapshot source unreachable");
                metrics.snapshot(Outcome::Unreachable);
            }
        }
        self.into_response()
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, body, task): (_, String, _) = match self {
            Refusal::MethodNotAllowed => {
                let mut response = (
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed; use GET\n",
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET"));
                return response;
            }
            Refusal::Query(why) => (
                StatusCode::BAD_REQUEST,
                format!("bad request: {why}\n"),
                None,
            ),
            Refusal::MissingHash => (
                StatusCode::BAD_REQUEST,
                "bad request: missing hash\n".into(),
                None,
            ),
            Refusal::MalformedHash(_) => (
                StatusCode::BAD_REQUEST,
                "bad request: malformed hash\n".into(),
                None,
            ),
            Refusal::Forbidden => (StatusCode::FORBIDDEN, "forbidden\n".into(), None),
            Refusal::Misdirected { here, .. } => (
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected: this is another task; retry to reach the requested one\n".into(),
                Some(here),
            ),
            Refusal::Busy(task, busy) => {
                let why = match busy {
                    Busy::Running { .. } => "busy: a snapshot is being taken; retry later\n",
                    Busy::TooSoon { .. } => "busy: a snapshot was taken recently; retry later\n",
                };
                let mut response = (StatusCode::TOO_MANY_REQUESTS, why).into_response();
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(busy.retry_after_secs()),
                );
                with_task(&mut response, &task);
                return response;
            }
            Refusal::Unreachable(task, _) => (
                StatusCode::BAD_GATEWAY,
                "snapshot source unreachable\n".into(),
                Some(task),
            ),
            Refusal::Gateway(e) => return e.into_response(),
            Refusal::FormatOnSnapshot => (
                StatusCode::BAD_REQUEST,
                "bad request: format applies to the profile path only\n".into(),
                None,
            ),
            Refusal::Headroom {
                task,
                refused,
                profile_path,
            } => (
                StatusCode::INSUFFICIENT_STORAGE,
                format!(
                    "refused: {refused}.\nThe sampling heap profile is the safe instrument: GET \
                     {profile_path}?hash=… with a profile token (heapgate mint --for profile) \
                     shows which lines allocated what is still alive, for milliseconds of the \
                     app's time and no extra memory.\n"
                ),
                Some(task),
            ),
            Refusal::ProfileBusy(task, busy) => {
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    "busy: a profile was taken just now; retry later\n",
                )
                    .into_response();
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(busy.retry_after_secs()),
                );
                with_task(&mut response, &task);
                return response;
            }
            Refusal::SnapshotRunning(task) => {
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    "busy: a snapshot is being taken; retry later\n",
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(5u32));
                with_task(&mut response, &task);
                return response;
            }
            Refusal::ProfileUnavailable(task, _) => (
                StatusCode::BAD_GATEWAY,
                "sampling heap profile unavailable\n".into(),
                Some(task),
            ),
        };
        let mut response = (status, body).into_response();
        if let Some(task) = task {
            with_task(&mut response, &task);
        }
        response
    }
}

/// The landing step both local paths take once the token is good: a request meant for another
/// task is 421 (the client tries again, and lands elsewhere); a probe that landed here is 204
/// naming this task; anything else goes on (`None`).
fn land(task: &TaskId, wanted: Option<TaskId>, probe: bool) -> Result<Option<Response>, Refusal> {
    if let Some(wanted) = wanted.filter(|wanted| wanted != task) {
        return Err(Refusal::Misdirected {
            here: task.clone(),
            wanted,
        });
    }
    if !probe {
        return Ok(None);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    with_task(&mut response, task);
    Ok(Some(response))
}

/// Says which task answered.
fn with_task(response: &mut Response, task: &TaskId) {
    response
        .headers_mut()
        .insert(TASK_HEADER, task.header_value());
}

/// The one place a snapshot-path request ends: refusals are logged and counted, and every answer
/// is counted by status. (A streamed snapshot also records how its stream ended, when it ends.)
pub(crate) fn finish(metrics: &Metrics, result: Result<Response, Refusal>) -> Response {
    finish_on(Route::Snapshot, metrics, result)
}

/// [`finish`] for the route that answered (the snapshot or the profile path).
pub(crate) fn finish_on(
    route: Route,
    metrics: &Metrics,
    result: Result<Response, Refusal>,
) -> Response {
    let response = result.unwrap_or_else(|refusal| refusal.record(metrics, route));
    metrics.request(route, response.status());
    response
}
