//! Leak watch: the heap's figures on `/metrics`, and, on sustained growth, a series of evidence
//! stored where it outlives the task: profile first. Each capture of a series stores the sampling
//! heap profile (cheap, always allowed), then a snapshot only where the headroom rule
//! ([`crate::headroom`]) says it fits; the manifest records which evidence each capture holds
//! and why a snapshot was held back.
//!
//! Polling rides the proxy's one inspector session ([`InspectorSource::sample_heap`]):
//! `Runtime.getHeapUsage` and one `Runtime.evaluate` of `process.memoryUsage.rss()`, never
//! touching the heap profiler. A sample is skipped while a snapshot runs (the app's loop is
//! blocked then, and the gate says so). The [`trigger`] decides; a series takes its snapshots
//! through the same gate as requests (waiting while it is busy), so a manual request still
//! works in between, and streams each one compressed (and redacted if configured) into a
//! multipart upload (`heapgate_store` says where).

pub(crate) mod trigger;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use heapgate_protocol::TaskId;
use heapgate_store::{CaptureRecord, EndRecord, MANIFEST, Manifest, Store, TriggerRecord, layout};
use object_store::path::Path;
use object_store::{PutPayload, WriteMultipart};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::body::encoding::{Coding, Encoder};
use crate::body::redaction;
use crate::config::{SeriesConfig, WatchConfig};
use crate::gate::{SnapshotGate, SnapshotPermit};
use crate::headroom::SnapshotRule;
use crate::metrics::Metrics;
use crate::source::inspector::{HeapSample, InspectorSource};
use crate::source::{ChunkStream, SourceError};
use trigger::{Decision, Growth, Guard, Trigger, TriggerConfig};

/// Size of each uploaded part (S3 wants at least 5 MiB but the last).
const PART_SIZE: usize = 8 << 20;
/// Parts uploading at once; with the part being filled, at most three parts are held in memory.
const PARTS_IN_FLIGHT: usize = 2;
/// Attempts to start an upload before the snapshot is taken (the app pays nothing for these).
const BEGIN_ATTEMPTS: u32 = 4;
/// Longest wait for the gate before a series gives a snapshot up.
const GATE_WAIT: Duration = Duration::from_secs(600);

/// What the watch shares with the rest of the proxy.
pub(crate) struct Shared {
    /// The proxy's one inspector session.
    pub(crate) inspector: Arc<InspectorSource>,
    /// The headroom rule, shared with the snapshot path (it learns from both).
    pub(crate) rule: Arc<SnapshotRule>,
    /// The snapshot gate: the watch's snapshots and requested ones never overlap.
    pub(crate) gate: Arc<SnapshotGate>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) task: TaskId,
}

/// The leak watch, ready to [`run`](Watch::run).
pub(crate) struct Watch {
    inspector: Arc<InspectorSource>,
    rule: Arc<SnapshotRule>,
    gate: Arc<SnapshotGate>,
    metrics: Arc<Metrics>,
    task: TaskId,
    every: Duration,
    /// The trigger, series and store; `None`: metrics only.
    leak: Option<(TriggerConfig, SeriesConfig, Store)>,
    redact_strings: bool,
    now: fn() -> DateTime<Utc>,
}

/// Why a series ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    Complete,
    /// The inspector session changed or dropped: the process is not the one the series began on.
    AppRestarted(String),
    StorageFailed(String),
    SnapshotFailed(String),
    GateBusy,
}

impl End {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            End::Complete => "complete",
            End::AppRestarted(_) => "app_restarted",
            End::StorageFailed(_) => "storage_failed",
            End::SnapshotFailed(_) => "snapshot_failed",
            End::GateBusy => "gate_busy",
        }
    }

    fn detail(&self) -> String {
        match self {
            End::Complete => "all captures stored".to_owned(),
            End::GateBusy => format!("the snapshot gate stayed busy for {GATE_WAIT:?}"),
            End::AppRestarted(d) | End::StorageFailed(d) | End::SnapshotFailed(d) => d.clone(),
        }
    }
}

impl Watch {
    /// The watch `config` asks for, its store opened (the error says why it cannot be); `None`
    /// when polling is off.
    pub(crate) fn new(
        config: &WatchConfig,
        redact_strings: bool,
        shared: Shared,
        now: fn() -> DateTime<Utc>,
    ) -> Result<Option<Watch>, String> {
        let Some(every) = config.every else {
            return Ok(None);
        };
        let leak = match &config.leak {
            None => None,
            Some(leak) => {
                let store = Store::open(&leak.store)?;
                tracing::info!(
                    store = %leak.store,
                    growth = leak.trigger.growth,
                    window_s = leak.trigger.window.as_secs(),
                    count = leak.series.count,
                    interval_s = leak.series.interval.as_secs(),
                    cooldown_s = leak.trigger.cooldown.as_secs(),
                    "leak watch on"
                );
                Some((leak.trigger, leak.series, store))
            }
        };
        let Shared {
            inspector,
            rule,
            gate,
            metrics,
            task,
        } = shared;
        Ok(Some(Watch {
            inspector,
            rule,
            gate,
            metrics,
            task,
            every,
            leak,
            redact_strings,
            now,
        }))
    }

    /// Polls until the task is dropped (the proxy stops).
    pub(crate) async fn run(self) {
        let watch = Arc::new(self);
        let mut ticker = tokio::time::interval(watch.every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut trigger = watch
            .leak
            .as_ref()
            .map(|(config, _, _)| Trigger::new(*config));
        let (ended_tx, mut ended_rx) = mpsc::channel::<End>(1);
        let mut session: Option<String> = None;
        let mut held: Option<&'static str> = None;
        let mut failing = false;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                Some(_) = ended_rx.recv() => {
                    held = None;
                    if let Some(trigger) = &mut trigger {
                        trigger.series_ended(Instant::now());
                    }
                    continue;
                }
            }
            if watch.gate.is_running() {
                watch.metrics.watch_sample("skipped");
                tracing::debug!("heap sample skipped: a snapshot is running");
                continue;
            }
            let sample = match watch.inspector.sample_heap().await {
                Ok(sample) => sample,
                Err(e) => {
                    watch.metrics.watch_sample("failed");
                    if !failing {
                        tracing::warn!(error = %e, "cannot read the app's heap usage");
                    }
                    failing = true;
                    continue;
                }
            };
            failing = false;
            watch.metrics.watch_sample("ok");
            watch.metrics.app_memory(sample.usage);
            let Some(trigger) = &mut trigger else {
                continue;
            };
            if session.as_deref() != Some(sample.session.as_str()) {
                // A new inspector session: the app restarted (or this is the first sample).
                trigger.reset();
                session = Some(sample.session.clone());
            }
            match trigger.observe(Instant::now(), sample.usage) {
                Decision::Quiet => {}
                Decision::Held(guard, growth) => {
                    watch.metrics.watch_held(guard.label());
                    // Once per guard, not per sample: the floor can dip below the threshold
                    // and back while one guard holds. A running series is expected (it was
                    // logged when it started); the other guards are worth a warning.
                    if held != Some(guard.label()) {
                        if matches!(guard, Guard::SeriesRunning) {
                            tracing::info!(
                                guard = guard.label(),
                                floor_from = growth.from,
                                floor_to = growth.to,
                                over_s = growth.over.as_secs(),
                                "leak watch: heap floor grew, series held back"
                            );
                        } else {
                            tracing::warn!(
                                guard = guard.label(),
                                detail = ?guard,
                                floor_from = growth.from,
                                floor_to = growth.to,
                                over_s = growth.over.as_secs(),
                                "leak watch: heap floor grew, series held back"
                            );
                        }
                    }
                    held = Some(guard.label());
                }
                Decision::Fire(growth) => {
                    held = None;
                    trigger.series_started();
                    tracing::warn!(
                        floor_from = growth.from,
                        floor_to = growth.to,
                        over_s = growth.over.as_secs(),
                        "leak watch: heap floor grew; taking a series"
                    );
                    let watch = Arc::clone(&watch);
                    let ended = ended_tx.clone();
                    tokio::spawn(async move {
                        let end = watch.series(growth, &sample).await;
                        let _ = ended.send(end).await;
                    });
                }
            }
        }
    }

    /// Takes and stores one series; logs and counts how it ended.
    async fn series(&self, growth: Growth, first: &HeapSample) -> End {
        let Some((trigger, series, store)) = &self.leak else {
            return End::Complete;
        };
        let started = (self.now)();
        let id = layout::series_id(started, &first.session);
        let mut manifest = Manifest {
            task: self.task.to_string(),
            series: id.clone(),
            session: first.session.clone(),
            heapgate_version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: started.to_rfc3339(),
            trigger: TriggerRecord {
                reason: format!(
                    "heap floor grew by {} bytes (at least {}) within {}s",
                    growth.to.saturating_sub(growth.from),
                    trigger.growth,
                    growth.over.as_secs()
                ),
                floor_from_bytes: growth.from,
                floor_to_bytes: growth.to,
                over_seconds: growth.over.as_secs(),
            },
            captures: Vec::new(),
            ended: None,
        };
        let folder = layout::series_folder(self.task.as_str(), &id);
        let mut end = End::Complete;
        for n in 0..series.count {
            if n > 0 {
                tokio::time::sleep(series.interval).await;
            }
            match self.capture(store, &folder, &first.session).await {
                Ok(record) => {
                    tracing::info!(series = %id, profile = record.profile.as_deref(), snapshot = record.file.as_deref(), held_back = record.snapshot_held_back.as_deref(), stored_bytes = record.stored_bytes, "leak watch: capture stored");
                    manifest.captures.push(record);
                    if n + 1 < series.count {
                        self.write_manifest(store, &folder, &manifest).await;
                    }
                }
                Err(e) => {
                    end = e;
                    break;
                }
            }
        }
        manifest.ended = Some(EndRecord {
            reason: end.label().to_owned(),
            detail: end.detail(),
            at: (self.now)().to_rfc3339(),
        });
        self.write_manifest(store, &folder, &manifest).await;
        self.metrics.watch_series(end.label());
        match &end {
            End::Complete => {
                tracing::info!(series = %id, captures = manifest.captures.len(), store = %store.display(&store.path(&folder)), "leak watch: series complete");
            }
            _ => {
                tracing::warn!(series = %id, captures = manifest.captures.len(), ended = end.label(), detail = %end.detail(), "leak watch: series ended early");
            }
        }
        end
    }

    /// One capture of the series: under the gate (so no snapshot blocks the app meanwhile), the
    /// profile, then the snapshot if the headroom rule lets it through.
    async fn capture(
        &self,
        store: &Store,
        folder: &str,
        session: &str,
    ) -> Result<CaptureRecord, End> {
        let permit = self.wait_for_gate().await?;
        let sample = match self.inspector.sample_heap().await {
            Ok(sample) => sample,
            Err(e) => {
                permit.release_uncharged();
                return Err(End::AppRestarted(format!("inspector: {e}")));
            }
        };
        self.metrics.app_memory(sample.usage);
        if sample.session != session {
            permit.release_uncharged();
            return Err(restarted(session));
        }
        let at = (self.now)();
        let mut record = CaptureRecord {
            file: None,
            profile: None,
            snapshot_held_back: None,
            at: at.to_rfc3339(),
            heap_used_bytes: sample.usage.used,
            heap_total_bytes: sample.usage.total,
            rss_bytes: sample.usage.rss,
            stored_bytes: 0,
        };
        if self.inspector.samples() {
            match self.store_profile(store, folder, session, at).await {
                Ok((name, bytes)) => {
                    record.profile = Some(name);
                    record.stored_bytes += bytes;
                }
                Err(end @ End::AppRestarted(_)) => {
                    permit.release_uncharged();
                    return Err(end);
                }
                Err(other) => {
                    tracing::warn!(detail = %other.detail(), "leak watch: no profile stored for this capture");
                }
            }
        }
        let admitted = match self.rule.admit().await {
            Ok(admitted) => admitted,
            Err(refused) => {
                permit.release_uncharged();
                self.metrics.watch_held("headroom");
                tracing::warn!(reason = %refused, "leak watch: snapshot held back by the headroom rule; the profile stands in for it");
                record.snapshot_held_back = Some(refused.to_string());
                if record.profile.is_none() {
                    return Err(End::SnapshotFailed(format!(
                        "no profile could be stored and the snapshot was held back: {refused}"
                    )));
                }
                return Ok(record);
            }
        };
        let file = layout::snapshot_name(at);
        let path = store.path(&format!("{folder}/{file}"));
        let writer = match self.begin(store, &path).await {
            Ok(writer) => writer,
            Err(e) => {
                permit.release_uncharged();
                return Err(End::StorageFailed(e));
            }
        };
        let capture = match self.inspector.take().await {
            Ok(capture) => capture,
            Err(e) => {
                permit.release_uncharged();
                abort(writer, &path).await;
                return Err(End::AppRestarted(format!("inspector: {e}")));
            }
        };
        if capture.session.as_deref() != Some(session) {
            abort(writer, &path).await;
            return Err(restarted(session));
        }
        let body = if self.redact_strings {
            redaction::redacted(capture.body)
        } else {
            capture.body
        };
        self.metrics.snapshot_running().set(1);
        let streamed = stream_into(writer, body, &self.metrics).await;
        self.metrics.snapshot_running().set(0);
        drop(permit);
        match streamed {
            Ok(stored_bytes) => {
                self.metrics.watch_upload("ok");
                self.rule.learn(admitted).await;
                record.file = Some(file);
                record.stored_bytes += stored_bytes;
                Ok(record)
            }
            Err(Failure::Source(e)) => {
                self.metrics.watch_upload("aborted");
                tracing::warn!(object = %store.display(&path), error = %e, "leak watch: snapshot failed; upload aborted");
                if self.inspector.session().as_deref() != Some(session) {
                    return Err(restarted(session));
                }
                Err(End::SnapshotFailed(e.to_string()))
            }
            Err(Failure::Storage(e)) => {
                self.metrics.watch_upload("failed");
                tracing::error!(object = %store.display(&path), error = %e, "leak watch: upload failed; aborted");
                Err(End::StorageFailed(e))
            }
        }
    }

    /// Reads the sampling heap profile and stores it: its name and size.
    async fn store_profile(
        &self,
        store: &Store,
        folder: &str,
        session: &str,
        at: DateTime<Utc>,
    ) -> Result<(String, u64), End> {
        let profile = self
            .inspector
            .profile()
            .await
            .map_err(|e| End::SnapshotFailed(format!("sampling heap profile: {e}")))?;
        if profile.session != session {
            return Err(restarted(session));
        }
        let name = layout::profile_name(at);
        let path = store.path(&format!("{folder}/{name}"));
        let bytes = profile.json.len() as u64;
        match store
            .objects()
            .put(&path, PutPayload::from(profile.json))
            .await
        {
            Ok(_) => {
                self.metrics.watch_upload("ok");
                self.metrics.watch_stored_bytes(bytes);
                Ok((name, bytes))
            }
            Err(e) => {
                self.metrics.watch_upload("failed");
                tracing::error!(object = %store.display(&path), error = %e, "leak watch: cannot store the profile");
                Err(End::StorageFailed(format!("{}: {e}", store.display(&path))))
            }
        }
    }

    async fn wait_for_gate(&self) -> Result<SnapshotPermit, End> {
        let since = Instant::now();
        let mut told = false;
        loop {
            match self.gate.try_start(Instant::now()) {
                Ok(permit) => return Ok(permit),
                Err(busy) if since.elapsed() < GATE_WAIT => {
                    if !told {
                        tracing::info!(?busy, "leak watch: waiting for the snapshot gate");
                        told = true;
                    }
                    let wait =
                        Duration::from_secs(busy.retry_after_secs()).min(Duration::from_secs(30));
                    tokio::time::sleep(wait).await;
                }
                Err(_) => return Err(End::GateBusy),
            }
        }
    }

    /// Starts the multipart upload, retrying with backoff (1 s, 2 s, 4 s).
    async fn begin(&self, store: &Store, path: &Path) -> Result<WriteMultipart, String> {
        let mut backoff = Duration::from_secs(1);
        let mut attempt = 1;
        loop {
            match store.objects().put_multipart(path).await {
                Ok(upload) => return Ok(WriteMultipart::new_with_chunk_size(upload, PART_SIZE)),
                Err(e) if attempt < BEGIN_ATTEMPTS => {
                    self.metrics.watch_upload_retry();
                    tracing::warn!(object = %store.display(path), attempt, error = %e, "leak watch: cannot start the upload; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(e) => {
                    self.metrics.watch_upload("failed");
                    tracing::error!(object = %store.display(path), attempts = attempt, error = %e, "leak watch: cannot start the upload; no snapshot taken");
                    return Err(format!("{}: {e}", store.display(path)));
                }
            }
        }
    }

    async fn write_manifest(&self, store: &Store, folder: &str, manifest: &Manifest) {
        let path = store.path(&format!("{folder}/{MANIFEST}"));
        let json = match serde_json::to_vec_pretty(manifest) {
            Ok(json) => json,
            Err(e) => return tracing::error!(error = %e, "leak watch: manifest not serialisable"),
        };
        if let Err(e) = store.objects().put(&path, PutPayload::from(json)).await {
            self.metrics.watch_upload("failed");
            tracing::error!(object = %store.display(&path), error = %e, "leak watch: cannot write the manifest");
        }
    }
}

fn restarted(session: &str) -> End {
    End::AppRestarted(format!(
        "the inspector session {session} is gone: the app restarted (or its inspector closed)"
    ))
}

enum Failure {
    Source(SourceError),
    Storage(String),
}

/// Compresses `body` with zstd into `writer`, part by part; the compressed bytes stored. Any
/// failure aborts the upload, so no complete-looking object is left.
async fn stream_into(
    mut writer: WriteMultipart,
    mut body: ChunkStream,
    metrics: &Metrics,
) -> Result<u64, Failure> {
    let mut encoder = match Encoder::new(Coding::Zstd) {
        Ok(encoder) => encoder,
        Err(e) => {
            let _ = writer.abort().await;
            return Err(Failure::Storage(format!("encoder: {e}")));
        }
    };
    let mut stored = 0u64;
    let result = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(Failure::Source)?;
            let out = encoder
                .push(&chunk)
                .map_err(|e| Failure::Storage(format!("encoder: {e}")))?;
            writer
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(|e| Failure::Storage(e.to_string()))?;
            stored += out.len() as u64;
            writer.write(&out);
        }
        Ok(())
    }
    .await;
    // Dropping the body now lets the source drain the rest without us.
    drop(body);
    match result {
        Ok(()) => {
            let tail = match encoder.finish() {
                Ok(tail) => tail,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(Failure::Storage(format!("encoder: {e}")));
                }
            };
            stored += tail.len() as u64;
            writer.write(&tail);
            writer
                .finish()
                .await
                .map_err(|e| Failure::Storage(e.to_string()))?;
            metrics.watch_stored_bytes(stored);
            Ok(stored)
        }
        Err(failure) => {
            if let Err(e) = writer.abort().await {
                tracing::warn!(error = %e, "leak watch: aborting the upload failed");
            }
            Err(failure)
        }
    }
}

async fn abort(writer: WriteMultipart, path: &Path) {
    if let Err(e) = writer.abort().await {
        tracing::warn!(object = %path, error = %e, "leak watch: aborting the upload failed");
    }
}
