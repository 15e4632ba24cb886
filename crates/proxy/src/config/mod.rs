//! Command line and environment → a validated [`Config`], in two steps as in ripgrep's
//! `lowargs`/`hiargs`:
//!
//! - `args`: [`Args`], what clap parses (types only), handed to a [`ConfigBuilder`];
//! - `builder`: [`ConfigBuilder`], the settings before validation, each starting at its default;
//!   programs embedding the proxy use it directly ([`Config::builder`]);
//! - `build`: every check, giving a [`Config`] whose sections launch reads as they are: nothing
//!   is fixed up later.

mod args;
mod build;
mod builder;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use heapgate_protocol::TaskId;
use heapgate_token::{Keys, Window};

pub use args::{Args, LogFormat};
pub use builder::ConfigBuilder;

use crate::body::encoding::Coding;
use crate::guard::GuardedPaths;
use crate::handlers::gateway::GatewayConfig;
use crate::passthrough::upstream::UpstreamUrl;
use crate::watch::trigger::TriggerConfig;

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
    pub(crate) heartbeat: Duration,
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

/// The leak trigger, its series and their store, as the watch runs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeakConfig {
    pub(crate) trigger: TriggerConfig,
    pub(crate) series: SeriesConfig,
    pub(crate) store: heapgate_store::StoreLocation,
}

/// A series: how many captures, how far apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeriesConfig {
    pub(crate) count: u32,
    pub(crate) interval: Duration,
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
        args.into_builder(env)?.build()
    }

    /// A builder for a proxy in front of `upstream` that checks tokens with `keys`; every other
    /// setting starts at the command line's default. For programs that embed the proxy (keys
    /// stay in memory: no argv, no secret file).
    pub fn builder(upstream: &str, keys: Keys) -> ConfigBuilder {
        ConfigBuilder::new(upstream, keys)
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::handlers::gateway::Targets;

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
        assert_eq!(config.snapshot.heartbeat, Duration::from_secs(15));
        assert_eq!(config.shutdown_timeout, Duration::from_secs(25));
        assert_eq!(
            config.source,
            SourceConfig::Inspector {
                addr: "127.0.0.1:9229".parse().unwrap()
            }
        );
    }

    /// Every default is written once (`args::defaults`): a builder that sets nothing gives the
    /// configuration an empty command line gives.
    #[test]
    fn the_builders_defaults_are_the_command_lines() {
        let from_argv = parse(&[]).unwrap();
        let keys = from_argv.snapshot.keys.clone();
        let built = Config::builder("http://127.0.0.1:3000", keys)
            .build()
            .unwrap();
        assert_eq!(format!("{built:?}"), format!("{from_argv:?}"));
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
