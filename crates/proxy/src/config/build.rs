//! [`ConfigBuilder::build`]: every check, in one place, before anything binds or connects, so a
//! misconfigured sidecar fails at start with one line naming the flag instead of at the first
//! snapshot during an incident.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use heapgate_keys::redact_userinfo;
use heapgate_protocol::TaskId;
use heapgate_token::Window;

use super::args::{CompressionArg, RedactArg, SourceKind};
use super::{
    Config, ConfigBuilder, ConfigError, HeadroomConfig, LeakConfig, Limits, ProfileConfig,
    SeriesConfig, SnapshotConfig, SourceConfig, WatchConfig, error,
};
use crate::body::encoding::Coding;
use crate::guard::GuardedPaths;
use crate::handlers::gateway::{GatewayConfig, Targets};
use crate::passthrough::upstream::UpstreamUrl;
use crate::watch::trigger::TriggerConfig;

impl ConfigBuilder {
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
                heartbeat: self.keepalive,
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

/// A `tchar` of RFC 9110 §5.6.2 (a protocol name in `Upgrade` is a token).
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Upper bound of `--threads`: far above any CPU count a sidecar gets, low enough to catch typos.
const MAX_THREADS: usize = 1024;

/// The leak watch's flags, checked together.
fn watch_config(b: &ConfigBuilder, warnings: &mut Vec<String>) -> Result<WatchConfig, ConfigError> {
    let inspector = b.source == SourceKind::Inspector;
    let every = (!b.watch_every.is_zero() && inspector).then_some(b.watch_every);
    let store = b
        .store
        .as_deref()
        .map(|text| {
            heapgate_store::StoreLocation::parse(text).map_err(|e| error(format!("--store: {e}")))
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
            trigger: TriggerConfig {
                growth,
                window: b.watch_window,
                cooldown: b.watch_cooldown,
            },
            series: SeriesConfig {
                count: b.watch_count,
                interval: b.watch_interval,
            },
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
