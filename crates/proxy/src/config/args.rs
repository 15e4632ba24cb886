//! The command line as clap sees it: [`Args`], every flag also read from a `HEAPGATE_*` variable
//! (for containers), checked for types only. [`Args::into_builder`] hands it to the same
//! [`ConfigBuilder`] a program embedding the proxy uses, so both are validated by one
//! [`ConfigBuilder::build`].

use std::ffi::OsString;
use std::net::SocketAddr;

use clap::{Parser, ValueEnum};
use heapgate_keys::SecretArgs;
use heapgate_protocol::TaskId;

use super::{ConfigBuilder, ConfigError, TaskIdSource, error};

/// Every default, written once: clap shows and parses them, [`ConfigBuilder`]'s start from them
/// (a test checks both give the same configuration).
pub(crate) mod defaults {
    use super::{LogFormat, RedactArg, SourceKind};

    pub(crate) const LISTEN: &str = "0.0.0.0:8080";
    pub(crate) const ADMIN_LISTEN: &str = "127.0.0.1:9091";
    pub(crate) const PATH: &str = "/heapdump";
    pub(crate) const PROFILE_PATH: &str = "/heapprofile";
    pub(crate) const PROFILE_INTERVAL: &str = "512KiB";
    pub(crate) const PROFILE_CHECK: &str = "1h";
    pub(crate) const PROFILE_MIN_INTERVAL: &str = "1s";
    pub(crate) const VALUE: &str = "heapdump";
    pub(crate) const GRACE: &str = "5m";
    pub(crate) const SKEW: &str = "1m";
    pub(crate) const SOURCE: SourceKind = SourceKind::Inspector;
    pub(crate) const INSPECTOR: &str = "http://127.0.0.1:9229";
    pub(crate) const UPSTREAM_PATH: &str = "/heapdump";
    pub(crate) const UPSTREAM_PROFILE_PATH: &str = "/heapprofile";
    pub(crate) const PIN_TTL: &str = "1h";
    pub(crate) const MAX_ATTEMPTS: u32 = heapgate_protocol::DEFAULT_ATTEMPTS;
    pub(crate) const MIN_INTERVAL: &str = "30s";
    pub(crate) const KEEPALIVE: &str = "15s";
    pub(crate) const SHUTDOWN_TIMEOUT: &str = "25s";
    pub(crate) const REQUEST_TIMEOUT: &str = "60s";
    pub(crate) const HEADER_TIMEOUT: &str = "30s";
    pub(crate) const SEND_TIMEOUT: &str = "60s";
    /// An idle connection costs the proxy about a kilobyte and its socket, so this bounds what
    /// idle clients can take (a few MiB) far above what a balancer in front of one task opens.
    pub(crate) const MAX_CONNECTIONS: usize = 4096;
    pub(crate) const MAX_HEADER_BYTES: usize = 65536;
    pub(crate) const COMPRESSION: &str = "zstd,gzip";
    pub(crate) const REDACT: RedactArg = RedactArg::Off;
    pub(crate) const LOG_FORMAT: LogFormat = LogFormat::Text;
    pub(crate) const WATCH_EVERY: &str = "15s";
    pub(crate) const WATCH_WINDOW: &str = "30m";
    pub(crate) const WATCH_COUNT: u32 = 3;
    pub(crate) const WATCH_INTERVAL: &str = "10m";
    pub(crate) const WATCH_COOLDOWN: &str = "6h";
}

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
(`heapgate mint --for profile`).
Reference (answers, metrics, every flag): docs/sidecar.md in the source, or
`heapgate man heapgate-proxy`.")]
pub struct Args {
    /// Address to serve traffic on.
    #[arg(long, env = "HEAPGATE_LISTEN", default_value = defaults::LISTEN)]
    pub(super) listen: SocketAddr,

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
    pub(super) upstream: Vec<String>,

    /// The snapshot path.
    #[arg(long, env = "HEAPGATE_PATH", default_value = defaults::PATH)]
    pub(super) path: String,

    /// The sampling heap profile's path (DevTools .heapprofile JSON, or pprof with
    /// `format=pprof`); its tokens sign VALUE:heapprofile (`heapgate mint --for profile`).
    #[arg(long, env = "HEAPGATE_PROFILE_PATH", default_value = defaults::PROFILE_PATH)]
    pub(super) profile_path: String,

    /// Run V8's sampling heap profiler from the start, one sample per this many bytes allocated
    /// on average (0: off, and the profile path answers 502).
    #[arg(
        long,
        env = "HEAPGATE_PROFILE_INTERVAL",
        value_name = "SIZE",
        default_value = defaults::PROFILE_INTERVAL
    )]
    pub(super) profile_interval: bytesize::ByteSize,

    /// How often the sampling profiler's bookkeeping is checked (it is restarted only when it
    /// outgrew the live objects it describes). Each check reads the profile, which costs the app
    /// one full garbage collection.
    #[arg(
        long,
        env = "HEAPGATE_PROFILE_CHECK",
        value_name = "DURATION",
        default_value = defaults::PROFILE_CHECK
    )]
    pub(super) profile_check: humantime::Duration,

    /// Refuse a new profile (429) until this long after the last one.
    #[arg(
        long,
        env = "HEAPGATE_PROFILE_MIN_INTERVAL",
        value_name = "DURATION",
        default_value = defaults::PROFILE_MIN_INTERVAL
    )]
    pub(super) profile_min_interval: humantime::Duration,

    /// DANGEROUS: take snapshots even when the headroom rule expects them not to fit in the app's
    /// memory limit. The kernel may then kill the app mid-snapshot (OOM).
    #[arg(long, env = "HEAPGATE_UNSAFE_SNAPSHOT_WITHOUT_HEADROOM")]
    pub(super) unsafe_snapshot_without_headroom: bool,

    #[command(flatten)]
    pub(super) secrets: SecretArgs,

    /// The value signed with the hour; must equal the minter's.
    #[arg(long, env = "HEAPGATE_VALUE", default_value = defaults::VALUE)]
    pub(super) value: String,

    /// Accept the previous hour's token this long into the new hour.
    #[arg(
        long,
        env = "HEAPGATE_GRACE",
        value_name = "DURATION",
        default_value = defaults::GRACE
    )]
    pub(super) grace: humantime::Duration,

    /// Accept the next hour's token this long before it starts.
    #[arg(
        long,
        env = "HEAPGATE_SKEW",
        value_name = "DURATION",
        default_value = defaults::SKEW
    )]
    pub(super) skew: humantime::Duration,

    /// This instance's id (names snapshots, compared with `task=`). Default: the ECS task id
    /// from ECS_CONTAINER_METADATA_URI_V4, else the hostname.
    #[arg(long, env = "HEAPGATE_TASK_ID", value_name = "ID")]
    pub(super) task_id: Option<String>,

    /// Where snapshots come from: the Node inspector, the app's own snapshot endpoint, or (as a
    /// gateway) heapgate sidecars behind --upstream.
    #[arg(long, env = "HEAPGATE_SOURCE", value_enum, default_value_t = defaults::SOURCE)]
    pub(super) source: SourceKind,

    /// The Node inspector's HTTP address (`node --inspect=127.0.0.1:9229`).
    #[arg(
        long,
        env = "HEAPGATE_INSPECTOR",
        value_name = "URL",
        default_value = defaults::INSPECTOR
    )]
    pub(super) inspector: String,

    /// Allow an inspector that is not on loopback. Dangerous: anyone who reaches an inspector
    /// port can run code in the app.
    #[arg(long, env = "HEAPGATE_ALLOW_REMOTE_INSPECTOR")]
    pub(super) allow_remote_inspector: bool,

    /// With --source upstream: the app's own snapshot path the verified request is forwarded to.
    /// With --source gateway: the sidecars' snapshot path.
    #[arg(long, env = "HEAPGATE_UPSTREAM_PATH", default_value = defaults::UPSTREAM_PATH)]
    pub(super) upstream_path: String,

    /// With --source gateway: the sidecars' profile path.
    #[arg(
        long,
        env = "HEAPGATE_UPSTREAM_PROFILE_PATH",
        default_value = defaults::UPSTREAM_PROFILE_PATH
    )]
    pub(super) upstream_profile_path: String,

    /// Gateway: how long the pinned task (the first that answered a request without `task=`)
    /// stays chosen after its last use. `repin=1` in a request chooses anew.
    #[arg(
        long,
        env = "HEAPGATE_PIN_TTL",
        value_name = "DURATION",
        default_value = defaults::PIN_TTL
    )]
    pub(super) pin_ttl: humantime::Duration,

    /// Gateway: attempts (each on a new connection) to reach the chosen task per request.
    #[arg(
        long,
        env = "HEAPGATE_MAX_ATTEMPTS",
        value_name = "N",
        default_value_t = defaults::MAX_ATTEMPTS
    )]
    pub(super) max_attempts: u32,

    /// Refuse a new snapshot (429) until this long after the last one finished.
    #[arg(
        long,
        env = "HEAPGATE_MIN_INTERVAL",
        value_name = "DURATION",
        default_value = defaults::MIN_INTERVAL
    )]
    pub(super) min_interval: humantime::Duration,

    /// The heartbeat: while a snapshot is being built and no bytes flow, send a whitespace byte
    /// this often so load balancers' idle timeouts (ALB: 60 s) do not cut the response.
    #[arg(
        long,
        env = "HEAPGATE_KEEPALIVE",
        value_name = "DURATION",
        default_value = defaults::KEEPALIVE
    )]
    pub(super) keepalive: humantime::Duration,

    /// A health-check path the proxy answers itself with 200 while a snapshot runs (the app's
    /// event loop is blocked then). Repeatable; the env var takes a comma-separated list.
    #[arg(
        long,
        env = "HEAPGATE_HEALTH_PATH",
        value_name = "PATH",
        value_delimiter = ','
    )]
    pub(super) health_path: Vec<String>,

    /// A protocol the app may switch a pass-through connection to, besides WebSocket (always
    /// allowed), e.g. h2c. Other `Upgrade` requests are passed on as ordinary requests.
    /// Repeatable; the env var takes a comma-separated list.
    #[arg(
        long,
        env = "HEAPGATE_ALLOW_UPGRADE",
        value_name = "PROTOCOL",
        value_delimiter = ','
    )]
    pub(super) allow_upgrade: Vec<String>,

    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "HEAPGATE_ADMIN_LISTEN", default_value = defaults::ADMIN_LISTEN)]
    pub(super) admin_listen: SocketAddr,

    /// On SIGTERM/SIGINT, wait this long for in-flight requests and a running snapshot.
    #[arg(
        long,
        env = "HEAPGATE_SHUTDOWN_TIMEOUT",
        value_name = "DURATION",
        default_value = defaults::SHUTDOWN_TIMEOUT
    )]
    pub(super) shutdown_timeout: humantime::Duration,

    /// Worker threads for the public listener, each with its own event loop (at most 1024).
    /// Default: the CPUs this process may use (affinity mask and cgroup CPU quota).
    #[arg(long, env = "HEAPGATE_THREADS", value_name = "N")]
    pub(super) threads: Option<usize>,

    /// The plain-request lane: ordinary HTTP/1.1 requests passed by hand (fast). Off, every
    /// request takes the general path (hyper), with the same rules and answers: a kill switch if
    /// the lane is ever suspected.
    #[arg(
        long,
        env = "HEAPGATE_LANE",
        value_name = "on|off",
        default_value = "on"
    )]
    pub(super) lane: LaneArg,

    /// For normal traffic: longest wait for the app's response head (504 after). Snapshot
    /// streams are never cut.
    #[arg(
        long,
        env = "HEAPGATE_REQUEST_TIMEOUT",
        value_name = "DURATION",
        default_value = defaults::REQUEST_TIMEOUT
    )]
    pub(super) request_timeout: humantime::Duration,

    /// Longest wait for a client's request head (slow clients are disconnected).
    #[arg(
        long,
        env = "HEAPGATE_HEADER_TIMEOUT",
        value_name = "DURATION",
        default_value = defaults::HEADER_TIMEOUT
    )]
    pub(super) header_timeout: humantime::Duration,

    /// Cut a connection whose client has taken no bytes for this long while a response waits to
    /// be written (as nginx's send_timeout). A stalled snapshot download then frees the
    /// one-at-a-time gate; a slow reader that keeps reading is never cut.
    #[arg(
        long,
        env = "HEAPGATE_SEND_TIMEOUT",
        value_name = "DURATION",
        default_value = defaults::SEND_TIMEOUT
    )]
    pub(super) send_timeout: humantime::Duration,

    /// Most client connections open at once on the public listener (at least 1). Past it, new
    /// connections wait in the kernel's accept queue until one closes; idle ones close after
    /// --header-timeout.
    #[arg(
        long,
        env = "HEAPGATE_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = defaults::MAX_CONNECTIONS
    )]
    pub(super) max_connections: usize,

    /// Largest request head (request line and headers) accepted, in bytes (at least 8192).
    #[arg(
        long,
        env = "HEAPGATE_MAX_HEADER_BYTES",
        value_name = "BYTES",
        default_value_t = defaults::MAX_HEADER_BYTES
    )]
    pub(super) max_header_bytes: usize,

    /// Content codings offered for snapshot responses, in order of preference (a comma list of
    /// zstd and gzip, or off). Clients choose with Accept-Encoding; without it they get plain JSON.
    #[arg(
        long,
        env = "HEAPGATE_COMPRESSION",
        value_name = "CODINGS",
        value_delimiter = ',',
        default_value = defaults::COMPRESSION
    )]
    pub(super) compression: Vec<CompressionArg>,

    /// Redact snapshots: `strings` replaces the string values the app holds by a placeholder,
    /// keeping class, property and edge names, counts, sizes and ids (answers then carry
    /// X-Heapgate-Redacted: strings). Set it on the sidecars, not on a gateway.
    #[arg(long, env = "HEAPGATE_REDACT", value_enum, value_name = "WHAT", default_value_t = defaults::REDACT)]
    pub(super) redact: RedactArg,

    /// Log format on stderr. Filter with RUST_LOG (default info).
    #[arg(long, env = "HEAPGATE_LOG_FORMAT", value_enum, default_value_t = defaults::LOG_FORMAT)]
    pub(super) log_format: LogFormat,

    /// Leak watch: read the app's heap usage and RSS over the inspector this often, for
    /// /metrics and the trigger (0s: never).
    #[arg(
        long,
        env = "HEAPGATE_WATCH_EVERY",
        value_name = "DURATION",
        default_value = defaults::WATCH_EVERY,
        help_heading = "Leak watch"
    )]
    pub(super) watch_every: humantime::Duration,

    /// Leak watch: take a series when the heap's floor grew by this much (e.g. 64MiB) within
    /// --watch-window. Off by default; needs --store.
    #[arg(
        long,
        env = "HEAPGATE_WATCH_GROWTH",
        value_name = "SIZE",
        help_heading = "Leak watch"
    )]
    pub(super) watch_growth: Option<bytesize::ByteSize>,

    /// Leak watch: the window the growth is measured over.
    #[arg(
        long,
        env = "HEAPGATE_WATCH_WINDOW",
        value_name = "DURATION",
        default_value = defaults::WATCH_WINDOW,
        help_heading = "Leak watch"
    )]
    pub(super) watch_window: humantime::Duration,

    /// Leak watch: snapshots per series.
    #[arg(
        long,
        env = "HEAPGATE_WATCH_COUNT",
        value_name = "N",
        default_value_t = defaults::WATCH_COUNT,
        help_heading = "Leak watch"
    )]
    pub(super) watch_count: u32,

    /// Leak watch: time between the snapshots of a series.
    #[arg(
        long,
        env = "HEAPGATE_WATCH_INTERVAL",
        value_name = "DURATION",
        default_value = defaults::WATCH_INTERVAL,
        help_heading = "Leak watch"
    )]
    pub(super) watch_interval: humantime::Duration,

    /// Leak watch: no new series until this long after the last one ended.
    #[arg(
        long,
        env = "HEAPGATE_WATCH_COOLDOWN",
        value_name = "DURATION",
        default_value = defaults::WATCH_COOLDOWN,
        help_heading = "Leak watch"
    )]
    pub(super) watch_cooldown: humantime::Duration,

    /// The app's memory limit (e.g. 2GiB): a snapshot expected to peak above it is refused (507).
    /// Default: the ECS task's memory (task metadata), else the memory cgroup of the app's process
    /// when this sidecar can see it.
    #[arg(long, env = "HEAPGATE_APP_MEMORY_LIMIT", value_name = "SIZE")]
    pub(super) app_memory_limit: Option<bytesize::ByteSize>,

    /// Leak watch: where series are stored, a directory or s3://bucket/prefix (credentials
    /// from the standard AWS chain, e.g. the ECS task role; AWS_ENDPOINT_URL for another
    /// S3-compatible server).
    #[arg(
        long,
        env = "HEAPGATE_STORE",
        value_name = "DIR|URL",
        help_heading = "Leak watch"
    )]
    pub(super) store: Option<String>,
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

impl Args {
    /// The same settings for [`ConfigBuilder::build`], the secret loaded (`env` reads the
    /// environment for it).
    pub(super) fn into_builder(
        self,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<ConfigBuilder, ConfigError> {
        let args = self;
        let loaded = heapgate_keys::load(&args.secrets, env).map_err(|e| error(e.to_string()))?;
        let task_id = match args.task_id.as_deref() {
            Some(id) => TaskIdSource::Given(TaskId::new(id).map_err(|e| error(e.to_string()))?),
            None => TaskIdSource::Discover,
        };
        Ok(ConfigBuilder {
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
        })
    }
}
