//! The profile path: V8's live sampling heap profile, read over the inspector session the
//! snapshots use.
//!
//! Same contract as the snapshot path — token first (a *profile* token, [`Instrument::Profile`]),
//! then `task` (421), `probe` (204), with `X-Heapgate-Task` and `X-Heapgate-Session` on the answer,
//! compressed as the client accepts — but no snapshot gate and no headroom rule: a profile costs
//! the app one `getSamplingProfile` (tens of milliseconds) and no extra memory. A rate limit
//! (`--profile-min-interval`) still keeps a client in a loop from taxing the app's event loop, and a
//! profile is refused (429) while a snapshot blocks the app.
//!
//! [`Instrument::Profile`]: heapgate_protocol::Instrument::Profile

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::Response;
use bytes::Bytes;
use heapgate_protocol::{ProfileFormat, TaskId, set_session};
use tokio::time::Instant;

use super::{Authorizer, Refusal, finish_on, land, with_task};
use crate::body::encoding::{self, Coding};
use crate::gate::SnapshotGate;
use crate::metrics::{Metrics, Outcome, Route};
use crate::source::inspector::InspectorSource;
use crate::source::{SourceError, spill};

/// Times sampling was restarted on the session the profile came from (each restart forgets the
/// samples of objects allocated before it).
pub(crate) const RESTARTS_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-heapgate-profile-restarts");

/// What the profile handler needs.
pub(crate) struct Profiles {
    pub(crate) authorizer: Authorizer,
    pub(crate) task: TaskId,
    pub(crate) inspector: Arc<InspectorSource>,
    /// One profile at a time, spaced by `--profile-min-interval`.
    pub(crate) rate: Arc<SnapshotGate>,
    /// The snapshot gate: no profile while a snapshot blocks the app.
    pub(crate) snapshots: Arc<SnapshotGate>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) compression: Vec<Coding>,
}

/// `GET <profile path>?hash=…[&task=…][&probe=1][&format=heapprofile|pprof]`.
pub(crate) async fn handle(
    State(state): State<Arc<Profiles>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    finish_on(
        Route::Profile,
        &state.metrics,
        take(&state, &method, &uri, &headers).await,
    )
}

async fn take(
    state: &Profiles,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, Refusal> {
    let request = state.authorizer.check(method, uri)?;
    let task = &state.task;
    if let Some(probed) = land(task, request.query.task, request.query.probe)? {
        return Ok(probed);
    }
    let format = request.query.format.unwrap_or_default();
    if state.snapshots.is_running() {
        return Err(Refusal::SnapshotRunning(task.clone()));
    }
    let permit = state
        .rate
        .try_start(Instant::now())
        .map_err(|busy| Refusal::ProfileBusy(task.clone(), busy))?;
    let started = Instant::now();
    let profile = match state.inspector.profile().await {
        Ok(profile) => profile,
        Err(e) => {
            permit.release_uncharged();
            return Err(Refusal::ProfileUnavailable(task.clone(), e));
        }
    };
    drop(permit);
    let time_nanos = request.at.timestamp_nanos_opt();
    let (body, content_type) = encode(format, profile.json, profile.interval, time_nanos)
        .map_err(|e| Refusal::ProfileUnavailable(task.clone(), e))?;
    let plain_bytes = body.len() as u64;
    state.metrics.profile(Outcome::Ok, plain_bytes);
    tracing::info!(
        task = %task,
        session = %profile.session,
        format = format.as_str(),
        bytes = plain_bytes,
        restarts = profile.restarts,
        ms = started.elapsed().as_millis() as u64,
        "sampling heap profile sent"
    );
    let filename = format!(
        "{task}-{}.{}",
        request.at.format("%Y%m%dT%H%M%SZ"),
        format.extension()
    );
    // pprof is gzipped by its own format; only the JSON is compressed for the wire.
    let coding = match format {
        ProfileFormat::HeapProfile => encoding::negotiate(headers, &state.compression),
        ProfileFormat::Pprof => None,
    };
    let mut response = match coding {
        Some(coding) => {
            let chunks = futures_util::stream::iter([Ok::<_, SourceError>(body)]);
            let compressed = encoding::compress(chunks, coding, spill::DEFAULT_MEM_LIMIT);
            let mut response = Response::new(Body::from_stream(compressed));
            response.headers_mut().insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(coding.token()),
            );
            response
        }
        None => Response::new(Body::from(body)),
    };
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    if let Ok(value) = HeaderValue::from_str(&profile.session) {
        set_session(headers, value);
    }
    headers.insert(RESTARTS_HEADER, HeaderValue::from(profile.restarts));
    with_task(&mut response, task);
    Ok(response)
}

/// The profile in the format asked for, and its content type. V8's JSON is passed on as it
/// came; pprof is encoded by `heapgate-profile` (gzipped `profile.proto`, sample types
/// `objects/count` and `space/bytes`, the sampling interval as the period).
fn encode(
    format: ProfileFormat,
    json: Bytes,
    interval: u64,
    time_nanos: Option<i64>,
) -> Result<(Bytes, &'static str), SourceError> {
    match format {
        ProfileFormat::HeapProfile => Ok((json, "application/json")),
        ProfileFormat::Pprof => {
            let v8 = heapgate_profile::parse_heapprofile(&json).map_err(|e| {
                SourceError::Failed(format!("V8's sampling profile is unreadable: {e}"))
            })?;
            let profile = heapgate_profile::Profile::from_heapprofile(&v8, Some(interval));
            let pprof = heapgate_profile::pprof::encode(&profile, time_nanos);
            Ok((Bytes::from(pprof), "application/octet-stream"))
        }
    }
}
