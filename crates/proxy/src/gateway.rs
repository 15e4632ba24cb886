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

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::log_text::Escaped;
use crate::snapshot::{REDACTED_HEADER, SERIES_HEADER, TASK_HEADER};
use crate::source::upstream_snapshot_uri;
use crate::task::{TaskId, is_id_text};

/// Longest wait for one attempt's response head (sidecars send theirs at once).
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);
/// Backoff after a transport error or a 502/503/504, doubling up to the maximum.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Where the gateway sends snapshot requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// A balancer (or a single instance): it picks a task per connection.
    Balancer(Uri),
    /// Instances by task id, in the operator's order.
    Direct(Vec<(TaskId, Uri)>),
}

/// Gateway settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    pub targets: Targets,
    /// The snapshot path on the targets (their `--path`).
    pub path: String,
    pub pin_ttl: Duration,
    pub max_attempts: u32,
}

/// What a client asked the gateway for.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    /// The (already verified) token, forwarded as it is.
    pub hash: &'a str,
    pub task: Option<&'a str>,
    pub probe: bool,
    pub repin: bool,
    /// The client's `Accept-Encoding`, forwarded so the chosen sidecar compresses; its encoded
    /// stream is relayed as is.
    pub accept_encoding: Option<&'a HeaderValue>,
}

/// Why a request could not be routed. Bodies name tasks (the client chose them), never addresses.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("task {task} not reached in {attempts} attempts ({} other task(s) answered: {})", .others.len(), others_list(.others))]
    NotReached {
        task: String,
        attempts: u32,
        others: BTreeSet<String>,
    },
    #[error("no task answered in {attempts} attempts")]
    NoneAnswered { attempts: u32 },
    #[error("no such task: {0}")]
    UnknownTask(String),
    #[error("upstream answered {0} to a verified request (are its secret and value the same?)")]
    Refused(StatusCode),
    #[error("upstream did not say which task answered; is it a heapgate-proxy?")]
    NotTaskAware,
}

fn others_list(others: &BTreeSet<String>) -> String {
    others.iter().cloned().collect::<Vec<_>>().join(", ")
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
pub struct Gateway {
    config: GatewayConfig,
    client: Client<HttpConnector, Empty<Bytes>>,
    pin: Mutex<Option<Pinned>>,
}

#[derive(Debug, Clone)]
struct Pinned {
    task: String,
    until: Instant,
}

/// The outcome of one attempt.
enum Attempt {
    /// The chosen (or, unpinned, the first) task answered: pass this back.
    Done(Response),
    /// Another task answered; try again on a new connection.
    Other(Option<String>),
    /// Transport error or 502/503/504: back off, then try again.
    Unavailable,
}

impl Gateway {
    pub fn new(config: GatewayConfig) -> Gateway {
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
    pub fn pinned(&self, now: Instant) -> Option<String> {
        let pin = self.pin.lock().unwrap_or_else(PoisonError::into_inner);
        pin.as_ref()
            .filter(|p| p.until > now)
            .map(|p| p.task.clone())
    }

    fn set_pin(&self, task: Option<&str>, now: Instant) {
        let mut pin = self.pin.lock().unwrap_or_else(PoisonError::into_inner);
        *pin = task.map(|task| Pinned {
            task: task.to_owned(),
            until: now + self.config.pin_ttl,
        });
    }

    /// Routes one verified request. Returns the response to pass back, and how many attempts it
    /// took.
    pub async fn route(&self, request: RouteRequest<'_>) -> (Result<Response, GatewayError>, u32) {
        let now = Instant::now();
        if request.repin {
            self.set_pin(None, now);
        }
        let explicit = request.task.map(str::to_owned);
        let chosen = explicit.clone().or_else(|| self.pinned(now));
        let mut others = BTreeSet::new();
        let mut backoff = BACKOFF_START;
        for attempt in 1..=self.config.max_attempts {
            let Some(target) = self.target(chosen.as_deref(), attempt) else {
                return (
                    Err(GatewayError::UnknownTask(chosen.unwrap_or_default())),
                    attempt,
                );
            };
            match self.attempt(&target, &request, chosen.as_deref()).await {
                Ok(Attempt::Done(response)) => {
                    let answered = task_of(response.headers());
                    if explicit.is_none() {
                        // Pin (or keep pinned) the task that answered, refreshing its lifetime.
                        self.set_pin(answered.as_deref(), Instant::now());
                    }
                    return (Ok(response), attempt);
                }
                Ok(Attempt::Other(task)) => {
                    others.extend(task);
                    tokio::time::sleep(jitter(attempt)).await;
                }
                Ok(Attempt::Unavailable) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                Err(e) => return (Err(e), attempt),
            }
        }
        let attempts = self.config.max_attempts;
        let error = match chosen {
            Some(task) => GatewayError::NotReached {
                task,
                attempts,
                others,
            },
            None => GatewayError::NoneAnswered { attempts },
        };
        (Err(error), attempts)
    }

    /// The URL for an attempt, or `None` when a direct table has no such task.
    fn target(&self, chosen: Option<&str>, attempt: u32) -> Option<Uri> {
        match &self.config.targets {
            Targets::Balancer(base) => Some(base.clone()),
            Targets::Direct(table) => match chosen {
                Some(task) => table
                    .iter()
                    .find(|(id, _)| id.as_str() == task)
                    .map(|(_, uri)| uri.clone()),
                // Unpinned: walk the table in order until one answers.
                None => {
                    let index = (attempt as usize - 1) % table.len().max(1);
                    table.get(index).map(|(_, uri)| uri.clone())
                }
            },
        }
    }

    async fn attempt(
        &self,
        base: &Uri,
        request: &RouteRequest<'_>,
        chosen: Option<&str>,
    ) -> Result<Attempt, GatewayError> {
        let uri = self.uri(base, request, chosen)?;
        let mut upstream_request = Request::get(uri).header(header::CONNECTION, "close");
        if let Some(accept) = request.accept_encoding {
            upstream_request = upstream_request.header(header::ACCEPT_ENCODING, accept);
        }
        let upstream_request = upstream_request
            .body(Empty::new())
            .map_err(|_| GatewayError::Refused(StatusCode::BAD_REQUEST))?;
        let response =
            match tokio::time::timeout(HEAD_TIMEOUT, self.client.request(upstream_request)).await {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => {
                    tracing::debug!(error = %Escaped(&e), "gateway attempt failed");
                    return Ok(Attempt::Unavailable);
                }
                Err(_) => return Ok(Attempt::Unavailable),
            };
        let status = response.status();
        let answered = task_of(response.headers());
        match status {
            StatusCode::MISDIRECTED_REQUEST => Ok(Attempt::Other(answered)),
            StatusCode::OK | StatusCode::NO_CONTENT | StatusCode::TOO_MANY_REQUESTS => {
                match (chosen, answered.as_deref()) {
                    (_, None) => Err(GatewayError::NotTaskAware),
                    (Some(chosen), Some(answered)) if chosen != answered => {
                        Ok(Attempt::Other(Some(answered.to_owned())))
                    }
                    _ => Ok(Attempt::Done(pass_back(response))),
                }
            }
            StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Ok(Attempt::Unavailable),
            other => Err(GatewayError::Refused(other)),
        }
    }

    /// `base` + the targets' snapshot path + the forwarded query.
    fn uri(
        &self,
        base: &Uri,
        request: &RouteRequest<'_>,
        chosen: Option<&str>,
    ) -> Result<Uri, GatewayError> {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("hash", request.hash);
        if let Some(task) = chosen {
            query.append_pair("task", task);
        }
        if request.probe {
            query.append_pair("probe", "1");
        }
        upstream_snapshot_uri(base, &self.config.path, &query.finish())
            .ok_or(GatewayError::Refused(StatusCode::BAD_REQUEST))
    }
}

/// The task an upstream response says it came from, if it is a well-formed task id.
fn task_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(TASK_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| TaskId::new(v).ok())
        .map(|task| task.as_str().to_owned())
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
    if let Some(task) = task_of(&parts.headers).and_then(|t| HeaderValue::from_str(&t).ok()) {
        out.headers_mut().insert(TASK_HEADER, task);
    }
    let series = parts
        .headers
        .get(SERIES_HEADER)
        .filter(|v| is_id_text(v.as_bytes()));
    if let Some(series) = series {
        out.headers_mut().insert(SERIES_HEADER, series.clone());
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

/// A few tens of milliseconds, varying, so retries do not march in step with other clients.
fn jitter(attempt: u32) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Duration::from_millis(5 + u64::from((nanos ^ attempt.wrapping_mul(2_654_435_761)) % 40))
}
