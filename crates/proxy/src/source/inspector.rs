//! Heap snapshots from a Node.js inspector (Chrome DevTools Protocol), over one long-lived
//! session.
//!
//! Why one long-lived session: V8 gives every heap object an id that stays stable across
//! snapshots, and DevTools' Comparison (and `heapgate diff`) matches objects between two
//! snapshots by that id. `HeapProfiler.disable` — and closing the session, which disables —
//! clears the ids, so two snapshots taken over two sessions look like thousands of "new"
//! objects. So this source connects once, enables the heap profiler once, never disables it and
//! never closes the session between snapshots. Each session gets a random id; snapshots
//! of the same session can be compared. If the session drops (app restarted), the next snapshot
//! opens a new session with a new id.
//!
//! Why an actor: a background task owns the WebSocket and reads it all the time, also between
//! snapshots (to notice a dropped session and answer pings). During a snapshot it must read as
//! fast as Node writes — otherwise Node queues the frames in the app's own memory, which is the
//! process we are trying not to hurt — so chunks go into a spill queue ([`crate::source::spill`]) that
//! never blocks: a few MiB in memory, the rest in an anonymous temp file, drained by the HTTP
//! client at its own pace. If the client goes away, the actor keeps draining (and discarding)
//! until V8 says the snapshot is complete, so the session stays usable for the next one.
//!
//! Sampling heap profile: when configured, the same session runs V8's sampling heap profiler
//! (`HeapProfiler.startSampling`) from the moment it opens, so `/heapprofile` can answer the live
//! allocation picture at any time for the cost of one `HeapProfiler.getSamplingProfile`. See
//! [`SamplingConfig`] for how its buffers stay bounded.
//!
//! Security: the inspector can run arbitrary code in the app; point this only at a loopback
//! address. `/json/list` is asked with a `Host: 127.0.0.1:PORT` header (Node answers 400 to
//! non-IP hosts) and the WebSocket URL is built from the configured address and the target id,
//! never taken from `webSocketDebuggerUrl`.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use futures_util::future::BoxFuture;

use crate::log_text::Escaped;
use crate::source::spill::{self, SpillReader, SpillWriter};
use crate::source::{Capture, Source, SourceError};

/// Memory one snapshot transfer may hold before spilling to a temp file.
pub const DEFAULT_SPILL_MEM_LIMIT: usize = spill::DEFAULT_MEM_LIMIT;

/// Largest WebSocket message or frame accepted. V8 sends chunks of 1 MiB and more (JSON-escaped
/// inside the CDP message, so larger on the wire); leave plenty of room.
pub(crate) const MAX_MESSAGE_SIZE: usize = 64 << 20;

/// Time allowed for each step of opening a session (TCP, `/json/list`, WebSocket handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Time allowed for `HeapProfiler.enable` to be answered. The app's main thread answers it, so a
/// busy event loop delays it.
const ENABLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest `/json/list` answer read.
const MAX_TARGET_LIST_BYTES: usize = 1 << 20;

/// Snapshot requests that may wait for the actor while one is running.
const REQUEST_QUEUE: usize = 4;

/// Time allowed for a heap sample's two answers. The app's main thread answers them.
const HEAP_SAMPLE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the app reads for its memory: a constant expression (no client input ever reaches
/// `Runtime.evaluate`), no allocation to speak of, nothing kept (`returnByValue`).
/// `process.memoryUsage.rss()` (Node ≥ 14.18) reads the RSS without walking the heap spaces;
/// `process.resourceUsage().maxRSS` is the process's peak RSS in KiB, which tells what a
/// snapshot cost; `process.pid` lets the sidecar find the app's memory cgroup when it shares the
/// app's PID namespace.
const RSS_EXPRESSION: &str =
    "[process.memoryUsage.rss(), process.resourceUsage().maxRSS * 1024, process.pid]";

/// Time allowed for `HeapProfiler.getSamplingProfile` (the app's main thread builds it: about
/// 30 ms for a 150 MiB heap at the default interval).
const PROFILE_TIMEOUT: Duration = Duration::from_secs(30);

/// How V8's sampling heap profiler runs on the session.
///
/// Why its buffers stay bounded without restarting it blindly: V8 keeps one sample per sampled
/// object that is still alive. Sampling runs without `includeObjectsCollectedByMajorGC`/`…MinorGC`,
/// so when a sampled object is collected its sample is dropped and stack nodes left without
/// samples are pruned; the profiler's memory follows the *live* heap (about live bytes ÷
/// interval samples), not the time it has run or the bytes allocated. (pprof-nodejs#357's
/// unbounded growth is the other mode, which keeps collected objects' samples.) A restart
/// (`stopSampling` + `startSampling`) forgets every sample of an object allocated before it — the
/// long-lived objects a leak hunt is after — so it must not run on a blind timer. Instead, every
/// `check_every` the actor reads the profile (the app pays one `getSamplingProfile`, which V8's
/// inspector precedes with a full GC: hence a long default period) and restarts
/// only when V8's bookkeeping has outgrown the live picture it describes: more stack nodes than
/// [`SamplingConfig::max_nodes`] allows for the live samples. What a restart costs is logged
/// and counted; `/heapprofile` answers say since when sampling runs (`X-Heapgate-Profile-Restarts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplingConfig {
    /// Average bytes between samples (V8's `samplingInterval`).
    pub interval: u64,
    /// How often the bookkeeping is checked.
    pub check_every: Duration,
}

impl SamplingConfig {
    /// Stack nodes allowed for `samples` live samples before a restart: every live sample may
    /// sit on its own stack of up to 64 frames, and a floor keeps small heaps from restarting.
    pub fn max_nodes(samples: usize) -> usize {
        samples.saturating_mul(64).max(50_000)
    }
}

/// A sampling heap profile as V8 answered it.
#[derive(Debug, Clone)]
pub struct SampledProfile {
    /// DevTools' `.heapprofile` JSON (`HeapProfiler.SamplingHeapProfile`).
    pub json: Bytes,
    /// The session it came from.
    pub session: String,
    /// Times sampling was restarted on this session (each forgets the older samples).
    pub restarts: u64,
    /// The sampling interval, bytes.
    pub interval: u64,
}

/// The app's memory, as read over the inspector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapUsage {
    /// V8's heap in use (`Runtime.getHeapUsage` `usedSize`), bytes.
    pub used: u64,
    /// V8's heap reserved (`totalSize`), bytes.
    pub total: u64,
    /// The process's resident set size, bytes, when it could be read.
    pub rss: Option<u64>,
    /// The process's peak resident set size so far, bytes (`process.resourceUsage().maxRSS`).
    pub max_rss: Option<u64>,
    /// The app's process id as it sees it.
    pub pid: Option<u32>,
}

/// A heap sample read: the usage, and the session it was read on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeapSample {
    pub usage: HeapUsage,
    pub session: String,
}

/// A source of heap snapshots from the Node inspector at one address.
///
/// Cheap to share behind an `Arc`; all methods take `&self`.
pub struct InspectorSource {
    addr: SocketAddr,
    spill_mem_limit: usize,
    sampling: Option<SamplingConfig>,
    session: Mutex<Option<SessionHandle>>,
    /// Held while opening a session, so concurrent `take()`s open only one.
    connecting: tokio::sync::Mutex<()>,
}

impl Source for InspectorSource {
    fn take<'a>(&'a self, _query: &'a str) -> BoxFuture<'a, Result<Capture, SourceError>> {
        Box::pin(InspectorSource::take(self))
    }
}

impl InspectorSource {
    /// A source for the inspector listening at `addr` (e.g. `127.0.0.1:9229`; loopback only).
    /// Nothing is connected until the first [`take`](Self::take). Each snapshot holds at most
    /// `spill_mem_limit` bytes in memory (see [`DEFAULT_SPILL_MEM_LIMIT`]).
    pub fn new(addr: SocketAddr, spill_mem_limit: usize) -> Self {
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "inspector address is not loopback; anyone reaching it can run code in the app");
        }
        Self {
            addr,
            spill_mem_limit,
            sampling: None,
            session: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    /// Runs V8's sampling heap profiler on every session this source opens.
    pub fn with_sampling(mut self, sampling: SamplingConfig) -> Self {
        self.sampling = Some(sampling);
        self
    }

    /// Whether sessions run the sampling heap profiler.
    pub fn samples(&self) -> bool {
        self.sampling.is_some()
    }

    /// The app's live sampling heap profile (`HeapProfiler.getSamplingProfile`), opening a
    /// session first if none is live. Refused while a snapshot or another profile is in flight.
    pub async fn profile(&self) -> Result<SampledProfile, SourceError> {
        let Some(sampling) = self.sampling else {
            return Err(SourceError::Failed(
                "sampling heap profiler off (--profile-interval 0)".into(),
            ));
        };
        let (session, _) = self.live_or_connect().await?;
        let (reply, answer) = oneshot::channel();
        if session.profiles.try_send(ProfileRequest { reply }).is_err() {
            return Err(SourceError::Failed(
                "inspector session busy or closed; profile not taken".into(),
            ));
        }
        let (json, restarts) = timeout(PROFILE_TIMEOUT, answer)
            .await
            .map_err(|_| {
                SourceError::Failed(format!("no sampling profile within {PROFILE_TIMEOUT:?}"))
            })?
            .map_err(|_| {
                SourceError::Failed("inspector session closed while reading the profile".into())
            })??;
        Ok(SampledProfile {
            json,
            session: session.id,
            restarts,
            interval: sampling.interval,
        })
    }

    /// The inspector address this source talks to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The id of the live session, if one is open.
    pub fn session(&self) -> Option<String> {
        self.live_session().map(|session| session.id)
    }

    /// Reads the app's heap usage and RSS over the session (opening one if none is live):
    /// `Runtime.getHeapUsage` and `Runtime.evaluate` of [`RSS_EXPRESSION`]. Never touches the
    /// heap profiler. Waits while a snapshot or another heap sample is in flight, up to
    /// [`HEAP_SAMPLE_TIMEOUT`] in all.
    pub async fn sample_heap(&self) -> Result<HeapSample, SourceError> {
        let (session, _) = self.live_or_connect().await?;
        let (reply, answer) = oneshot::channel();
        // Heap samples wait their turn (the headroom rule must never go unread because the leak watch
        // was polling), but not longer than HEAP_SAMPLE_TIMEOUT in all.
        let asked = async {
            session
                .heap_samples
                .send(HeapSampleRequest { reply })
                .await
                .map_err(|_| SourceError::Failed("inspector session closed".into()))?;
            answer.await.map_err(|_| {
                SourceError::Failed("inspector session closed during a heap sample".into())
            })?
        };
        let usage = timeout(HEAP_SAMPLE_TIMEOUT, asked).await.map_err(|_| {
            SourceError::Failed(format!(
                "no heap sample answer within {HEAP_SAMPLE_TIMEOUT:?}"
            ))
        })??;
        Ok(HeapSample {
            usage,
            session: session.id,
        })
    }

    /// Starts a heap snapshot, opening a session first if none is live.
    ///
    /// Returns once the command is sent; the body then yields the snapshot as V8 produces it.
    /// Errors: [`SourceError::Unreachable`] if no inspector answers at the address (or it lists
    /// no Node target), [`SourceError::Failed`] if the session failed. Concurrent calls are
    /// queued: a second snapshot starts when the first is complete.
    pub async fn take(&self) -> Result<Capture, SourceError> {
        let (session, fresh) = self.live_or_connect().await?;
        match self.start_on(&session).await {
            Err(BeginError::SessionGone) if !fresh => {
                // The session died just now, before the command went out: open a new one.
                let (session, _) = self.live_or_connect().await?;
                self.start_on(&session)
                    .await
                    .map_err(BeginError::into_source)
            }
            result => result.map_err(BeginError::into_source),
        }
    }

    async fn start_on(&self, session: &SessionHandle) -> Result<Capture, BeginError> {
        let body = session.start_snapshot(self.spill_mem_limit).await?;
        Ok(Capture {
            session: Some(session.id.clone()),
            body: Box::pin(body),
            content_encoding: None,
        })
    }

    async fn live_or_connect(&self) -> Result<(SessionHandle, bool), SourceError> {
        let _connecting = self.connecting.lock().await;
        if let Some(session) = self.live_session() {
            return Ok((session, false));
        }
        let session = connect(self.addr, self.sampling).await?;
        *self.lock_session() = Some(session.clone());
        Ok((session, true))
    }

    fn live_session(&self) -> Option<SessionHandle> {
        self.lock_session()
            .as_ref()
            .filter(|session| session.is_live())
            .cloned()
    }

    fn lock_session(&self) -> MutexGuard<'_, Option<SessionHandle>> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The caller's end of a session: its id and the way to its actor.
#[derive(Clone)]
struct SessionHandle {
    id: String,
    requests: mpsc::Sender<SnapshotRequest>,
    heap_samples: mpsc::Sender<HeapSampleRequest>,
    profiles: mpsc::Sender<ProfileRequest>,
}

impl SessionHandle {
    fn is_live(&self) -> bool {
        !self.requests.is_closed()
    }

    async fn start_snapshot(&self, spill_mem_limit: usize) -> Result<SpillReader, BeginError> {
        let (sink, body) = spill::channel(spill_mem_limit);
        let (started, started_rx) = oneshot::channel();
        let request = SnapshotRequest { sink, started };
        if self.requests.send(request).await.is_err() {
            return Err(BeginError::SessionGone);
        }
        match started_rx.await {
            Ok(Ok(())) => Ok(body),
            Ok(Err(err)) => Err(BeginError::Source(err)),
            Err(_) => Err(BeginError::SessionGone),
        }
    }
}

enum BeginError {
    /// The actor ended before sending the command; nothing reached the inspector.
    SessionGone,
    Source(SourceError),
}

impl BeginError {
    fn into_source(self) -> SourceError {
        match self {
            Self::SessionGone => {
                SourceError::Failed("inspector session closed before the snapshot started".into())
            }
            Self::Source(err) => err,
        }
    }
}

/// Asks the actor to start a snapshot into `sink`; `started` tells when the command is sent.
struct SnapshotRequest {
    sink: SpillWriter,
    started: oneshot::Sender<Result<(), SourceError>>,
}

/// What [`RSS_EXPRESSION`] answered.
#[derive(Clone, Copy)]
struct MemoryRead {
    rss: Option<u64>,
    max_rss: Option<u64>,
    pid: Option<u32>,
}

/// Asks the actor for the app's heap usage, between snapshots.
struct HeapSampleRequest {
    reply: oneshot::Sender<Result<HeapUsage, SourceError>>,
}

/// Asks the actor for the sampling heap profile: its JSON and the restarts so far.
struct ProfileRequest {
    reply: oneshot::Sender<Result<(Bytes, u64), SourceError>>,
}

/// A `getSamplingProfile` that is out: for a client (`reply`), or the actor's own check.
struct ProfileInFlight {
    id: u64,
    reply: Option<oneshot::Sender<Result<(Bytes, u64), SourceError>>>,
}

/// The sampling heap profiler's state on this session.
struct Sampling {
    config: SamplingConfig,
    /// Times it was restarted because its bookkeeping outgrew the live picture.
    restarts: u64,
}

/// A heap sample whose two commands are out.
struct HeapSampleInFlight {
    usage_id: u64,
    rss_id: u64,
    usage: Option<(u64, u64)>,
    rss: Option<MemoryRead>,
    reply: oneshot::Sender<Result<HeapUsage, SourceError>>,
}

/// Opens a session: finds the Node target, connects, enables the heap profiler, starts the actor.
async fn connect(
    addr: SocketAddr,
    sampling: Option<SamplingConfig>,
) -> Result<SessionHandle, SourceError> {
    let target = find_node_target(addr).await?;
    let ws = open_websocket(addr, &target).await?;
    let session = new_session_id()?;
    let mut actor = Actor::new(ws, session.clone());
    actor.enable_heap_profiler().await?;
    if let Some(config) = sampling {
        match actor.start_sampling(config.interval).await {
            Ok(()) => {
                actor.sampling = Some(Sampling {
                    config,
                    restarts: 0,
                });
            }
            // The snapshot path still works: only /heapprofile answers 502.
            Err(e) => {
                tracing::warn!(session = %session, error = %Escaped(&e), "the sampling heap profiler could not be started; /heapprofile answers 502 on this session");
            }
        }
    }
    let (requests, requests_rx) = mpsc::channel(REQUEST_QUEUE);
    // One heap sample (and one profile) at a time: a second while one is out is refused, not queued.
    let (heap_samples, heap_samples_rx) = mpsc::channel(1);
    let (profiles, profiles_rx) = mpsc::channel(1);
    tracing::info!(%addr, target = %target, session = %session, sampling_interval = sampling.map(|s| s.interval), "inspector session opened");
    tokio::spawn(actor.run(requests_rx, heap_samples_rx, profiles_rx));
    Ok(SessionHandle {
        id: session,
        requests,
        heap_samples,
        profiles,
    })
}

/// A random id, unique across sessions and proxy restarts.
fn new_session_id() -> Result<String, SourceError> {
    getrandom::u64()
        .map(|n| format!("{n:016x}"))
        .map_err(|e| SourceError::Failed(format!("no randomness for a session id: {e}")))
}

/// Asks `/json/list` for the id of the first target of type `node`.
async fn find_node_target(addr: SocketAddr) -> Result<String, SourceError> {
    let unreachable =
        |what: String| SourceError::Unreachable(format!("inspector at {addr}: {what}"));
    let body = timeout(CONNECT_TIMEOUT, fetch_target_list(addr))
        .await
        .map_err(|_| unreachable("/json/list timed out".into()))?
        .map_err(unreachable)?;
    pick_node_target(&body).map_err(unreachable)
}

async fn fetch_target_list(addr: SocketAddr) -> Result<Bytes, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "inspector /json/list connection ended with an error");
        }
    });
    let request = http::Request::get("/json/list")
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("building /json/list request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("/json/list: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("/json/list answered {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_TARGET_LIST_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading /json/list: {e}"))?;
    Ok(body.to_bytes())
}

#[derive(Deserialize)]
struct TargetInfo {
    id: String,
    #[serde(rename = "type")]
    kind: String,
}

fn pick_node_target(list: &[u8]) -> Result<String, String> {
    let targets: Vec<TargetInfo> = serde_json::from_slice(list)
        .map_err(|e| format!("/json/list is not a target list: {e}"))?;
    let target = targets
        .into_iter()
        .find(|t| t.kind == "node")
        .ok_or_else(|| "/json/list has no target of type \"node\"".to_owned())?;
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if target.id.is_empty() || !target.id.chars().all(plain) {
        return Err(format!("unexpected target id {:?}", target.id));
    }
    Ok(target.id)
}

type Ws = WebSocketStream<TcpStream>;

async fn open_websocket(addr: SocketAddr, target: &str) -> Result<Ws, SourceError> {
    let unreachable =
        |what: String| SourceError::Unreachable(format!("inspector at {addr}: {what}"));
    let url = format!("ws://{addr}/{target}");
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE));
    let handshake = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("set_nodelay: {e}"))?;
        tokio_tungstenite::client_async_with_config(url, stream, Some(config))
            .await
            .map(|(ws, _response)| ws)
            .map_err(|e| format!("WebSocket handshake: {e}"))
    };
    timeout(CONNECT_TIMEOUT, handshake)
        .await
        .map_err(|_| unreachable("WebSocket handshake timed out".into()))?
        .map_err(unreachable)
}

/// A CDP message from the inspector: a response (`id`) or an event (`method`).
#[derive(Deserialize)]
struct Incoming {
    id: Option<u64>,
    method: Option<String>,
    params: Option<EventParams>,
    error: Option<CdpError>,
    result: Option<serde_json::Value>,
}

/// The only event parameter read: `HeapProfiler.addHeapSnapshotChunk`'s `chunk`.
#[derive(Deserialize)]
struct EventParams {
    chunk: Option<String>,
}

#[derive(Deserialize)]
struct CdpError {
    code: i64,
    message: String,
}

impl CdpError {
    fn into_source(self, command: &str) -> SourceError {
        SourceError::Failed(format!(
            "inspector refused {command}: {} (code {})",
            self.message, self.code
        ))
    }
}

const CHUNK_EVENT: &str = "HeapProfiler.addHeapSnapshotChunk";

/// Owns the WebSocket of one session and reads it until the session ends.
struct Actor {
    ws: Ws,
    /// The session's id, for the logs.
    session: String,
    next_id: u64,
    heap_sample: Option<HeapSampleInFlight>,
    sampling: Option<Sampling>,
    profile: Option<ProfileInFlight>,
}

/// A snapshot in flight. `sink` is `None` once it has failed; the actor still reads until the
/// command's response so the session stays in step.
struct Active {
    id: u64,
    sink: Option<SpillWriter>,
    started_at: Instant,
    chunks: u64,
}

/// Whether the session goes on after a message.
enum Flow {
    Continue,
    Lost(String),
}

impl Actor {
    fn new(ws: Ws, session: String) -> Self {
        Self {
            ws,
            session,
            next_id: 1,
            heap_sample: None,
            sampling: None,
            profile: None,
        }
    }

    async fn send_command(
        &mut self,
        method: &str,
        params: serde_json::Value,
    ) -> tungstenite::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let command = serde_json::json!({ "id": id, "method": method, "params": params });
        self.ws.send(Message::text(command.to_string())).await?;
        Ok(id)
    }

    async fn enable_heap_profiler(&mut self) -> Result<(), SourceError> {
        self.command("HeapProfiler.enable", serde_json::json!({}))
            .await
    }

    /// `HeapProfiler.startSampling`, live objects only (see [`SamplingConfig`]).
    async fn start_sampling(&mut self, interval: u64) -> Result<(), SourceError> {
        self.command(
            "HeapProfiler.startSampling",
            serde_json::json!({ "samplingInterval": interval }),
        )
        .await
    }

    /// Sends `method` and waits for its answer (only before the actor runs).
    async fn command(
        &mut self,
        method: &str,
        params: serde_json::Value,
    ) -> Result<(), SourceError> {
        let id = self
            .send_command(method, params)
            .await
            .map_err(|e| SourceError::Failed(format!("sending {method}: {e}")))?;
        match timeout(ENABLE_TIMEOUT, self.response_to(id)).await {
            Ok(Ok(None)) => Ok(()),
            Ok(Ok(Some(error))) => Err(error.into_source(method)),
            Ok(Err(lost)) => Err(SourceError::Failed(format!("{lost} (during {method})"))),
            Err(_) => Err(SourceError::Failed(format!(
                "inspector did not answer {method} within {ENABLE_TIMEOUT:?}"
            ))),
        }
    }

    /// Reads until the response to command `id`; returns its error, if any.
    async fn response_to(&mut self, id: u64) -> Result<Option<CdpError>, String> {
        loop {
            let text = match self.ws.next().await {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(_))) | None => {
                    return Err("inspector closed the session".into());
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("inspector connection failed: {e}")),
            };
            let message: Incoming = serde_json::from_str(text.as_str())
                .map_err(|e| format!("unreadable CDP message: {e}"))?;
            if message.id == Some(id) {
                return Ok(message.error);
            }
        }
    }

    async fn run(
        mut self,
        mut requests: mpsc::Receiver<SnapshotRequest>,
        mut heap_samples: mpsc::Receiver<HeapSampleRequest>,
        mut profiles: mpsc::Receiver<ProfileRequest>,
    ) {
        let mut active: Option<Active> = None;
        let check_every = self
            .sampling
            .as_ref()
            .map_or(Duration::from_secs(3600), |s| s.config.check_every);
        let mut check =
            tokio::time::interval_at(tokio::time::Instant::now() + check_every, check_every);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reason = loop {
            tokio::select! {
                biased;
                frame = self.ws.next() => {
                    if let Flow::Lost(reason) = self.on_frame(frame, &mut active).await {
                        break reason;
                    }
                }
                Some(request) = heap_samples.recv(), if active.is_none() && self.heap_sample.is_none() => {
                    if let Err(reason) = self.start_heap_sample(request).await {
                        break reason;
                    }
                }
                Some(request) = profiles.recv(), if active.is_none() && self.profile.is_none() => {
                    if let Err(reason) = self.start_profile(Some(request.reply)).await {
                        break reason;
                    }
                }
                _ = check.tick(), if self.sampling.is_some() && active.is_none() && self.profile.is_none() => {
                    if let Err(reason) = self.start_profile(None).await {
                        break reason;
                    }
                }
                request = requests.recv(), if active.is_none() => {
                    let Some(request) = request else {
                        self.close().await;
                        return;
                    };
                    match self.start_snapshot(request).await {
                        Ok(started) => active = started,
                        Err(reason) => break reason,
                    }
                }
            }
        };
        tracing::warn!(session = %self.session, %reason, "inspector session lost");
        if let Some(sample) = self.heap_sample.take() {
            let _ = sample.reply.send(Err(SourceError::Failed(format!(
                "{reason} during a heap sample"
            ))));
        }
        if let Some(reply) = self.profile.take().and_then(|p| p.reply) {
            let _ = reply.send(Err(SourceError::Failed(format!(
                "{reason} while reading the profile"
            ))));
        }
        if let Some(mut active) = active {
            active.fail(SourceError::Failed(format!("{reason} mid-snapshot")));
        }
    }

    /// Sends `HeapProfiler.getSamplingProfile`, for a client (`reply`) or the bookkeeping check.
    async fn start_profile(
        &mut self,
        reply: Option<oneshot::Sender<Result<(Bytes, u64), SourceError>>>,
    ) -> Result<(), String> {
        if reply.as_ref().is_some_and(oneshot::Sender::is_closed) {
            return Ok(());
        }
        if self.sampling.is_none() {
            if let Some(reply) = reply {
                let _ = reply.send(Err(SourceError::Failed(
                    "the sampling heap profiler is not running on this session".into(),
                )));
            }
            return Ok(());
        }
        match self
            .send_command("HeapProfiler.getSamplingProfile", serde_json::json!({}))
            .await
        {
            Ok(id) => {
                self.profile = Some(ProfileInFlight { id, reply });
                Ok(())
            }
            Err(e) => {
                let reason = format!("sending HeapProfiler.getSamplingProfile: {e}");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(SourceError::Failed(reason.clone())));
                }
                Err(reason)
            }
        }
    }

    /// Takes `getSamplingProfile`'s answer: hands it to the client, or checks the bookkeeping
    /// and restarts sampling when it outgrew the live picture (see [`SamplingConfig`]).
    async fn on_profile_answer(&mut self, message: Incoming) -> Result<(), String> {
        let Some(ProfileInFlight { reply, .. }) = self.profile.take() else {
            return Ok(());
        };
        let restarts = self.sampling.as_ref().map_or(0, |s| s.restarts);
        let profile = match (message.error, message.result) {
            (None, Some(mut result)) => result.get_mut("profile").map(serde_json::Value::take),
            (Some(error), _) => {
                let err = error.into_source("HeapProfiler.getSamplingProfile");
                tracing::warn!(session = %self.session, error = %err, "sampling profile refused; starting sampling again");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(err));
                }
                // V8 stopped sampling behind our back (another session on the app disabled its
                // heap profiler, which stops the isolate's one sampler): start it again, so the
                // next request has a profile (from now on).
                if let Some(sampling) = &mut self.sampling {
                    sampling.restarts += 1;
                    let interval = sampling.config.interval;
                    self.send_command(
                        "HeapProfiler.startSampling",
                        serde_json::json!({ "samplingInterval": interval }),
                    )
                    .await
                    .map_err(|e| format!("restarting sampling: {e}"))?;
                }
                return Ok(());
            }
            (None, None) => None,
        };
        let Some(profile) = profile.filter(serde_json::Value::is_object) else {
            if let Some(reply) = reply {
                let _ = reply.send(Err(SourceError::Failed(
                    "HeapProfiler.getSamplingProfile answered no profile".into(),
                )));
            }
            return Ok(());
        };
        if let Some(reply) = reply {
            let json = serde_json::to_vec(&profile).map_err(|e| e.to_string())?;
            let _ = reply.send(Ok((Bytes::from(json), restarts)));
            return Ok(());
        }
        let (nodes, samples) = profile_size(&profile);
        if nodes <= SamplingConfig::max_nodes(samples) {
            tracing::debug!(session = %self.session, nodes, samples, "sampling profiler bookkeeping checked");
            return Ok(());
        }
        let Some(sampling) = &mut self.sampling else {
            return Ok(());
        };
        sampling.restarts += 1;
        let interval = sampling.config.interval;
        tracing::warn!(session = %self.session, nodes, samples, restarts = sampling.restarts, "restarting the sampling heap profiler: its stack nodes outgrew the live samples; objects allocated before now leave the profile");
        let sent = async {
            self.send_command("HeapProfiler.stopSampling", serde_json::json!({}))
                .await?;
            self.send_command(
                "HeapProfiler.startSampling",
                serde_json::json!({ "samplingInterval": interval }),
            )
            .await
        };
        sent.await
            .map(drop)
            .map_err(|e| format!("restarting sampling: {e}"))
    }

    /// Sends the heap sample's two commands; their answers are matched in `on_text`.
    async fn start_heap_sample(&mut self, sample: HeapSampleRequest) -> Result<(), String> {
        if sample.reply.is_closed() {
            return Ok(());
        }
        let sent = async {
            let usage_id = self
                .send_command("Runtime.getHeapUsage", serde_json::json!({}))
                .await?;
            let params = serde_json::json!({
                "expression": RSS_EXPRESSION,
                "returnByValue": true,
                "silent": true,
            });
            let rss_id = self.send_command("Runtime.evaluate", params).await?;
            Ok::<_, tungstenite::Error>((usage_id, rss_id))
        };
        match sent.await {
            Ok((usage_id, rss_id)) => {
                self.heap_sample = Some(HeapSampleInFlight {
                    usage_id,
                    rss_id,
                    usage: None,
                    rss: None,
                    reply: sample.reply,
                });
                Ok(())
            }
            Err(e) => {
                let reason = format!("sending a heap sample: {e}");
                let _ = sample.reply.send(Err(SourceError::Failed(reason.clone())));
                Err(reason)
            }
        }
    }

    /// Takes a heap sample command's answer; replies once both are in.
    fn on_heap_sample_answer(&mut self, message: &Incoming) -> bool {
        let Some(sample) = &mut self.heap_sample else {
            return false;
        };
        let Some(id) = message.id else { return false };
        if id == sample.usage_id {
            let read = |key: &str| {
                message
                    .result
                    .as_ref()
                    .and_then(|r| r.get(key))
                    .and_then(serde_json::Value::as_f64)
                    .map(|n| n as u64)
            };
            match (&message.error, read("usedSize"), read("totalSize")) {
                (None, Some(used), Some(total)) => sample.usage = Some((used, total)),
                _ => {
                    let why = message
                        .error
                        .as_ref()
                        .map_or_else(|| "no usedSize/totalSize".to_owned(), |e| e.message.clone());
                    if let Some(sample) = self.heap_sample.take() {
                        let _ = sample.reply.send(Err(SourceError::Failed(format!(
                            "Runtime.getHeapUsage: {why}"
                        ))));
                    }
                    return true;
                }
            }
        } else if id == sample.rss_id {
            // `{result: {type: "object", value: [rss, maxRSS, pid]}}`; an exception (an old Node)
            // leaves them unread.
            let value = message
                .result
                .as_ref()
                .filter(|r| r.get("exceptionDetails").is_none())
                .and_then(|r| r.pointer("/result/value"));
            let number = |i: usize| {
                value
                    .and_then(|v| v.get(i))
                    .and_then(serde_json::Value::as_f64)
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .map(|n| n as u64)
            };
            sample.rss = Some(MemoryRead {
                rss: number(0),
                max_rss: number(1),
                pid: number(2).and_then(|n| u32::try_from(n).ok()),
            });
        } else {
            return false;
        }
        if let (Some((used, total)), Some(read)) = (sample.usage, sample.rss)
            && let Some(sample) = self.heap_sample.take()
        {
            let _ = sample.reply.send(Ok(HeapUsage {
                used,
                total,
                rss: read.rss,
                max_rss: read.max_rss,
                pid: read.pid,
            }));
        }
        true
    }

    /// Sends `HeapProfiler.takeHeapSnapshot` for `request`. Returns the snapshot now in flight
    /// (none if the requester gave up meanwhile), or why the session is lost.
    async fn start_snapshot(&mut self, request: SnapshotRequest) -> Result<Option<Active>, String> {
        const TAKE: &str = "HeapProfiler.takeHeapSnapshot";
        if request.started.is_closed() {
            // The caller gave up while queued: don't make the app pay for a snapshot.
            return Ok(None);
        }
        let params = serde_json::json!({ "reportProgress": false });
        match self.send_command(TAKE, params).await {
            Ok(id) => {
                tracing::info!(session = %self.session, "heap snapshot started");
                let _ = request.started.send(Ok(()));
                Ok(Some(Active::new(id, request.sink)))
            }
            Err(e) => {
                let reason = format!("sending {TAKE}: {e}");
                let _ = request
                    .started
                    .send(Err(SourceError::Failed(reason.clone())));
                Err(reason)
            }
        }
    }

    async fn on_frame(
        &mut self,
        frame: Option<tungstenite::Result<Message>>,
        active: &mut Option<Active>,
    ) -> Flow {
        match frame {
            Some(Ok(Message::Text(text))) => match self.on_text(text.as_str(), active).await {
                Ok(()) => Flow::Continue,
                Err(reason) => Flow::Lost(reason),
            },
            Some(Ok(Message::Close(_))) | None => Flow::Lost("inspector closed the session".into()),
            // Pings are answered by tungstenite on the next read.
            Some(Ok(_)) => Flow::Continue,
            Some(Err(e)) => Flow::Lost(format!("inspector connection failed: {e}")),
        }
    }

    async fn on_text(&mut self, text: &str, active: &mut Option<Active>) -> Result<(), String> {
        let message: Incoming = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(session = %self.session, error = %e, "unreadable CDP message");
                if let Some(active) = active {
                    active.fail(SourceError::Failed(format!("unreadable CDP message: {e}")));
                }
                return Ok(());
            }
        };
        if self.on_heap_sample_answer(&message) {
            return Ok(());
        }
        if message.id.is_some() && self.profile.as_ref().map(|p| p.id) == message.id {
            return self.on_profile_answer(message).await;
        }
        let Some(current) = active else {
            tracing::debug!(session = %self.session, method = ?message.method, "CDP message between snapshots");
            return Ok(());
        };
        if message.method.as_deref() == Some(CHUNK_EVENT) {
            let chunk = message.params.and_then(|p| p.chunk).unwrap_or_default();
            current.push(chunk);
        } else if message.id == Some(current.id) {
            let done = active.take();
            if let Some(done) = done {
                self.complete(done, message.error);
            }
        }
        Ok(())
    }

    fn complete(&self, mut done: Active, error: Option<CdpError>) {
        let elapsed_ms = done.started_at.elapsed().as_millis();
        let Some(sink) = done.sink.take() else {
            tracing::info!(session = %self.session, elapsed_ms, "failed heap snapshot drained");
            return;
        };
        let stats = sink.stats();
        match error {
            None => {
                tracing::info!(
                    session = %self.session,
                    elapsed_ms,
                    chunks = done.chunks,
                    bytes = stats.total_bytes,
                    spilled_bytes = stats.spilled_bytes,
                    client_gone = sink.consumer_gone(),
                    "heap snapshot complete"
                );
                sink.finish();
            }
            Some(error) => {
                let err = error.into_source("HeapProfiler.takeHeapSnapshot");
                tracing::warn!(session = %self.session, elapsed_ms, error = %err, "heap snapshot failed");
                sink.fail(err);
            }
        }
    }

    async fn close(&mut self) {
        tracing::info!(session = %self.session, "closing inspector session");
        let _ = timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }
}

impl Active {
    fn new(id: u64, sink: SpillWriter) -> Self {
        Self {
            id,
            sink: Some(sink),
            started_at: Instant::now(),
            chunks: 0,
        }
    }

    fn push(&mut self, chunk: String) {
        self.chunks += 1;
        if let Some(sink) = &mut self.sink {
            sink.push(Bytes::from(chunk));
        }
    }

    fn fail(&mut self, err: SourceError) {
        if let Some(sink) = self.sink.take() {
            sink.fail(err);
        }
    }
}

/// A sampling profile's stack nodes and live samples (`head`'s tree, `samples`).
fn profile_size(profile: &serde_json::Value) -> (usize, usize) {
    let samples = profile
        .get("samples")
        .and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len);
    let mut nodes = 0;
    let mut stack: Vec<&serde_json::Value> = profile.get("head").into_iter().collect();
    while let Some(node) = stack.pop() {
        nodes += 1;
        if let Some(children) = node.get("children").and_then(serde_json::Value::as_array) {
            stack.extend(children);
        }
    }
    (nodes, samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_size_counts_nodes_and_samples() {
        let profile = serde_json::json!({
            "head": {"callFrame": {}, "selfSize": 0, "id": 1, "children": [
                {"callFrame": {}, "selfSize": 10, "id": 2, "children": [
                    {"callFrame": {}, "selfSize": 5, "id": 3, "children": []}
                ]},
                {"callFrame": {}, "selfSize": 1, "id": 4, "children": []}
            ]},
            "samples": [{"size": 10, "nodeId": 2, "ordinal": 1}]
        });
        assert_eq!(profile_size(&profile), (4, 1));
        assert_eq!(profile_size(&serde_json::json!({})), (0, 0));
        assert!(SamplingConfig::max_nodes(0) >= 50_000);
        assert_eq!(SamplingConfig::max_nodes(10_000), 640_000);
    }

    #[test]
    fn picks_first_node_target_and_checks_its_id() {
        let list = br#"[{"id":"x","type":"page"},{"id":"0f1e-2d3c","type":"node","webSocketDebuggerUrl":"ws://evil.example/0f1e-2d3c"}]"#;
        assert_eq!(pick_node_target(list).unwrap(), "0f1e-2d3c");
        assert!(pick_node_target(br#"[{"id":"x","type":"page"}]"#).is_err());
        assert!(pick_node_target(br#"[{"id":"../x","type":"node"}]"#).is_err());
        assert!(pick_node_target(b"<html>").is_err());
    }

    #[test]
    fn session_ids_are_16_hex_and_differ() {
        let a = new_session_id().unwrap();
        let b = new_session_id().unwrap();
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn chunk_event_is_unescaped() {
        let text = r#"{"method":"HeapProfiler.addHeapSnapshotChunk","params":{"chunk":"{\"snapshot\":\n1"}}"#;
        let message: Incoming = serde_json::from_str(text).unwrap();
        assert_eq!(message.method.as_deref(), Some(CHUNK_EVENT));
        assert_eq!(message.params.unwrap().chunk.unwrap(), "{\"snapshot\":\n1");
    }
}
