//! Heap snapshots from a Node.js inspector (Chrome DevTools Protocol), over one long-lived
//! session.
//!
//! Why one long-lived session: V8 gives every heap object an id that stays stable across
//! snapshots, and DevTools' Comparison (and `heapgate diff`) matches objects between two
//! snapshots by that id. `HeapProfiler.disable` — and closing the session, which disables —
//! clears the ids, so two snapshots taken over two sessions look like thousands of "new"
//! objects. So this source connects once, enables the heap profiler once, never disables it and
//! never closes the session between snapshots. Each session gets a random *series* id; snapshots
//! with the same series can be compared. If the session drops (app restarted), the next snapshot
//! opens a new session with a new series.
//!
//! Why an actor: a background task owns the WebSocket and reads it all the time, also between
//! snapshots (to notice a dropped session and answer pings). During a snapshot it must read as
//! fast as Node writes — otherwise Node queues the frames in the app's own memory, which is the
//! process we are trying not to hurt — so chunks go into a spill queue ([`crate::source::spill`]) that
//! never blocks: a few MiB in memory, the rest in an anonymous temp file, drained by the HTTP
//! client at its own pace. If the client goes away, the actor keeps draining (and discarding)
//! until V8 says the snapshot is complete, so the session stays usable for the next one.
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

/// Time allowed for a heap-usage probe's two answers. The app's main thread answers them.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the app reads for its resident set size: one call, no allocation to speak of, and
/// nothing kept (`returnByValue`). `process.memoryUsage.rss()` (Node ≥ 14.18) reads the RSS
/// without walking the heap spaces, unlike `process.memoryUsage()`.
const RSS_EXPRESSION: &str = "process.memoryUsage.rss()";

/// The app's memory, as read over the inspector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapUsage {
    /// V8's heap in use (`Runtime.getHeapUsage` `usedSize`), bytes.
    pub used: u64,
    /// V8's heap reserved (`totalSize`), bytes.
    pub total: u64,
    /// The process's resident set size, bytes, when it could be read.
    pub rss: Option<u64>,
}

/// A heap-usage probe read: the usage, and the session (series) it was read on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub usage: HeapUsage,
    pub series: String,
}

/// A source of heap snapshots from the Node inspector at one address.
///
/// Cheap to share behind an `Arc`; all methods take `&self`.
pub struct InspectorSource {
    addr: SocketAddr,
    spill_mem_limit: usize,
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
            session: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    /// The inspector address this source talks to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The series of the live session, if one is open.
    pub fn series(&self) -> Option<String> {
        self.live_session().map(|session| session.series)
    }

    /// Reads the app's heap usage and RSS over the session (opening one if none is live):
    /// `Runtime.getHeapUsage` and `Runtime.evaluate` of [`RSS_EXPRESSION`]. Never touches the
    /// heap profiler. Refused while a snapshot is in flight (the app's loop is blocked then).
    pub async fn probe(&self) -> Result<Probe, SourceError> {
        let (session, _) = self.live_or_connect().await?;
        let (reply, answer) = oneshot::channel();
        if session.probes.try_send(ProbeRequest { reply }).is_err() {
            return Err(SourceError::Failed(
                "inspector session busy or closed; probe skipped".into(),
            ));
        }
        let usage = timeout(PROBE_TIMEOUT, answer)
            .await
            .map_err(|_| SourceError::Failed(format!("no probe answer within {PROBE_TIMEOUT:?}")))?
            .map_err(|_| SourceError::Failed("inspector session closed during a probe".into()))??;
        Ok(Probe {
            usage,
            series: session.series,
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
            series: Some(session.series.clone()),
            body: Box::pin(body),
            content_encoding: None,
        })
    }

    async fn live_or_connect(&self) -> Result<(SessionHandle, bool), SourceError> {
        let _connecting = self.connecting.lock().await;
        if let Some(session) = self.live_session() {
            return Ok((session, false));
        }
        let session = connect(self.addr).await?;
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

/// The caller's end of a session: its series and the way to its actor.
#[derive(Clone)]
struct SessionHandle {
    series: String,
    requests: mpsc::Sender<SnapshotRequest>,
    probes: mpsc::Sender<ProbeRequest>,
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

/// Asks the actor for the app's heap usage, between snapshots.
struct ProbeRequest {
    reply: oneshot::Sender<Result<HeapUsage, SourceError>>,
}

/// A probe whose two commands are out.
struct ProbeInFlight {
    usage_id: u64,
    rss_id: u64,
    usage: Option<(u64, u64)>,
    rss: Option<Option<u64>>,
    reply: oneshot::Sender<Result<HeapUsage, SourceError>>,
}

/// Opens a session: finds the Node target, connects, enables the heap profiler, starts the actor.
async fn connect(addr: SocketAddr) -> Result<SessionHandle, SourceError> {
    let target = find_node_target(addr).await?;
    let ws = open_websocket(addr, &target).await?;
    let series = new_series()?;
    let mut actor = Actor::new(ws, series.clone());
    actor.enable_heap_profiler().await?;
    let (requests, requests_rx) = mpsc::channel(REQUEST_QUEUE);
    // One probe at a time: a second while one is out is skipped, not queued.
    let (probes, probes_rx) = mpsc::channel(1);
    tracing::info!(%addr, target = %target, series = %series, "inspector session opened");
    tokio::spawn(actor.run(requests_rx, probes_rx));
    Ok(SessionHandle {
        series,
        requests,
        probes,
    })
}

/// A random id, unique across sessions and proxy restarts.
fn new_series() -> Result<String, SourceError> {
    getrandom::u64()
        .map(|n| format!("{n:016x}"))
        .map_err(|e| SourceError::Failed(format!("no randomness for a series id: {e}")))
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
    series: String,
    next_id: u64,
    probe: Option<ProbeInFlight>,
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
    fn new(ws: Ws, series: String) -> Self {
        Self {
            ws,
            series,
            next_id: 1,
            probe: None,
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
        const ENABLE: &str = "HeapProfiler.enable";
        let id = self
            .send_command(ENABLE, serde_json::json!({}))
            .await
            .map_err(|e| SourceError::Failed(format!("sending {ENABLE}: {e}")))?;
        match timeout(ENABLE_TIMEOUT, self.response_to(id)).await {
            Ok(Ok(None)) => Ok(()),
            Ok(Ok(Some(error))) => Err(error.into_source(ENABLE)),
            Ok(Err(lost)) => Err(SourceError::Failed(format!("{lost} (during {ENABLE})"))),
            Err(_) => Err(SourceError::Failed(format!(
                "inspector did not answer {ENABLE} within {ENABLE_TIMEOUT:?}"
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
        mut probes: mpsc::Receiver<ProbeRequest>,
    ) {
        let mut active: Option<Active> = None;
        let reason = loop {
            tokio::select! {
                biased;
                frame = self.ws.next() => {
                    if let Flow::Lost(reason) = self.on_frame(frame, &mut active) {
                        break reason;
                    }
                }
                Some(probe) = probes.recv(), if active.is_none() && self.probe.is_none() => {
                    if let Err(reason) = self.start_probe(probe).await {
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
        tracing::warn!(series = %self.series, %reason, "inspector session lost");
        if let Some(probe) = self.probe.take() {
            let _ = probe
                .reply
                .send(Err(SourceError::Failed(format!("{reason} during a probe"))));
        }
        if let Some(mut active) = active {
            active.fail(SourceError::Failed(format!("{reason} mid-snapshot")));
        }
    }

    /// Sends the probe's two commands; their answers are matched in `on_text`.
    async fn start_probe(&mut self, probe: ProbeRequest) -> Result<(), String> {
        if probe.reply.is_closed() {
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
                self.probe = Some(ProbeInFlight {
                    usage_id,
                    rss_id,
                    usage: None,
                    rss: None,
                    reply: probe.reply,
                });
                Ok(())
            }
            Err(e) => {
                let reason = format!("sending a heap-usage probe: {e}");
                let _ = probe.reply.send(Err(SourceError::Failed(reason.clone())));
                Err(reason)
            }
        }
    }

    /// Takes a probe command's answer; replies once both are in.
    fn on_probe_answer(&mut self, message: &Incoming) -> bool {
        let Some(probe) = &mut self.probe else {
            return false;
        };
        let Some(id) = message.id else { return false };
        if id == probe.usage_id {
            let read = |key: &str| {
                message
                    .result
                    .as_ref()
                    .and_then(|r| r.get(key))
                    .and_then(serde_json::Value::as_f64)
                    .map(|n| n as u64)
            };
            match (&message.error, read("usedSize"), read("totalSize")) {
                (None, Some(used), Some(total)) => probe.usage = Some((used, total)),
                _ => {
                    let why = message
                        .error
                        .as_ref()
                        .map_or_else(|| "no usedSize/totalSize".to_owned(), |e| e.message.clone());
                    if let Some(probe) = self.probe.take() {
                        let _ = probe.reply.send(Err(SourceError::Failed(format!(
                            "Runtime.getHeapUsage: {why}"
                        ))));
                    }
                    return true;
                }
            }
        } else if id == probe.rss_id {
            // `{result: {type: "number", value: N}}`; an exception (an old Node) leaves it unread.
            let value = message
                .result
                .as_ref()
                .filter(|r| r.get("exceptionDetails").is_none())
                .and_then(|r| r.pointer("/result/value"))
                .and_then(serde_json::Value::as_f64)
                .map(|n| n as u64);
            probe.rss = Some(value);
        } else {
            return false;
        }
        if let (Some((used, total)), Some(rss)) = (probe.usage, probe.rss) {
            if let Some(probe) = self.probe.take() {
                let _ = probe.reply.send(Ok(HeapUsage { used, total, rss }));
            }
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
                tracing::info!(series = %self.series, "heap snapshot started");
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

    fn on_frame(
        &mut self,
        frame: Option<tungstenite::Result<Message>>,
        active: &mut Option<Active>,
    ) -> Flow {
        match frame {
            Some(Ok(Message::Text(text))) => {
                self.on_text(text.as_str(), active);
                Flow::Continue
            }
            Some(Ok(Message::Close(_))) | None => Flow::Lost("inspector closed the session".into()),
            // Pings are answered by tungstenite on the next read.
            Some(Ok(_)) => Flow::Continue,
            Some(Err(e)) => Flow::Lost(format!("inspector connection failed: {e}")),
        }
    }

    fn on_text(&mut self, text: &str, active: &mut Option<Active>) {
        let message: Incoming = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(series = %self.series, error = %e, "unreadable CDP message");
                if let Some(active) = active {
                    active.fail(SourceError::Failed(format!("unreadable CDP message: {e}")));
                }
                return;
            }
        };
        if self.on_probe_answer(&message) {
            return;
        }
        let Some(current) = active else {
            tracing::debug!(series = %self.series, method = ?message.method, "CDP message between snapshots");
            return;
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
    }

    fn complete(&self, mut done: Active, error: Option<CdpError>) {
        let elapsed_ms = done.started_at.elapsed().as_millis();
        let Some(sink) = done.sink.take() else {
            tracing::info!(series = %self.series, elapsed_ms, "failed heap snapshot drained");
            return;
        };
        let stats = sink.stats();
        match error {
            None => {
                tracing::info!(
                    series = %self.series,
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
                tracing::warn!(series = %self.series, elapsed_ms, error = %err, "heap snapshot failed");
                sink.fail(err);
            }
        }
    }

    async fn close(&mut self) {
        tracing::info!(series = %self.series, "closing inspector session");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_first_node_target_and_checks_its_id() {
        let list = br#"[{"id":"x","type":"page"},{"id":"0f1e-2d3c","type":"node","webSocketDebuggerUrl":"ws://evil.example/0f1e-2d3c"}]"#;
        assert_eq!(pick_node_target(list).unwrap(), "0f1e-2d3c");
        assert!(pick_node_target(br#"[{"id":"x","type":"page"}]"#).is_err());
        assert!(pick_node_target(br#"[{"id":"../x","type":"node"}]"#).is_err());
        assert!(pick_node_target(b"<html>").is_err());
    }

    #[test]
    fn series_ids_are_16_hex_and_differ() {
        let a = new_series().unwrap();
        let b = new_series().unwrap();
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
