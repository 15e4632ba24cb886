//! Command line and environment → a validated [`Config`].
//!
//! Two steps, as in ripgrep: [`Args`] is what clap parses (every flag also reads a `HEAPGATE_*`
//! variable, for containers), [`Config::from_args`] checks it all before anything binds or
//! connects, so a misconfigured sidecar fails at start with one line instead of at the first
//! snapshot during an incident.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use heapgate_keys::{SecretArgs, redact_userinfo};
use heapgate_token::{Keys, Window};

use heapgate_protocol::{DEFAULT_ATTEMPTS, TaskId};

use crate::body::encoding::Coding;
use crate::guard::GuardedPaths;
use crate::handlers::gateway::{GatewayConfig, Targets};
use crate::passthrough::upstream::UpstreamUrl;

/// Sidecar in front of a Node.js service: passes all traffic through to --upstream and serves
/// token-guarded heap snapshots on --path, taken from the Node inspector on loopback.
///
/// Start the app with `node --inspect=127.0.0.1:9229 app.js`, then
/// `heapgate-proxy --upstream http://127.0.0.1:3000 --secret-file /run/secrets/heapgate`.
#[derive(Debug, Parser)]
#[command(name = "heapgate-proxy", version = env!("HEAPGATE_VERSION"), max_term_width = 100)]
#[command(after_help = "\
Every flag can also be set through the environment variable shown; HEAPGATE_SECRET holds the secret
itself when no --secret-file is given.
Snapshot path answers: 200 snapshot, 204 probe, 400 missing/malformed hash, 403 invalid token,
405 not GET, 421 another task's request, 429 busy (Retry-After), 502 source unreachable,
507 the snapshot would not fit in the app's memory (use the profile path).
The profile path (--profile-path) answers the same way, with a profile token
(`heapgate mint --for profile`).")]
pub struct Args {
    /// Address to serve traffic on.
    #[arg(long, env = "HEAPGATE_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,

    /// The app, e.g. http://127.0.0.1:3000. Everything but the snapshot path goes there. With
    /// --source gateway: a balancer URL, or several ID=URL entries (repeat the flag, or
    /// comma-separate in the env var) to reach tasks directly.
    #[arg(
        long,
        env = "HEAPGATE_UPSTREAM",
        value_name = "URL",
        required = true,
        value_delimiter = ','
    )]
    upstream: Vec<String>,

    /// The snapshot path.
    #[arg(long, env = "HEAPGATE_PATH", default_value = "/heapdump")]
    path: String,

    /// The sampling heap profile's path (DevTools .heapprofile JSON, or pprof with
    /// `format=pprof`); its tokens sign VALUE:heapprofile (`heapgate mint --for profile`).
    #[arg(long, env = "HEAPGATE_PROFILE_PATH", default_value = "/heapprofile")]
    profile_path: String,

    /// Run V8's sampling heap profiler from the start, one sample per this many bytes allocated
    /// on average (0: off, and the profile path answers 502).
    #[arg(
        long,
        env = "HEAPGATE_PROFILE_INTERVAL",
        value_name = "SIZE",
        default_value = "512KiB"
    )]
    profile_interval: bytesize::ByteSize,

    /// How often the sampling profiler's bookkeeping is checked (it is restarted only when it
    /// outgrew the live objects it describes). Each check reads the profile, which costs the app
    /// one full garbage collection.
    #[arg(
        long,
        env = "HEAPGATE_PROFILE_CHECK",
        value_name = "DURATION",
        default_value = "1h"
    )]
    profile_check: humantime::Duration,

    /// Refuse a new profile (429) until this long after the last one.
    #[arg(
        long,
        env = "HEAPGATE_PROFILE_MIN_INTERVAL",
        value_name = "DURATION",
        default_value = "1s"
    )]
    profile_min_interval: humantime::Duration,

    /// DANGEROUS: take snapshots even when the headroom rule expects them not to fit in the app's
    /// memory limit. The kernel may then kill the app mid-snapshot (OOM).
    #[arg(long, env = "HEAPGATE_UNSAFE_SNAPSHOT_WITHOUT_HEADROOM")]
    unsafe_snapshot_without_headroom: bool,

    #[command(flatten)]
    secrets: SecretArgs,

    /// The value signed with the hour; must equal the minter's.
    #[arg(long, env = "HEAPGATE_VALUE", default_value = "heapdump")]
    value: String,

    /// Accept the previous hour's token this long into the new hour.
    #[arg(
        long,
        env = "HEAPGATE_GRACE",
        value_name = "DURATION",
        default_value = "5m"
    )]
    grace: humantime::Duration,

    /// Accept the next hour's token this long before it starts.
    #[arg(
        long,
        env = "HEAPGATE_SKEW",
        value_name = "DURATION",
        default_value = "1m"
    )]
    skew: humantime::Duration,

    /// This instance's id (names snapshots, compared with `task=`). Default: the ECS task id
    /// from ECS_CONTAINER_METADATA_URI_V4, else the hostname.
    #[arg(long, env = "HEAPGATE_TASK_ID", value_name = "ID")]
    task_id: Option<String>,

    /// Where snapshots come from: the Node inspector, the app's own snapshot endpoint, or (as a
    /// gateway) heapgate sidecars behind --upstream.
    #[arg(long, env = "HEAPGATE_SOURCE", value_enum, default_value_t = SourceKind::Inspector)]
    source: SourceKind,

    /// The Node inspector's HTTP address (`node --inspect=127.0.0.1:9229`).
    #[arg(
        long,
        env = "HEAPGATE_INSPECTOR",
        value_name = "URL",
        default_value = "http://127.0.0.1:9229"
    )]
    inspector: String,

    /// Allow an inspector that is not on loopback. Dangerous: anyone who reaches an inspector
    /// port can run code in the app.
    #[arg(long, env = "HEAPGATE_ALLOW_REMOTE_INSPECTOR")]
    allow_remote_inspector: bool,

    /// With --source upstream: the app's own snapshot path the verified request is forwarded to.
    /// With --source gateway: the sidecars' snapshot path.
    #[arg(long, env = "HEAPGATE_UPSTREAM_PATH", default_value = "/heapdump")]
    upstream_path: String,

    /// With --source gateway: the sidecars' profile path.
    #[arg(
        long,
        env = "HEAPGATE_UPSTREAM_PROFILE_PATH",
        default_value = "/heapprofile"
    )]
    upstream_profile_path: String,

    /// Gateway: how long the pinned task (the first that answered a request without `task=`)
    /// stays chosen after its last use. `repin=1` in a request chooses anew.
    #[arg(
        long,
        env = "HEAPGATE_PIN_TTL",
        value_name = "DURATION",
        default_value = "1h"
    )]
    pin_ttl: humantime::Duration,

    /// Gateway: attempts (each on a new connection) to reach the chosen task per request.
    #[arg(
        long,
        env = "HEAPGATE_MAX_ATTEMPTS",
        value_name = "N",
        default_value_t = DEFAULT_ATTEMPTS
    )]
    max_attempts: u32,

    /// Refuse a new snapshot (429) until this long after the last one finished.
    #[arg(
        long,
        env = "HEAPGATE_MIN_INTERVAL",
        value_name = "DURATION",
        default_value = "30s"
    )]
    min_interval: humantime::Duration,

    /// While a snapshot is being built and no bytes flow, send a whitespace byte this often so
    /// load balancers' idle timeouts (ALB: 60 s) do not cut the response.
    #[arg(
        long,
        env = "HEAPGATE_KEEPALIVE",
        value_name = "DURATION",
        default_value = "15s"
    )]
    keepalive: humantime::Duration,

    /// A health-check path the proxy answers itself with 200 while a snapshot runs (the app's
    /// event loop is blocked then). Repeatable; the env var takes a comma-separated list.
    #[arg(
        long,
        env = "HEAPGATE_HEALTH_PATH",
        value_name = "PATH",
        value_delimiter = ','
    )]
    health_path: Vec<String>,

    /// A protocol the app may switch a pass-through connection to, besides WebSocket (always
    /// allowed), e.g. h2c. Other `Upgrade` requests are passed on as ordinary requests.
    /// Repeatable; the env var takes a comma-separated list.
    #[arg(
        long,
        env = "HEAPGATE_ALLOW_UPGRADE",
        value_name = "PROTOCOL",
        value_delimiter = ','
    )]
    allow_upgrade: Vec<String>,

    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "HEAPGATE_ADMIN_LISTEN", default_value = "127.0.0.1:9091")]
    admin_listen: SocketAddr,

    /// On SIGTERM/SIGINT, wait this long for in-flight requests and a running snapshot.
    #[arg(
        long,
        env = "HEAPGATE_SHUTDOWN_TIMEOUT",
        value_name = "DURATION",
        default_value = "25s"
    )]
    shutdown_timeout: humantime::Duration,

    /// Worker threads for the public listener, each with its own event loop (at most 1024).
    /// Default: the CPUs this process may use (affinity mask and cgroup CPU quota).
    #[arg(long, env = "HEAPGATE_THREADS", value_name = "N")]
    threads: Option<usize>,

    /// The plain-request lane: ordinary HTTP/1.1 requests passed by hand (fast). Off, every
    /// request takes the general path (hyper), with the same rules and answers: a kill switch if
    /// the lane is ever suspected.
    #[arg(
        long,
        env = "HEAPGATE_LANE",
        value_name = "on|off",
        default_value = "on"
    )]
    lane: LaneArg,

    /// For normal traffic: longest wait for the app's response head (504 after). Snapshot
    /// streams are never cut.
    #[arg(
        long,
        env = "HEAPGATE_REQUEST_TIMEOUT",
        value_name = "DURATION",
        default_value = "60s"
    )]
    request_timeout: humantime::Duration,

    /// Longest wait for a client's request head (slow clients are disconnected).
    #[arg(
        long,
        env = "HEAPGATE_HEADER_TIMEOUT",
        value_name = "DURATION",
        default_value = "30s"
    )]
    header_timeout: humantime::Duration,

    /// Cut a connection whose client has taken no bytes for this long while a response waits to
    /// be written (as nginx's send_timeout). A stalled snapshot download then frees the
    /// one-at-a-time gate; a slow reader that keeps reading is never cut.
    #[arg(
        long,
        env = "HEAPGATE_SEND_TIMEOUT",
        value_name = "DURATION",
        default_value = "60s"
    )]
    send_timeout: humantime::Duration,

    /// Most client connections open at once on the public listener (at least 1). Past it, new
    /// connections wait in the kernel's accept queue until one closes; idle ones close after
    /// --header-timeout.
    #[arg(
        long,
        env = "HEAPGATE_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = DEFAULT_MAX_CONNECTIONS
    )]
    max_connections: usize,

    /// Largest request head (request line and headers) accepted, in bytes (at least 8192).
    #[arg(
        long,
        env = "HEAPGATE_MAX_HEADER_BYTES",
        value_name = "BYTES",
        default_value_t = 65536
    )]
    max_header_bytes: usize,

    /// Content codings offered for snapshot responses, in order of preference (a comma list of
    /// zstd and gzip, or off). Clients choose with Accept-Encoding; without it they get plain JSON.
    #[arg(
        long,
        env = "HEAPGATE_COMPRESSION",
        value_name = "CODINGS",
        value_delimiter = ',',
        default_value = "zstd,gzip"
    )]
    compression: Vec<CompressionArg>,

    /// Redact snapshots: `strings` replaces the string values the app holds by a placeholder,
    /// keeping class, property and edge names, counts, sizes and ids (answers then carry
    /// X-Heapgate-Redacted: strings). Set it on the sidecars, not on a gateway.
    #[arg(long, env = "HEAPGATE_REDACT", value_enum, value_name = "WHAT", default_value_t = RedactArg::Off)]
    redact: RedactArg,

    /// Log format on stderr. Filter with RUST_LOG (default info).
    #[arg(long, env = "HEAPGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Leak watch: read the app's heap usage and RSS over the inspector this often, for
    /// /metrics and the trigger (0s: never).
    #[arg(
        long,
        env = "HEAPGATE_WATCH_EVERY",
        value_name = "DURATION",
        default_value = "15s",
        help_heading = "Leak watch"
    )]
    watch_every: humantime::Duration,

    /// Leak watch: take a series when the heap's floor grew by this much (e.g. 64MiB) within
    /// --watch-window. Off by default; needs --store.
    #[arg(
        long,
        env = "HEAPGATE_WATCH_GROWTH",
        value_name = "SIZE",
        help_heading = "Leak watch"
    )]
    watch_growth: Option<bytesize::ByteSize>,

    /// Leak watch: the window the growth is measured over.
    #[arg(
        long,
        env = "HEAPGATE_WATCH_WINDOW",
        value_name = "DURATION",
        default_value = "30m",
        help_heading = "Leak watch"
    )]
    watch_window: humantime::Duration,

    /// Leak watch: snapshots per series.
    #[arg(
        long,
        env = "HEAPGATE_WATCH_COUNT",
        value_name = "N",
        default_value_t = 3,
        help_heading = "Leak watch"
    )]
    watch_count: u32,

    /// Leak watch: time between the snapshots of a series.
    #[arg(
        long,
        env = "HEAPGATE_WATCH_INTERVAL",
        value_name = "DURATION",
        default_value = "10m",
        help_heading = "Leak watch"
    )]
    watch_interval: humantime::Duration,

    /// Leak watch: no new series until this long after the last one ended.
    #[arg(
        long,
        env = "HEAPGATE_WATCH_COOLDOWN",
        value_name = "DURATION",
        default_value = "6h",
        help_heading = "Leak watch"
    )]
    watch_cooldown: humantime::Duration,

    /// The app's memory limit (e.g. 2GiB): a snapshot expected to peak above it is refused (507).
    /// Default: the ECS task's memory (task metadata), else the memory cgroup of the app's process
    /// when this sidecar can see it.
    #[arg(long, env = "HEAPGATE_APP_MEMORY_LIMIT", value_name = "SIZE")]
    app_memory_limit: Option<bytesize::ByteSize>,

    /// Leak watch: where series are stored, a directory or s3://bucket/prefix (credentials
    /// from the standard AWS chain, e.g. the ECS task role; AWS_ENDPOINT_URL for another
    /// S3-compatible server).
    #[arg(
        long,
        env = "HEAPGATE_STORE",
        value_name = "DIR|URL",
        help_heading = "Leak watch"
    )]
    store: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SourceKind {
    /// A long-lived Chrome DevTools Protocol session to `node --inspect` on loopback.
    Inspector,
    /// The app's own snapshot endpoint (--upstream-path), request forwarded after verification.
    Upstream,
    /// In front of heapgate sidecars (a balancer or ID=URL instances): routes each verified
    /// request to the chosen task, retrying on new connections.
    Gateway,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LaneArg {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RedactArg {
    Off,
    Strings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CompressionArg {
    Zstd,
    Gzip,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where snapshots come from, validated.
/// Where snapshots come from, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceConfig {
    Inspector { addr: SocketAddr },
    Upstream { path: String },
    Gateway(GatewayConfig),
}

/// The profile path's settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProfileConfig {
    pub(crate) path: String,
    /// The sampling interval; `None`: sampling off.
    pub(crate) sampling: Option<crate::source::inspector::SamplingConfig>,
    pub(crate) min_interval: Duration,
    /// Gateway: the sidecars' profile path.
    pub(crate) upstream_path: String,
}

/// The headroom rule's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadroomConfig {
    /// `--app-memory-limit`; `None`: found at launch (ECS, the app's cgroup).
    pub(crate) app_memory_limit: Option<u64>,
    /// `--unsafe-snapshot-without-headroom`.
    pub(crate) unsafe_override: bool,
}

/// The snapshot path's settings, validated.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotConfig {
    pub(crate) path: String,
    pub(crate) keys: Keys,
    pub(crate) value: String,
    pub(crate) window: Window,
    pub(crate) min_interval: Duration,
    pub(crate) keepalive: Duration,
    pub(crate) health_paths: Vec<String>,
    pub(crate) compression: Vec<Coding>,
    pub(crate) redact_strings: bool,
    pub(crate) guarded_paths: GuardedPaths,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_connections: usize,
    pub(crate) max_header_bytes: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) request_timeout: Duration,
}

/// The leak watch's settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WatchConfig {
    /// Polling period; `None`: no polling.
    pub(crate) every: Option<Duration>,
    /// The trigger and where its series go; `None`: metrics only.
    pub(crate) leak: Option<LeakConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeakConfig {
    pub(crate) growth: u64,
    pub(crate) window: Duration,
    pub(crate) count: u32,
    pub(crate) interval: Duration,
    pub(crate) cooldown: Duration,
    pub(crate) store: crate::watch::store::StoreLocation,
}

/// Where this instance's task id comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskIdSource {
    /// `--task-id`.
    Given(TaskId),
    /// The ECS task metadata, else the hostname, found at launch.
    Discover,
}

/// A fully validated configuration: nothing is fixed up at launch. Built from the command line
/// ([`Config::from_args`]) or, by a program that embeds the proxy, with [`Config::builder`].
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) listen: SocketAddr,
    pub(crate) admin_listen: SocketAddr,
    pub(crate) upstream: UpstreamUrl,
    /// Protocols pass-through may switch to (`websocket`, and `--allow-upgrade`), lowercase.
    pub(crate) upgrades: Vec<String>,
    pub(crate) snapshot: SnapshotConfig,
    pub(crate) profile: ProfileConfig,
    pub(crate) headroom: HeadroomConfig,
    pub(crate) task_id: TaskIdSource,
    pub(crate) source: SourceConfig,
    pub(crate) shutdown_timeout: Duration,
    /// Worker threads for the public listener (1..=1024).
    pub(crate) threads: usize,
    /// `--lane`: whether plain requests take the lane.
    pub(crate) lane: bool,
    pub(crate) limits: Limits,
    pub(crate) log_format: LogFormat,
    pub(crate) watch: WatchConfig,
    /// Non-fatal remarks (e.g. a short secret) to log at start.
    pub(crate) warnings: Vec<String>,
}

fn codings(args: &[CompressionArg]) -> Result<Vec<Coding>, ConfigError> {
    let mut out = Vec::new();
    for arg in args {
        let coding = match arg {
            CompressionArg::Off if args.len() == 1 => return Ok(Vec::new()),
            CompressionArg::Off => return Err(error("--compression: off cannot be combined")),
            CompressionArg::Zstd => Coding::Zstd,
            CompressionArg::Gzip => Coding::Gzip,
        };
        if out.contains(&coding) {
            return Err(error("--compression: a coding is listed twice"));
        }
        out.push(coding);
    }
    Ok(out)
}

/// `--max-connections` by default: an idle connection costs the proxy about a kilobyte and its
/// socket, so this bounds what idle clients can take (a few MiB) far above what a balancer in
/// front of one task opens.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// A `tchar` of RFC 9110 §5.6.2 (a protocol name in `Upgrade` is a token).
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Upper bound of `--threads`: far above any CPU count a sidecar gets, low enough to catch typos.
const MAX_THREADS: usize = 1024;

/// A configuration problem, as one line naming the flag (exit status 2).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(String);

fn error(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

impl Config {
    /// Validates the command line; `env` reads the environment (for the secret).
    pub fn from_args(
        args: Args,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Config, ConfigError> {
        let loaded = heapgate_keys::load(&args.secrets, env).map_err(|e| error(e.to_string()))?;
        let task_id = match args.task_id.as_deref() {
            Some(id) => TaskIdSource::Given(TaskId::new(id).map_err(|e| error(e.to_string()))?),
            None => TaskIdSource::Discover,
        };
        let builder = ConfigBuilder {
            listen: args.listen,
            admin_listen: args.admin_listen,
            upstream: args.upstream,
            path: args.path,
            profile_path: args.profile_path,
            profile_interval: args.profile_interval.as_u64(),
            profile_check: *args.profile_check,
            profile_min_interval: *args.profile_min_interval,
            upstream_profile_path: args.upstream_profile_path,
            unsafe_snapshot_without_headroom: args.unsafe_snapshot_without_headroom,
            keys: loaded.keys,
            value: args.value,
            grace: *args.grace,
            skew: *args.skew,
            task_id,
            source: args.source,
            inspector: args.inspector,
            allow_remote_inspector: args.allow_remote_inspector,
            upstream_path: args.upstream_path,
            pin_ttl: *args.pin_ttl,
            max_attempts: args.max_attempts,
            min_interval: *args.min_interval,
            keepalive: *args.keepalive,
            health_paths: args.health_path,
            allow_upgrade: args.allow_upgrade,
            shutdown_timeout: *args.shutdown_timeout,
            threads: args.threads,
            lane: args.lane == LaneArg::On,
            request_timeout: *args.request_timeout,
            header_timeout: *args.header_timeout,
            send_timeout: *args.send_timeout,
            max_header_bytes: args.max_header_bytes,
            max_connections: args.max_connections,
            compression: args.compression,
            redact: args.redact,
            log_format: args.log_format,
            watch_every: *args.watch_every,
            watch_growth: args.watch_growth.map(|s| s.as_u64()),
            watch_window: *args.watch_window,
            watch_count: args.watch_count,
            watch_interval: *args.watch_interval,
            watch_cooldown: *args.watch_cooldown,
            app_memory_limit: args.app_memory_limit.map(|s| s.as_u64()),
            store: args.store,
            warnings: loaded.warnings,
        };
        builder.build()
    }

    /// A builder for a proxy in front of `upstream` that checks tokens with `keys`; every other
    /// setting starts at the command line's default. For programs that embed the proxy (keys
    /// stay in memory: no argv, no secret file).
    pub fn builder(upstream: &str, keys: Keys) -> ConfigBuilder {
        ConfigBuilder {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9091)),
            upstream: vec![upstream.to_owned()],
            path: "/heapdump".to_owned(),
            profile_path: "/heapprofile".to_owned(),
            profile_interval: 512 << 10,
            profile_check: Duration::from_secs(3600),
            profile_min_interval: Duration::from_secs(1),
            upstream_profile_path: "/heapprofile".to_owned(),
            unsafe_snapshot_without_headroom: false,
            keys,
            value: "heapdump".to_owned(),
            grace: Duration::from_secs(300),
            skew: Duration::from_secs(60),
            task_id: TaskIdSource::Discover,
            source: SourceKind::Inspector,
            inspector: "http://127.0.0.1:9229".to_owned(),
            allow_remote_inspector: false,
            upstream_path: "/heapdump".to_owned(),
            pin_ttl: Duration::from_secs(3600),
            max_attempts: DEFAULT_ATTEMPTS,
            min_interval: Duration::from_secs(30),
            keepalive: Duration::from_secs(15),
            health_paths: Vec::new(),
            allow_upgrade: Vec::new(),
            shutdown_timeout: Duration::from_secs(25),
            threads: None,
            lane: true,
            request_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(60),
            max_header_bytes: 65536,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            compression: vec![CompressionArg::Zstd, CompressionArg::Gzip],
            redact: RedactArg::Off,
            log_format: LogFormat::Text,
            watch_every: Duration::from_secs(15),
            watch_growth: None,
            watch_window: Duration::from_secs(30 * 60),
            watch_count: 3,
            watch_interval: Duration::from_secs(600),
            watch_cooldown: Duration::from_secs(6 * 3600),
            app_memory_limit: None,
            store: None,
            warnings: Vec::new(),
        }
    }

    /// Where the public listener binds.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub fn admin_listen(&self) -> SocketAddr {
        self.admin_listen
    }

    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }
}

/// Builds a [`Config`] in code; [`ConfigBuilder::build`] validates exactly as the command line
/// is validated.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    listen: SocketAddr,
    admin_listen: SocketAddr,
    upstream: Vec<String>,
    path: String,
    profile_path: String,
    profile_interval: u64,
    profile_check: Duration,
    profile_min_interval: Duration,
    upstream_profile_path: String,
    unsafe_snapshot_without_headroom: bool,
    keys: Keys,
    value: String,
    grace: Duration,
    skew: Duration,
    task_id: TaskIdSource,
    source: SourceKind,
    inspector: String,
    allow_remote_inspector: bool,
    upstream_path: String,
    pin_ttl: Duration,
    max_attempts: u32,
    min_interval: Duration,
    keepalive: Duration,
    health_paths: Vec<String>,
    allow_upgrade: Vec<String>,
    shutdown_timeout: Duration,
    threads: Option<usize>,
    lane: bool,
    request_timeout: Duration,
    header_timeout: Duration,
    send_timeout: Duration,
    max_header_bytes: usize,
    max_connections: usize,
    compression: Vec<CompressionArg>,
    redact: RedactArg,
    log_format: LogFormat,
    watch_every: Duration,
    watch_growth: Option<u64>,
    watch_window: Duration,
    watch_count: u32,
    watch_interval: Duration,
    watch_cooldown: Duration,
    app_memory_limit: Option<u64>,
    store: Option<String>,
    warnings: Vec<String>,
}

impl ConfigBuilder {
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

    /// `--keepalive`.
    pub fn keepalive(mut self, every: Duration) -> Self {
        self.keepalive = every;
        self
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

    /// Checks everything, as for the command line.
    pub fn build(self) -> Result<Config, ConfigError> {
        let path = absolute_path("--path", &self.path)?;
        let health_paths = self
            .health_paths
            .iter()
            .map(|p| absolute_path("--health-path", p))
            .collect::<Result<Vec<_>, _>>()?;
        if health_paths.contains(&path) {
            return Err(error("--health-path must differ from --path"));
        }
        let profile_path = absolute_path("--profile-path", &self.profile_path)?;
        let upstream_profile_path =
            absolute_path("--upstream-profile-path", &self.upstream_profile_path)?;
        let (a, b) = (
            crate::guard::canonical(&path),
            crate::guard::canonical(&profile_path),
        );
        let nested = |outer: &str, inner: &str| {
            inner == outer || inner.starts_with(&format!("{}/", outer.trim_end_matches('/')))
        };
        if nested(&a, &b) || nested(&b, &a) {
            return Err(error(
                "--profile-path and --path must differ, and neither may be below the other",
            ));
        }
        if health_paths.contains(&profile_path) {
            return Err(error("--health-path must differ from --profile-path"));
        }
        if self.profile_check.is_zero() {
            return Err(error("--profile-check must be more than 0s"));
        }
        let sampling =
            (self.profile_interval > 0).then_some(crate::source::inspector::SamplingConfig {
                interval: self.profile_interval,
                check_every: self.profile_check,
            });
        if self.app_memory_limit == Some(0) {
            return Err(error("--app-memory-limit must be more than 0"));
        }
        let window = Window::new(self.grace, self.skew)
            .map_err(|e| error(format!("--grace/--skew: {e}")))?;
        if self.keepalive.is_zero() {
            return Err(error("--keepalive must be more than 0s"));
        }
        if self.send_timeout.is_zero() {
            return Err(error("--send-timeout must be more than 0s"));
        }
        if self.max_connections == 0 {
            return Err(error("--max-connections must be at least 1"));
        }
        if self.max_header_bytes < 8192 {
            return Err(error("--max-header-bytes must be at least 8192"));
        }
        let threads = match self.threads {
            None => crate::workers::default_threads(),
            Some(n @ 1..=MAX_THREADS) => n,
            Some(_) => return Err(error(format!("--threads must be 1 to {MAX_THREADS}"))),
        };
        let compression = codings(&self.compression)?;
        let mut upgrades = vec!["websocket".to_owned()];
        for protocol in &self.allow_upgrade {
            let name = protocol.trim();
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(error(
                    "--allow-upgrade takes protocol names such as h2c (letters, digits, !#$%&'*+-.^_`|~)",
                ));
            }
            let name = name.to_ascii_lowercase();
            if !upgrades.contains(&name) {
                upgrades.push(name);
            }
        }
        let redact_strings = self.redact == RedactArg::Strings;
        if redact_strings && self.source == SourceKind::Gateway {
            return Err(error(
                "--redact: set it on the sidecars; a gateway relays their streams as they are",
            ));
        }
        let (upstream, targets) = upstreams(&self.upstream, self.source)?;
        let mut warnings = self.warnings.clone();
        let watch = watch_config(&self, &mut warnings)?;
        let guarded_paths = GuardedPaths::new([
            path.as_str(),
            self.upstream_path.as_str(),
            profile_path.as_str(),
            upstream_profile_path.as_str(),
        ])
        .under_prefix(upstream.path());
        let source = match self.source {
            SourceKind::Inspector => SourceConfig::Inspector {
                addr: inspector_addr(&self.inspector, self.allow_remote_inspector)?,
            },
            SourceKind::Upstream => SourceConfig::Upstream {
                path: absolute_path("--upstream-path", &self.upstream_path)?,
            },
            SourceKind::Gateway => {
                if self.max_attempts == 0 {
                    return Err(error("--max-attempts must be at least 1"));
                }
                SourceConfig::Gateway(GatewayConfig {
                    targets: targets.unwrap_or_else(|| Targets::Balancer(upstream.uri().clone())),
                    path: absolute_path("--upstream-path", &self.upstream_path)?,
                    pin_ttl: self.pin_ttl,
                    max_attempts: self.max_attempts,
                })
            }
        };
        Ok(Config {
            listen: self.listen,
            admin_listen: self.admin_listen,
            upstream,
            upgrades,
            snapshot: SnapshotConfig {
                path,
                keys: self.keys,
                value: self.value,
                window,
                min_interval: self.min_interval,
                keepalive: self.keepalive,
                guarded_paths,
                health_paths,
                compression,
                redact_strings,
            },
            profile: ProfileConfig {
                path: profile_path,
                sampling,
                min_interval: self.profile_min_interval,
                upstream_path: upstream_profile_path,
            },
            headroom: HeadroomConfig {
                app_memory_limit: self.app_memory_limit,
                unsafe_override: self.unsafe_snapshot_without_headroom,
            },
            task_id: self.task_id,
            source,
            shutdown_timeout: self.shutdown_timeout,
            threads,
            lane: self.lane,
            limits: Limits {
                max_connections: self.max_connections,
                max_header_bytes: self.max_header_bytes,
                header_timeout: self.header_timeout,
                send_timeout: self.send_timeout,
                request_timeout: self.request_timeout,
            },
            log_format: self.log_format,
            watch,
            warnings,
        })
    }
}

/// The leak watch's flags, checked together.
fn watch_config(b: &ConfigBuilder, warnings: &mut Vec<String>) -> Result<WatchConfig, ConfigError> {
    let inspector = b.source == SourceKind::Inspector;
    let every = (!b.watch_every.is_zero() && inspector).then_some(b.watch_every);
    let store = b
        .store
        .as_deref()
        .map(|text| {
            crate::watch::store::StoreLocation::parse(text)
                .map_err(|e| error(format!("--store: {e}")))
        })
        .transpose()?;
    let Some(growth) = b.watch_growth else {
        if store.is_some() {
            warnings
                .push("--store is set without --watch-growth: nothing will be stored".to_owned());
        }
        return Ok(WatchConfig { every, leak: None });
    };
    if !inspector {
        return Err(error(
            "--watch-growth needs --source inspector (it reads the heap over the inspector)",
        ));
    }
    let Some(every) = every else {
        return Err(error("--watch-growth needs --watch-every above 0s"));
    };
    let Some(store) = store else {
        return Err(error(
            "--watch-growth needs --store DIR or --store s3://bucket/prefix",
        ));
    };
    if growth == 0 {
        return Err(error("--watch-growth must be more than 0"));
    }
    if b.watch_count == 0 || b.watch_count > 10 {
        return Err(error("--watch-count must be 1 to 10"));
    }
    let floor_span = every * u32::try_from(crate::watch::trigger::FLOOR_SAMPLES).unwrap_or(4);
    if b.watch_window <= floor_span {
        return Err(error(format!(
            "--watch-window must be longer than {} samples of --watch-every ({})",
            crate::watch::trigger::FLOOR_SAMPLES,
            humantime::format_duration(floor_span)
        )));
    }
    Ok(WatchConfig {
        every: Some(every),
        leak: Some(LeakConfig {
            growth,
            window: b.watch_window,
            count: b.watch_count,
            interval: b.watch_interval,
            cooldown: b.watch_cooldown,
            store,
        }),
    })
}

fn absolute_path(flag: &str, path: &str) -> Result<String, ConfigError> {
    if !path.starts_with('/') || path.contains(['?', '#']) || path.contains(char::is_whitespace) {
        return Err(error(format!(
            "{flag} must be a path starting with / (no query), got {path:?}"
        )));
    }
    // Everything below a snapshot path is refused on the pass-through route.
    if crate::guard::canonical(path) == "/" {
        return Err(error(format!(
            "{flag} must name a path below / (everything under it is the proxy's), got {path:?}"
        )));
    }
    Ok(path.to_owned())
}

/// The pass-through target, and with `ID=URL` entries the gateway's direct targets.
fn upstreams(
    entries: &[String],
    source: SourceKind,
) -> Result<(UpstreamUrl, Option<Targets>), ConfigError> {
    let direct = entries
        .iter()
        .any(|e| e.split_once('=').is_some_and(|(id, _)| !id.contains('/')));
    if !direct {
        return match entries {
            [one] => Ok((upstream_url(one)?, None)),
            _ => Err(error(
                "give one --upstream URL (several only as ID=URL with --source gateway)",
            )),
        };
    }
    if source != SourceKind::Gateway {
        return Err(error("--upstream ID=URL entries need --source gateway"));
    }
    let mut table = Vec::with_capacity(entries.len());
    for entry in entries {
        let (id, url) = entry.split_once('=').ok_or_else(|| {
            error(format!(
                "--upstream {:?}: mix of ID=URL and plain URLs",
                redact_userinfo(entry)
            ))
        })?;
        let id = TaskId::new(id)
            .map_err(|e| error(format!("--upstream {:?}: {e}", redact_userinfo(entry))))?;
        if table.iter().any(|(known, _)| known == &id) {
            return Err(error(format!("--upstream: task {id} given twice")));
        }
        table.push((id, upstream_url(url)?));
    }
    // Normal traffic goes to the first instance.
    let first = table[0].1.clone();
    let table = table
        .into_iter()
        .map(|(id, url)| (id, url.uri().clone()))
        .collect();
    Ok((first, Some(Targets::Direct(table))))
}

/// The app's base URL: plain http (the app is on loopback or in the same task), no query.
fn upstream_url(text: &str) -> Result<UpstreamUrl, ConfigError> {
    UpstreamUrl::parse(text).map_err(|e| error(format!("--upstream {e}")))
}

/// Any `@` counts: a password holding `/` or `#` makes the parsed authority end before it.
fn has_userinfo(uri: &http::Uri) -> bool {
    uri.to_string().contains('@')
}

/// The inspector's socket address. Only loopback unless explicitly allowed: an inspector port
/// lets whoever reaches it run arbitrary code in the app.
fn inspector_addr(text: &str, allow_remote: bool) -> Result<SocketAddr, ConfigError> {
    let uri: http::Uri = text.parse().map_err(|_| {
        error(format!(
            "--inspector is not a URL: {:?}",
            redact_userinfo(text)
        ))
    })?;
    if uri.scheme_str() != Some("http") {
        return Err(error(format!(
            "--inspector must be http://IP:PORT, got {:?}",
            redact_userinfo(text)
        )));
    }
    if has_userinfo(&uri) {
        return Err(error("--inspector must not carry user:password@"));
    }
    let host = uri.host().unwrap_or_default();
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                error(format!(
                    "--inspector must name an IP address or localhost, got {host:?}"
                ))
            })?
    };
    if !ip.is_loopback() && !allow_remote {
        return Err(error(format!(
            "--inspector {ip} is not loopback; anyone reaching an inspector can run code in the app \
             (pass --allow-remote-inspector to accept the risk)"
        )));
    }
    Ok(SocketAddr::new(ip, uri.port_u16().unwrap_or(9229)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["heapgate-proxy"];
        if !extra.contains(&"--upstream") {
            argv.extend(["--upstream", "http://127.0.0.1:3000"]);
        }
        argv.extend_from_slice(extra);
        let args = Args::try_parse_from(argv).map_err(|e| error(e.to_string()))?;
        Config::from_args(args, |name| {
            (name == "HEAPGATE_SECRET").then(|| "a-secret-of-24-bytes-xx".into())
        })
    }

    #[test]
    fn defaults() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.admin_listen, "127.0.0.1:9091".parse().unwrap());
        assert_eq!(config.snapshot.path, "/heapdump");
        assert_eq!(config.snapshot.min_interval, Duration::from_secs(30));
        assert_eq!(config.snapshot.keepalive, Duration::from_secs(15));
        assert_eq!(config.shutdown_timeout, Duration::from_secs(25));
        assert_eq!(
            config.source,
            SourceConfig::Inspector {
                addr: "127.0.0.1:9229".parse().unwrap()
            }
        );
    }

    #[test]
    fn urls_with_credentials_are_refused_without_printing_them() {
        for args in [
            &["--inspector", "ws://user:s3cr3t@127.0.0.1:9229"][..],
            &["--inspector", "http://user:s3cr3t@127.0.0.1:9229"],
            &["--inspector", "user:s3cr3t@127.0.0.1:9229"],
            &["--upstream", "http://user:s3cr3t@127.0.0.1:3000"],
            &["--upstream", "https://user:s3cr3t@127.0.0.1:3000"],
            &["--upstream", "user:s3cr3t@127.0.0.1:3000"],
            &[
                "--source",
                "gateway",
                "--upstream",
                "t1=http://user:s3cr3t@h:1",
            ],
            &[
                "--source",
                "gateway",
                "--upstream",
                "t1=http://a:1",
                "--upstream",
                "user:s3cr3t@h",
            ],
        ] {
            let message = parse(args).err().map(|e| e.to_string());
            let message = message.unwrap_or_else(|| panic!("{args:?} accepted"));
            assert!(!message.contains("s3cr3t"), "{args:?}: {message}");
        }
    }

    #[test]
    fn compression_offers() {
        let offered = |extra: &[&str]| parse(extra).map(|c| c.snapshot.compression);
        assert_eq!(offered(&[]), Ok(vec![Coding::Zstd, Coding::Gzip]));
        assert_eq!(offered(&["--compression", "gzip"]), Ok(vec![Coding::Gzip]));
        assert_eq!(
            offered(&["--compression", "gzip,zstd"]),
            Ok(vec![Coding::Gzip, Coding::Zstd])
        );
        assert_eq!(offered(&["--compression", "off"]), Ok(vec![]));
        assert!(offered(&["--compression", "off,gzip"]).is_err());
        assert!(offered(&["--compression", "gzip,gzip"]).is_err());
        assert!(offered(&["--compression", "br"]).is_err());
        assert!(!parse(&[]).unwrap().snapshot.redact_strings);
        assert!(
            parse(&["--redact", "strings"])
                .unwrap()
                .snapshot
                .redact_strings
        );
        assert!(parse(&["--redact", "strings", "--source", "gateway"]).is_err());
        assert!(parse(&["--redact", "everything"]).is_err());
    }

    #[test]
    fn inspector_must_be_loopback_unless_allowed() {
        assert!(parse(&["--inspector", "http://10.0.0.5:9229"]).is_err());
        assert!(
            parse(&[
                "--inspector",
                "http://10.0.0.5:9229",
                "--allow-remote-inspector"
            ])
            .is_ok()
        );
        assert!(parse(&["--inspector", "http://localhost:9230"]).is_ok());
        assert!(parse(&["--inspector", "http://[::1]:9230"]).is_ok());
        assert!(parse(&["--inspector", "http://node.internal:9229"]).is_err());
    }

    #[test]
    fn rejects_bad_paths_and_urls() {
        for bad in [
            &["--path", "heapdump"][..],
            &["--path", "/heap?x=1"],
            &["--health-path", "/heapdump"],
            &["--upstream", "https://127.0.0.1"],
            &["--upstream", "127.0.0.1:3000"],
            &["--grace", "2d"],
            &["--keepalive", "0s"],
            &["--max-header-bytes", "100"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn gateway_targets() {
        let balancer = parse(&["--source", "gateway"]).unwrap();
        let SourceConfig::Gateway(gateway) = balancer.source else {
            panic!("gateway")
        };
        assert_eq!(
            gateway.targets,
            Targets::Balancer("http://127.0.0.1:3000".parse().unwrap())
        );
        assert_eq!(gateway.max_attempts, 30);
        let direct = parse(&[
            "--source",
            "gateway",
            "--upstream",
            "t1=http://127.0.0.1:1",
            "--upstream",
            "t2=http://127.0.0.1:2",
        ])
        .unwrap();
        assert_eq!(direct.upstream.uri(), "http://127.0.0.1:1");
        let SourceConfig::Gateway(gateway) = direct.source else {
            panic!("gateway")
        };
        let Targets::Direct(table) = gateway.targets else {
            panic!("direct")
        };
        assert_eq!(table.len(), 2);
        assert!(
            parse(&["--upstream", "t1=http://127.0.0.1:1"]).is_err(),
            "ID=URL needs the gateway"
        );
        assert!(
            parse(&[
                "--source",
                "gateway",
                "--upstream",
                "t1=http://a:1,t1=http://b:2"
            ])
            .is_err()
        );
        assert!(
            parse(&[
                "--source",
                "gateway",
                "--upstream",
                "t1=http://a:1,http://b:2"
            ])
            .is_err()
        );
        assert!(parse(&["--upstream", "http://a:1,http://b:2"]).is_err());
    }

    #[test]
    fn health_paths_repeat() {
        let config = parse(&["--health-path", "/health", "--health-path", "/ready"]).unwrap();
        assert_eq!(config.snapshot.health_paths, ["/health", "/ready"]);
    }

    #[test]
    fn threads_default_to_the_usable_cpus_and_are_bounded() {
        let usable = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        assert_eq!(parse(&[]).unwrap().threads, usable);
        assert_eq!(parse(&["--threads", "3"]).unwrap().threads, 3);
        for bad in ["0", "1025"] {
            let err = parse(&["--threads", bad]).unwrap_err();
            assert_eq!(err.to_string(), "--threads must be 1 to 1024");
        }
        assert!(parse(&["--threads", "two"]).is_err());
    }
}
