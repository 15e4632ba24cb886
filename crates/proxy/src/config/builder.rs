//! [`ConfigBuilder`]: the proxy's settings before validation, each starting at the command line's
//! default ([`defaults`]). The command line fills it through [`Args`](super::Args); a program
//! that embeds the proxy sets what it needs in code (keys stay in memory: no argv, no secret
//! file). Either way [`ConfigBuilder::build`] checks it.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::ValueEnum;
use heapgate_protocol::TaskId;
use heapgate_token::Keys;

use super::args::{CompressionArg, RedactArg, SourceKind, defaults};
use super::{LogFormat, TaskIdSource};

/// Builds a [`Config`] in code; [`ConfigBuilder::build`] validates exactly as the command line
/// is validated.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    pub(super) listen: SocketAddr,
    pub(super) admin_listen: SocketAddr,
    pub(super) upstream: Vec<String>,
    pub(super) path: String,
    pub(super) profile_path: String,
    pub(super) profile_interval: u64,
    pub(super) profile_check: Duration,
    pub(super) profile_min_interval: Duration,
    pub(super) upstream_profile_path: String,
    pub(super) unsafe_snapshot_without_headroom: bool,
    pub(super) keys: Keys,
    pub(super) value: String,
    pub(super) grace: Duration,
    pub(super) skew: Duration,
    pub(super) task_id: TaskIdSource,
    pub(super) source: SourceKind,
    pub(super) inspector: String,
    pub(super) allow_remote_inspector: bool,
    pub(super) upstream_path: String,
    pub(super) pin_ttl: Duration,
    pub(super) max_attempts: u32,
    pub(super) min_interval: Duration,
    pub(super) keepalive: Duration,
    pub(super) health_paths: Vec<String>,
    pub(super) allow_upgrade: Vec<String>,
    pub(super) shutdown_timeout: Duration,
    pub(super) threads: Option<usize>,
    pub(super) lane: bool,
    pub(super) request_timeout: Duration,
    pub(super) header_timeout: Duration,
    pub(super) send_timeout: Duration,
    pub(super) max_header_bytes: usize,
    pub(super) max_connections: usize,
    pub(super) compression: Vec<CompressionArg>,
    pub(super) redact: RedactArg,
    pub(super) log_format: LogFormat,
    pub(super) watch_every: Duration,
    pub(super) watch_growth: Option<u64>,
    pub(super) watch_window: Duration,
    pub(super) watch_count: u32,
    pub(super) watch_interval: Duration,
    pub(super) watch_cooldown: Duration,
    pub(super) app_memory_limit: Option<u64>,
    pub(super) store: Option<String>,
    pub(super) warnings: Vec<String>,
}

impl ConfigBuilder {
    /// Settings for a proxy in front of `upstream` that checks tokens with `keys`, every other
    /// one at its default.
    pub(super) fn new(upstream: &str, keys: Keys) -> ConfigBuilder {
        ConfigBuilder {
            listen: default(defaults::LISTEN),
            admin_listen: default(defaults::ADMIN_LISTEN),
            upstream: vec![upstream.to_owned()],
            path: defaults::PATH.to_owned(),
            profile_path: defaults::PROFILE_PATH.to_owned(),
            profile_interval: default::<bytesize::ByteSize>(defaults::PROFILE_INTERVAL).as_u64(),
            profile_check: duration(defaults::PROFILE_CHECK),
            profile_min_interval: duration(defaults::PROFILE_MIN_INTERVAL),
            upstream_profile_path: defaults::UPSTREAM_PROFILE_PATH.to_owned(),
            unsafe_snapshot_without_headroom: false,
            keys,
            value: defaults::VALUE.to_owned(),
            grace: duration(defaults::GRACE),
            skew: duration(defaults::SKEW),
            task_id: TaskIdSource::Discover,
            source: defaults::SOURCE,
            inspector: defaults::INSPECTOR.to_owned(),
            allow_remote_inspector: false,
            upstream_path: defaults::UPSTREAM_PATH.to_owned(),
            pin_ttl: duration(defaults::PIN_TTL),
            max_attempts: defaults::MAX_ATTEMPTS,
            min_interval: duration(defaults::MIN_INTERVAL),
            keepalive: duration(defaults::KEEPALIVE),
            health_paths: Vec::new(),
            allow_upgrade: Vec::new(),
            shutdown_timeout: duration(defaults::SHUTDOWN_TIMEOUT),
            threads: None,
            lane: true,
            request_timeout: duration(defaults::REQUEST_TIMEOUT),
            header_timeout: duration(defaults::HEADER_TIMEOUT),
            send_timeout: duration(defaults::SEND_TIMEOUT),
            max_header_bytes: defaults::MAX_HEADER_BYTES,
            max_connections: defaults::MAX_CONNECTIONS,
            compression: defaults::COMPRESSION
                .split(',')
                .map(default_enum::<CompressionArg>)
                .collect(),
            redact: defaults::REDACT,
            log_format: defaults::LOG_FORMAT,
            watch_every: duration(defaults::WATCH_EVERY),
            watch_growth: None,
            watch_window: duration(defaults::WATCH_WINDOW),
            watch_count: defaults::WATCH_COUNT,
            watch_interval: duration(defaults::WATCH_INTERVAL),
            watch_cooldown: duration(defaults::WATCH_COOLDOWN),
            app_memory_limit: None,
            store: None,
            warnings: Vec::new(),
        }
    }

    /// `--watch-every` (zero: no polling).
    pub fn watch_every(mut self, every: Duration) -> Self {
        self.watch_every = every;
        self
    }

    /// `--watch-growth`, `--watch-window` and `--store`.
    pub fn watch_growth(mut self, growth: u64, window: Duration, store: &str) -> Self {
        self.watch_growth = Some(growth);
        self.watch_window = window;
        self.store = Some(store.to_owned());
        self
    }

    /// `--watch-count`, `--watch-interval`, `--watch-cooldown`.
    pub fn watch_series(mut self, count: u32, interval: Duration, cooldown: Duration) -> Self {
        self.watch_count = count;
        self.watch_interval = interval;
        self.watch_cooldown = cooldown;
        self
    }

    /// `--app-memory-limit`.
    pub fn app_memory_limit(mut self, bytes: u64) -> Self {
        self.app_memory_limit = Some(bytes);
        self
    }

    /// `--profile-path`.
    pub fn profile_path(mut self, path: &str) -> Self {
        path.clone_into(&mut self.profile_path);
        self
    }

    /// `--profile-interval` in bytes (0: sampling off) and `--profile-check`.
    pub fn profile_interval(mut self, bytes: u64, check: Duration) -> Self {
        self.profile_interval = bytes;
        self.profile_check = check;
        self
    }

    /// `--profile-min-interval`.
    pub fn profile_min_interval(mut self, interval: Duration) -> Self {
        self.profile_min_interval = interval;
        self
    }

    /// `--unsafe-snapshot-without-headroom`. Dangerous: see the flag.
    pub fn unsafe_snapshot_without_headroom(mut self, on: bool) -> Self {
        self.unsafe_snapshot_without_headroom = on;
        self
    }

    /// `--listen` and `--admin-listen` (port 0 picks a free port; see [`crate::Proxy`]).
    pub fn listen(mut self, public: SocketAddr, admin: SocketAddr) -> Self {
        self.listen = public;
        self.admin_listen = admin;
        self
    }

    /// `--task-id`.
    pub fn task_id(mut self, task: TaskId) -> Self {
        self.task_id = TaskIdSource::Given(task);
        self
    }

    /// `--inspector` (the snapshot source stays the inspector).
    pub fn inspector(mut self, url: &str) -> Self {
        self.source = SourceKind::Inspector;
        url.clone_into(&mut self.inspector);
        self
    }

    /// `--path`.
    pub fn path(mut self, path: &str) -> Self {
        path.clone_into(&mut self.path);
        self
    }

    /// `--value`.
    pub fn value(mut self, value: &str) -> Self {
        value.clone_into(&mut self.value);
        self
    }

    /// `--min-interval`.
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.min_interval = interval;
        self
    }

    /// `--keepalive`: the heartbeat, whitespace sent this often while a snapshot is being built.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.keepalive = every;
        self
    }

    /// The name [`ConfigBuilder::heartbeat`] had until 0.1.
    #[deprecated(note = "renamed heartbeat (keep-alive is HTTP's word for reused connections)")]
    pub fn keepalive(self, every: Duration) -> Self {
        self.heartbeat(every)
    }

    /// `--health-path`, repeatable.
    pub fn health_path(mut self, path: &str) -> Self {
        self.health_paths.push(path.to_owned());
        self
    }

    /// `--redact strings` when `true`.
    pub fn redact_strings(mut self, redact: bool) -> Self {
        self.redact = if redact {
            RedactArg::Strings
        } else {
            RedactArg::Off
        };
        self
    }

    /// `--shutdown-timeout`.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// `--threads` (default: the CPUs this process may use).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// `--lane off`: every request takes the general path.
    pub fn lane(mut self, on: bool) -> Self {
        self.lane = on;
        self
    }

    /// `--allow-upgrade`: a protocol besides WebSocket that pass-through may switch to.
    pub fn allow_upgrade(mut self, protocol: &str) -> Self {
        self.allow_upgrade.push(protocol.to_owned());
        self
    }

    /// `--max-connections` (default 4096).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }
}

/// A default's text parsed as the command line parses it (the `defaults` test proves each does).
fn default<T: FromStr>(text: &str) -> T
where
    T::Err: fmt::Display,
{
    text.parse()
        .unwrap_or_else(|e| panic!("the default {text:?} does not parse: {e}"))
}

fn duration(text: &str) -> Duration {
    *default::<humantime::Duration>(text)
}

fn default_enum<T: ValueEnum>(text: &str) -> T {
    T::from_str(text, false).unwrap_or_else(|e| panic!("the default {text:?} does not parse: {e}"))
}
