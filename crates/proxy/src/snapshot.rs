//! The snapshot path: token check, task routing, one-at-a-time gate, streamed body.
//!
//! Order matters. The token is checked before anything else, so a client without the secret
//! learns nothing (not even the task id) and cannot make the proxy touch the app. Only then do
//! the task (421), probe (204) and gate (429) answers follow, each carrying `X-Heapgate-Task` so
//! a client behind a balancer can tell where it landed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::Stream;
use heapgate_token::{Rejection, verify};
use tokio::time::Instant;

use crate::app::{AppState, Snapshots};
use crate::encoding::{self, Coding};
use crate::gate::{Busy, SnapshotPermit};
use crate::gateway::{Gateway, RouteRequest};
use crate::keepalive::KeepAlive;
use crate::log_text::Escaped;
use crate::metrics::{Metrics, Outcome, RejectReason, Route};
use crate::redaction;
use crate::source::{ChunkStream, SourceError};
use crate::spill;
use crate::task::TaskId;

/// Header naming the task that answered.
pub const TASK_HEADER: &str = "x-heapgate-task";
/// Header naming the inspector session a snapshot came from; equal values mean comparable ids.
pub const SERIES_HEADER: &str = "x-heapgate-series";
/// Header saying what the proxy redacted (`strings`), absent when nothing was.
pub const REDACTED_HEADER: &str = "x-heapgate-redacted";

/// Every non-200 answer of the snapshot path. Bodies are fixed short texts: the reason for a 403
/// goes to logs and metrics only.
#[derive(Debug)]
pub enum SnapshotError {
    MethodNotAllowed,
    BadRequest(&'static str),
    Forbidden,
    Misdirected(TaskId),
    Busy(TaskId, Busy),
    Unreachable(TaskId),
}

impl IntoResponse for SnapshotError {
    fn into_response(self) -> Response {
        let (status, body, task) = match self {
            SnapshotError::MethodNotAllowed => {
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
            SnapshotError::BadRequest(why) => (StatusCode::BAD_REQUEST, why, None),
            SnapshotError::Forbidden => (StatusCode::FORBIDDEN, "forbidden\n", None),
            SnapshotError::Misdirected(task) => (
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected: this is another task; retry to reach the requested one\n",
                Some(task),
            ),
            SnapshotError::Busy(task, busy) => {
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
            SnapshotError::Unreachable(task) => (
                StatusCode::BAD_GATEWAY,
                "snapshot source unreachable\n",
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

fn with_task(response: &mut Response, task: &TaskId) {
    // Task ids are validated to [A-Za-z0-9._-], always a valid header value.
    if let Ok(value) = HeaderValue::from_str(task.as_str()) {
        response.headers_mut().insert(TASK_HEADER, value);
    }
}

/// What the query asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SnapshotQuery {
    pub hash: Option<String>,
    pub task: Option<String>,
    pub probe: bool,
    pub repin: bool,
}

/// Parses the query strictly: a client that meant something else must get a 400, never a
/// snapshot. `hash`, `task`, `probe` and `repin` may each appear once; `probe` and `repin` take
/// exactly `1` or `true`; `task` is a task id (`[A-Za-z0-9._-]`, 1–128); no value may hold `;`
/// (some servers split parameters there). Other parameters are ignored (cache busters). Public
/// for the fuzzer.
pub fn parse_query(query: &str) -> Result<SnapshotQuery, SnapshotError> {
    let mut parsed = SnapshotQuery::default();
    let (mut probe, mut repin) = (None, None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match &*key {
            "hash" => &mut parsed.hash,
            "task" => &mut parsed.task,
            "probe" => &mut probe,
            "repin" => &mut repin,
            other => {
                // `Probe=1`, `probe[]=1`, `probe%00=1`: a client meant one of ours; guessing
                // would take a snapshot it did not ask for.
                let folded: String = other
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .map(|c| c.to_ascii_lowercase())
                    .collect();
                if matches!(folded.as_str(), "hash" | "task" | "probe" | "repin") {
                    return Err(SnapshotError::BadRequest(
                        "bad request: misspelt query parameter (use hash, task, probe, repin)\n",
                    ));
                }
                continue;
            }
        };
        if value.contains(';') {
            return Err(SnapshotError::BadRequest(
                "bad request: ';' in a query parameter\n",
            ));
        }
        if slot.replace(value.into_owned()).is_some() {
            return Err(SnapshotError::BadRequest(
                "bad request: repeated query parameter\n",
            ));
        }
    }
    if parsed
        .task
        .as_deref()
        .is_some_and(|t| TaskId::new(t).is_err())
    {
        return Err(SnapshotError::BadRequest(
            "bad request: task must be 1-128 characters of A-Z a-z 0-9 . _ -\n",
        ));
    }
    let flag = |value: Option<String>, why: &'static str| match value.as_deref() {
        None => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(_) => Err(SnapshotError::BadRequest(why)),
    };
    parsed.probe = flag(probe, "bad request: probe takes 1 or true\n")?;
    parsed.repin = flag(repin, "bad request: repin takes 1 or true\n")?;
    Ok(parsed)
}

/// `GET <path>?hash=…[&task=…][&probe=1]`.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let response = match take(&state, &method, &uri, &headers).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    state.metrics.request(Route::Snapshot, response.status());
    response
}

async fn take(
    state: &Arc<AppState>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, SnapshotError> {
    if method != Method::GET {
        return Err(SnapshotError::MethodNotAllowed);
    }
    let query = uri.query().unwrap_or_default();
    let request = parse_query(query)?;
    let hash = check_token(state, request.hash.as_deref())?;
    let source = match &state.snapshots {
        Snapshots::Local(source) => source,
        Snapshots::Gateway(gateway) => {
            return Ok(route(state, gateway, &request, hash, headers).await);
        }
    };
    let task = &state.task_id;
    if request
        .task
        .as_deref()
        .is_some_and(|wanted| wanted != task.as_str())
    {
        tracing::info!(
            wanted = request.task.as_deref(),
            "snapshot request for another task: 421"
        );
        return Err(SnapshotError::Misdirected(task.clone()));
    }
    if request.probe {
        let mut response = StatusCode::NO_CONTENT.into_response();
        with_task(&mut response, task);
        return Ok(response);
    }
    let permit = state.gate.try_start(Instant::now()).map_err(|busy| {
        state.metrics.snapshot(Outcome::Busy);
        SnapshotError::Busy(task.clone(), busy)
    })?;
    let started_at = (state.now)();
    let snapshot = match source.take(query).await {
        Ok(snapshot) => snapshot,
        Err(e) => {
            tracing::warn!(error = %Escaped(&e), "snapshot source unreachable");
            state.metrics.snapshot(Outcome::Unreachable);
            permit.release_uncharged();
            return Err(SnapshotError::Unreachable(task.clone()));
        }
    };
    let redact = state.snapshot.redact_strings;
    if redact && snapshot.content_encoding.is_some() {
        // Encoded by the app: the proxy can neither redact nor pass it on unredacted.
        tracing::warn!("the app's snapshot answer is encoded; cannot redact it: 502");
        state.metrics.snapshot(Outcome::Unreachable);
        permit.release_uncharged();
        return Err(SnapshotError::Unreachable(task.clone()));
    }
    tracing::info!(task = %task, series = snapshot.series.as_deref(), redact, "snapshot started");

    let filename = format!(
        "{task}-{}.heapsnapshot",
        started_at.format("%Y%m%dT%H%M%SZ")
    );
    // An app that encoded its own answer (`--source upstream`) is passed through untouched.
    let coding = match snapshot.content_encoding {
        Some(_) => None,
        None => encoding::negotiate(headers, &state.snapshot.compression),
    };
    let body = if redact {
        redaction::redacted(snapshot.body)
    } else {
        snapshot.body
    };
    let plain = KeepAlive::new(body, state.snapshot.keepalive);
    let wire: ChunkStream = match coding {
        Some(coding) => Box::pin(encoding::compress(plain, coding, spill::DEFAULT_MEM_LIMIT)),
        None => Box::pin(plain),
    };
    let body = Tracked::new(wire, permit, Arc::clone(&state.metrics));
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if redact {
        headers.insert(REDACTED_HEADER, HeaderValue::from_static("strings"));
    }
    if let Some(value) = coding.map(Coding::token).map(HeaderValue::from_static) {
        headers.insert(header::CONTENT_ENCODING, value);
    } else if let Some(value) = snapshot.content_encoding {
        headers.insert(header::CONTENT_ENCODING, value);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    if let Some(Ok(value)) = snapshot.series.as_deref().map(HeaderValue::from_str) {
        headers.insert(SERIES_HEADER, value);
    }
    with_task(&mut response, task);
    Ok(response)
}

/// Hands a verified request to the gateway and records how many attempts it took.
async fn route(
    state: &AppState,
    gateway: &Gateway,
    request: &SnapshotQuery,
    hash: &str,
    headers: &HeaderMap,
) -> Response {
    let (result, attempts) = gateway
        .route(RouteRequest {
            hash,
            task: request.task.as_deref(),
            probe: request.probe,
            repin: request.repin,
            accept_encoding: headers.get(header::ACCEPT_ENCODING),
        })
        .await;
    state.metrics.gateway_attempts(attempts);
    match result {
        Ok(response) => {
            tracing::info!(attempts, task = header_text(&response, TASK_HEADER), status = %response.status(), "gateway routed");
            response
        }
        Err(e) => {
            tracing::warn!(attempts, error = %Escaped(&e), "gateway could not route");
            e.into_response()
        }
    }
}

fn header_text<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

fn check_token<'a>(state: &AppState, hash: Option<&'a str>) -> Result<&'a str, SnapshotError> {
    let Some(hash) = hash else {
        state.metrics.rejection(RejectReason::Missing);
        tracing::warn!("snapshot request without hash: 400");
        return Err(SnapshotError::BadRequest("bad request: missing hash\n"));
    };
    let config = &state.snapshot;
    match verify(
        hash,
        &config.keys,
        &config.value,
        (state.now)(),
        &config.window,
    ) {
        Ok(_) => Ok(hash),
        Err(Rejection::Malformed(why)) => {
            state.metrics.rejection(RejectReason::Malformed);
            tracing::warn!(reason = %Escaped(&why), "snapshot request with malformed hash: 400");
            Err(SnapshotError::BadRequest("bad request: malformed hash\n"))
        }
        Err(Rejection::NoMatch) => {
            state.metrics.rejection(RejectReason::NoMatch);
            tracing::warn!("snapshot request with an invalid or expired token: 403");
            Err(SnapshotError::Forbidden)
        }
    }
}

/// The response body: holds the gate's permit for as long as the stream lives and records how
/// it ended (complete, failed, or abandoned by the client).
struct Tracked {
    inner: ChunkStream,
    permit: Option<SnapshotPermit>,
    metrics: Arc<Metrics>,
    started: Instant,
    bytes: u64,
}

impl Tracked {
    fn new(inner: ChunkStream, permit: SnapshotPermit, metrics: Arc<Metrics>) -> Tracked {
        metrics.snapshot_running().set(1);
        Tracked {
            inner,
            permit: Some(permit),
            metrics,
            started: Instant::now(),
            bytes: 0,
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        if let Some(permit) = self.permit.take() {
            let seconds = self.started.elapsed().as_secs_f64();
            self.metrics.snapshot(outcome);
            self.metrics.snapshot_finished(seconds);
            self.metrics.snapshot_bytes(self.bytes);
            self.metrics.snapshot_running().set(0);
            match outcome {
                Outcome::Ok => tracing::info!(bytes = self.bytes, seconds, "snapshot sent"),
                _ => tracing::warn!(
                    ?outcome,
                    bytes = self.bytes,
                    seconds,
                    "snapshot ended early"
                ),
            }
            drop(permit);
        }
    }
}

impl Stream for Tracked {
    type Item = Result<Bytes, SourceError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => self.bytes += chunk.len() as u64,
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(error = %e, "snapshot source failed mid-stream; aborting the transfer");
                self.finish(Outcome::Failed);
            }
            Poll::Ready(None) => self.finish(Outcome::Ok),
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.finish(Outcome::ClientGone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let q = parse_query("hash=ab&task=t%2D1&probe=1&x=y").unwrap();
        assert_eq!(
            q,
            SnapshotQuery {
                hash: Some("ab".into()),
                task: Some("t-1".into()),
                probe: true,
                repin: false,
            }
        );
        assert_eq!(parse_query("").unwrap(), SnapshotQuery::default());
        assert!(parse_query("repin=1").unwrap().repin);
        assert!(parse_query("hash=a&hash=b").is_err());
        assert!(parse_query("task=a&task=a").is_err());
        assert!(parse_query("probe=true&repin=true").unwrap().repin);
        assert_eq!(
            parse_query("x=1;y&cache=2").unwrap(),
            SnapshotQuery::default()
        );
    }

    /// Anything but a clear yes or no is refused, so a client that meant to probe never costs
    /// the app a snapshot.
    #[test]
    fn unclear_queries_are_refused() {
        for query in [
            "probe=yes",
            "probe=TRUE",
            "probe=1;x=1",
            "probe=",
            "probe",
            "probe=2",
            "probe=0",
            "probe=1&probe=1",
            "repin=yes",
            "repin=1&repin=1",
            "task=t1;x",
            "task=t1%0d%0aX-Evil:%201",
            "task=",
            "task=a/b",
            "hash=ab;c",
            "Probe=1",
            "PROBE=1",
            "probe[]=1",
            "probe%00=1",
            "probe;=1",
            ";probe=yes",
            "Task=t2",
            "task%5B%5D=t2",
            "Repin=1",
            "HASH=ab",
        ] {
            assert!(
                matches!(parse_query(query), Err(SnapshotError::BadRequest(_))),
                "{query}"
            );
        }
    }
}
