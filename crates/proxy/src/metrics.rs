//! Prometheus metrics, served as text on the admin listener's `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Which part of the proxy answered.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Route {
    /// Forwarded to the app.
    Passthrough,
    /// The snapshot path.
    Snapshot,
    /// The sampling heap profile's path.
    Profile,
    /// A health path answered by the proxy while a snapshot runs.
    Health,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Route::Passthrough => "passthrough",
            Route::Snapshot => "snapshot",
            Route::Profile => "profile",
            Route::Health => "health",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RejectReason {
    Missing,
    Malformed,
    NoMatch,
}

impl RejectReason {
    fn label(self) -> &'static str {
        match self {
            RejectReason::Missing => "missing",
            RejectReason::Malformed => "malformed",
            RejectReason::NoMatch => "no_match",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    reason: &'static str,
}

/// How a snapshot attempt ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// Streamed completely.
    Ok,
    /// The source failed part-way; the transfer was aborted.
    Failed,
    /// The client went away before the end.
    ClientGone,
    /// The source could not be reached; nothing was taken.
    Unreachable,
    /// Refused because one was running or the interval had not passed.
    Busy,
    /// Refused by the headroom rule: it would not fit in the app's memory.
    Headroom,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::ClientGone => "client_gone",
            Outcome::Unreachable => "unreachable",
            Outcome::Busy => "busy",
            Outcome::Headroom => "headroom",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SplitLabels {
    path: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Every metric the proxy exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    /// `requests{route="passthrough",status="200"}`, by far the most common: counted without the
    /// family's lock and hash lookup on the hot path.
    passthrough_ok: Counter,
    rejections: Family<RejectLabels, Counter>,
    snapshots: Family<OutcomeLabels, Counter>,
    profiles: Family<OutcomeLabels, Counter>,
    profile_bytes: Counter,
    snapshot_bytes: Counter,
    snapshot_seconds: Histogram,
    in_flight: Gauge,
    snapshot_running: Gauge,
    gateway_attempts: Histogram,
    app_heap_used: Gauge,
    app_heap_total: Gauge,
    app_rss: Gauge,
    watch_samples: Family<OutcomeLabels, Counter>,
    watch_held: Family<ReasonLabels, Counter>,
    watch_series: Family<ReasonLabels, Counter>,
    watch_uploads: Family<OutcomeLabels, Counter>,
    watch_upload_retries: Counter,
    watch_stored_bytes: Counter,
    upstream_oversent: Counter,
    split: Family<SplitLabels, Counter>,
    /// `split{path="lane",reason="plain"}`, counted once per lane request: without the family's
    /// lock and hash lookup.
    split_lane: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("heapgate");
        let requests = Family::<RequestLabels, Counter>::default();
        let rejections = Family::<RejectLabels, Counter>::default();
        let snapshots = Family::<OutcomeLabels, Counter>::default();
        let snapshot_bytes = Counter::default();
        let profiles = Family::<OutcomeLabels, Counter>::default();
        let profile_bytes = Counter::default();
        // 0.5 s … ~17 min: snapshots of small heaps take about a second, 1 GiB heaps minutes.
        let snapshot_seconds =
            Histogram::new([0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 1000.0]);
        let gateway_attempts = Histogram::new([1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0]);
        let in_flight = Gauge::default();
        let snapshot_running = Gauge::default();
        registry.register(
            "requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "token_rejections",
            "Snapshot requests refused for their token, by reason",
            rejections.clone(),
        );
        registry.register(
            "snapshots",
            "Snapshot attempts after a valid token, by outcome",
            snapshots.clone(),
        );
        registry.register(
            "profiles",
            "Sampling heap profile requests after a valid token, by outcome",
            profiles.clone(),
        );
        registry.register(
            "profile_bytes",
            "Sampling heap profile bytes sent to clients (before compression)",
            profile_bytes.clone(),
        );
        registry.register(
            "snapshot_bytes",
            "Snapshot bytes sent to clients",
            snapshot_bytes.clone(),
        );
        registry.register(
            "snapshot_duration_seconds",
            "Time from snapshot start to the end of its stream",
            snapshot_seconds.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Requests being served, streams included",
            in_flight.clone(),
        );
        registry.register(
            "snapshot_in_progress",
            "1 while a snapshot is being taken",
            snapshot_running.clone(),
        );
        registry.register(
            "gateway_attempts",
            "Gateway: attempts (new connections) per routed request",
            gateway_attempts.clone(),
        );
        let app_heap_used = Gauge::default();
        let app_heap_total = Gauge::default();
        let app_rss = Gauge::default();
        let watch_samples = Family::<OutcomeLabels, Counter>::default();
        let watch_held = Family::<ReasonLabels, Counter>::default();
        let watch_series = Family::<ReasonLabels, Counter>::default();
        let watch_uploads = Family::<OutcomeLabels, Counter>::default();
        let watch_upload_retries = Counter::default();
        let watch_stored_bytes = Counter::default();
        let upstream_oversent = Counter::default();
        registry.register(
            "upstream_oversent",
            "Upstream connections retired because the app sent bytes outside an answer (more than \
             its Content-Length, say)",
            upstream_oversent.clone(),
        );
        registry.register(
            "app_heap_used_bytes",
            "The app's V8 heap in use (Runtime.getHeapUsage usedSize), at the last sample",
            app_heap_used.clone(),
        );
        registry.register(
            "app_heap_total_bytes",
            "The app's V8 heap reserved (Runtime.getHeapUsage totalSize), at the last sample",
            app_heap_total.clone(),
        );
        registry.register(
            "app_rss_bytes",
            "The app's resident set size (process.memoryUsage.rss()), at the last sample",
            app_rss.clone(),
        );
        registry.register(
            "watch_samples",
            "Heap samples over the inspector, by outcome (skipped: a snapshot was running)",
            watch_samples.clone(),
        );
        registry.register(
            "watch_held",
            "Leak-watch series held back by a guard, per sample, by reason",
            watch_held.clone(),
        );
        registry.register(
            "watch_series",
            "Leak-watch series, by how they ended",
            watch_series.clone(),
        );
        registry.register(
            "watch_uploads",
            "Leak-watch uploads (snapshots and manifests), by outcome",
            watch_uploads.clone(),
        );
        registry.register(
            "watch_upload_retries",
            "Leak-watch attempts to start an upload that failed and were retried",
            watch_upload_retries.clone(),
        );
        registry.register(
            "watch_stored_bytes",
            "Compressed snapshot bytes stored by the leak watch",
            watch_stored_bytes.clone(),
        );
        let split = Family::<SplitLabels, Counter>::default();
        registry.register(
            "passthrough_split",
            "Forwarded requests by path: each request the lane took (reason plain), each \
             connection the lane handed to the general path (by reason), and each later request \
             the general path served on such a connection (reason later)",
            split.clone(),
        );
        let split_lane = split
            .get_or_create(&SplitLabels {
                path: "lane",
                reason: "plain",
            })
            .clone();
        let passthrough_ok = requests
            .get_or_create(&RequestLabels {
                route: Route::Passthrough.label(),
                status: 200,
            })
            .clone();
        Metrics {
            registry,
            requests,
            passthrough_ok,
            rejections,
            snapshots,
            profiles,
            profile_bytes,
            snapshot_bytes,
            snapshot_seconds,
            in_flight,
            snapshot_running,
            gateway_attempts,
            app_heap_used,
            app_heap_total,
            app_rss,
            watch_samples,
            watch_held,
            watch_series,
            watch_uploads,
            watch_upload_retries,
            watch_stored_bytes,
            upstream_oversent,
            split,
            split_lane,
        }
    }

    /// Counts one decision of the lane's split (see `passthrough::lane::Split`), by its labels.
    pub(crate) fn split(&self, path: &'static str, reason: &'static str) {
        if path == "lane" {
            self.split_lane.inc();
            return;
        }
        self.split
            .get_or_create(&SplitLabels { path, reason })
            .inc();
    }

    /// `heapgate_upstream_oversent_total`, for the connection pools to count in.
    pub(crate) fn upstream_oversent(&self) -> Counter {
        self.upstream_oversent.clone()
    }

    /// The app's memory at the last sample.
    pub(crate) fn app_memory(&self, usage: crate::source::inspector::HeapUsage) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.app_heap_used.set(gauge(usage.used));
        self.app_heap_total.set(gauge(usage.total));
        if let Some(rss) = usage.rss {
            self.app_rss.set(gauge(rss));
        }
    }

    pub(crate) fn watch_sample(&self, outcome: &'static str) {
        self.watch_samples
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub(crate) fn watch_held(&self, reason: &'static str) {
        self.watch_held
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub(crate) fn watch_series(&self, reason: &'static str) {
        self.watch_series
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub(crate) fn watch_upload(&self, outcome: &'static str) {
        self.watch_uploads
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub(crate) fn watch_upload_retry(&self) {
        self.watch_upload_retries.inc();
    }

    pub(crate) fn watch_stored_bytes(&self, bytes: u64) {
        self.watch_stored_bytes.inc_by(bytes);
    }

    pub fn request(&self, route: Route, status: http::StatusCode) {
        if route == Route::Passthrough && status == http::StatusCode::OK {
            self.passthrough_ok.inc();
            return;
        }
        self.requests
            .get_or_create(&RequestLabels {
                route: route.label(),
                status: status.as_u16(),
            })
            .inc();
    }

    pub fn rejection(&self, reason: RejectReason) {
        self.rejections
            .get_or_create(&RejectLabels {
                reason: reason.label(),
            })
            .inc();
    }

    pub fn snapshot(&self, outcome: Outcome) {
        self.snapshots
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
    }

    pub fn profile(&self, outcome: Outcome, bytes: u64) {
        self.profiles
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
        self.profile_bytes.inc_by(bytes);
    }

    pub fn snapshot_finished(&self, seconds: f64) {
        self.snapshot_seconds.observe(seconds);
    }

    pub fn snapshot_bytes(&self, bytes: u64) {
        self.snapshot_bytes.inc_by(bytes);
    }

    pub fn gateway_attempts(&self, attempts: u32) {
        self.gateway_attempts.observe(f64::from(attempts));
    }

    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    pub fn snapshot_running(&self) -> &Gauge {
        &self.snapshot_running
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// A request counted in `heapgate_in_flight_requests` for as long as this lives: from when it is
/// read until its answer has been sent or dropped (whichever path serves it).
pub(crate) struct InFlight(Arc<Metrics>);

impl InFlight {
    pub(crate) fn start(metrics: &Arc<Metrics>) -> InFlight {
        metrics.in_flight.inc();
        InFlight(Arc::clone(metrics))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}
