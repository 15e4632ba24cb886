//! Snapshot mode: this proxy takes the snapshot from its source (the inspector, or the app's own
//! endpoint) and streams it, one at a time through the gate.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::Stream;
use heapgate_protocol::{REDACTED_HEADER, TaskId, set_session};
use tokio::time::Instant;

use super::{Authorizer, Refusal, finish, land, with_task};
use crate::body::encoding::{self, Coding};
use crate::body::heartbeat::Heartbeat;
use crate::body::redaction;
use crate::gate::{SnapshotGate, SnapshotPermit};
use crate::headroom::{Admitted, SnapshotRule};
use crate::metrics::{Metrics, Outcome};
use crate::source::{ChunkStream, Source, SourceError, spill};

/// What the snapshot handler needs.
pub(crate) struct Snapshots {
    pub(crate) authorizer: Authorizer,
    pub(crate) task: TaskId,
    pub(crate) source: Arc<dyn Source>,
    pub(crate) gate: Arc<SnapshotGate>,
    pub(crate) metrics: Arc<Metrics>,
    /// Offered content codings, in order of preference.
    pub(crate) compression: Vec<Coding>,
    pub(crate) redact_strings: bool,
    /// Whitespace sent this often while the snapshot is being built and no bytes flow.
    pub(crate) heartbeat: Duration,
    /// The headroom rule, where the app's memory can be read (the inspector source).
    pub(crate) headroom: Option<Arc<SnapshotRule>>,
    /// The profile path, named in a 507's body.
    pub(crate) profile_path: String,
}

/// `GET <path>?hash=…[&task=…][&probe=1]`.
pub(crate) async fn handle(
    State(state): State<Arc<Snapshots>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    finish(&state.metrics, take(&state, &method, &uri, &headers).await)
}

async fn take(
    state: &Snapshots,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, Refusal> {
    let request = state.authorizer.check(method, uri)?;
    if request.query.format.is_some() {
        return Err(Refusal::FormatOnSnapshot);
    }
    let task = &state.task;
    if let Some(probed) = land(task, request.query.task, request.query.probe)? {
        return Ok(probed);
    }
    let permit = state
        .gate
        .try_start(Instant::now())
        .map_err(|busy| Refusal::Busy(task.clone(), busy))?;
    let admitted = match &state.headroom {
        None => None,
        Some(rule) => match rule.admit().await {
            Ok(admitted) => Some((Arc::clone(rule), admitted)),
            Err(refused) => {
                permit.release_uncharged();
                return Err(Refusal::Headroom {
                    task: task.clone(),
                    refused,
                    profile_path: state.profile_path.clone(),
                });
            }
        },
    };
    let capture = match state.source.take(uri.query().unwrap_or_default()).await {
        Ok(capture) => capture,
        Err(e) => {
            permit.release_uncharged();
            return Err(Refusal::Unreachable(task.clone(), e));
        }
    };
    let redact = state.redact_strings;
    if redact && capture.content_encoding.is_some() {
        // Encoded by the app: the proxy can neither redact nor pass it on unredacted.
        permit.release_uncharged();
        return Err(Refusal::Unreachable(
            task.clone(),
            SourceError::Failed("the app's snapshot answer is encoded; cannot redact it".into()),
        ));
    }
    tracing::info!(task = %task, session = capture.session.as_deref(), redact, "snapshot started");

    let filename = format!(
        "{task}-{}.heapsnapshot",
        request.at.format("%Y%m%dT%H%M%SZ")
    );
    // An app that encoded its own answer (`--source upstream`) is passed through untouched.
    let coding = match capture.content_encoding {
        Some(_) => None,
        None => encoding::negotiate(headers, &state.compression),
    };
    let body = if redact {
        redaction::redacted(capture.body)
    } else {
        capture.body
    };
    let plain = Heartbeat::new(body, state.heartbeat);
    let wire: ChunkStream = match coding {
        Some(coding) => Box::pin(encoding::compress(plain, coding, spill::DEFAULT_MEM_LIMIT)),
        None => Box::pin(plain),
    };
    let body = Tracked::new(wire, permit, Arc::clone(&state.metrics), admitted);
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if redact {
        headers.insert(REDACTED_HEADER, HeaderValue::from_static("strings"));
    }
    if let Some(value) = coding.map(Coding::token).map(HeaderValue::from_static) {
        headers.insert(header::CONTENT_ENCODING, value);
    } else if let Some(value) = capture.content_encoding {
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
    if let Some(Ok(value)) = capture.session.as_deref().map(HeaderValue::from_str) {
        set_session(headers, value);
    }
    with_task(&mut response, task);
    Ok(response)
}

/// The response body: holds the gate's permit for as long as the stream lives and records how
/// it ended (complete, failed, or abandoned by the client).
struct Tracked {
    inner: ChunkStream,
    permit: Option<SnapshotPermit>,
    metrics: Arc<Metrics>,
    started: Instant,
    bytes: u64,
    /// The headroom rule learns what a complete snapshot cost.
    admitted: Option<(Arc<SnapshotRule>, Admitted)>,
}

impl Tracked {
    fn new(
        inner: ChunkStream,
        permit: SnapshotPermit,
        metrics: Arc<Metrics>,
        admitted: Option<(Arc<SnapshotRule>, Admitted)>,
    ) -> Tracked {
        metrics.snapshot_running().set(1);
        Tracked {
            inner,
            permit: Some(permit),
            metrics,
            started: Instant::now(),
            bytes: 0,
            admitted,
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
            // What V8 built is now sent (or discarded): the app's peak is behind it.
            if let (Outcome::Ok, Some((rule, admitted))) = (outcome, self.admitted.take())
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                runtime.spawn(async move { rule.learn(admitted).await });
            }
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
