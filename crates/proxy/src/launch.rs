//! From a validated [`Config`] to a running proxy: identity, snapshot source, listeners.
//!
//! Kept out of the binary so that `main` is only argument parsing, logging and signals, and so
//! every start-up failure has a typed error with its exit status.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::app::{AppState, Snapshots};
use crate::config::{Config, SourceConfig};
use crate::gate::SnapshotGate;
use crate::gateway::Gateway;
use crate::inspector::{DEFAULT_SPILL_MEM_LIMIT, InspectorSource};
use crate::metrics::Metrics;
use crate::passthrough::{Upstream, UpstreamUrlError};
use crate::server::{ConnLimits, Proxy, run};
use crate::task::{self, TaskIdError};
use crate::upstream_source::UpstreamSnapshots;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    TaskId(#[from] TaskIdError),
    #[error("--upstream: {0}")]
    Upstream(#[from] UpstreamUrlError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl StartError {
    /// 2 for configuration problems, 1 for operational ones (a port in use).
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::TaskId(_) | StartError::Upstream(_) => 2,
            StartError::Bind { .. } => 1,
        }
    }
}

/// What the process environment contributes to the task id.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `ECS_CONTAINER_METADATA_URI_V4`.
    pub ecs_metadata_uri: Option<String>,
    pub hostname: Option<String>,
}

/// Starts the proxy and serves until `shutdown` resolves and the drain is over.
pub async fn start(
    config: Config,
    environment: Environment,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let public = bind(config.listen).await?;
    let admin = bind(config.admin_listen).await?;
    start_on(config, environment, public, admin, shutdown).await
}

/// Like [`start`], on listeners the caller bound (and so knows the ports of): for embedding the
/// proxy, as `heapgate demo` does.
pub async fn start_on(
    config: Config,
    environment: Environment,
    public: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let (task_id, origin) = task::discover(
        config.task_id.as_deref(),
        environment.ecs_metadata_uri.as_deref(),
        environment.hostname,
    )
    .await?;
    let snapshots = snapshots(&config);
    let upstream = Upstream::new(config.upstream.clone(), Some(config.limits.request_timeout))?;
    tracing::info!(
        task = %task_id,
        task_origin = ?origin,
        listen = %local(&public),
        admin = %local(&admin),
        upstream = %config.upstream,
        source = source_kind(&config.source),
        snapshot_path = %config.snapshot.path,
        threads = config.threads,
        "heapgate-proxy started"
    );
    let state = Arc::new(AppState {
        gate: SnapshotGate::new(config.snapshot.min_interval),
        snapshot: config.snapshot,
        task_id,
        snapshots,
        upstream,
        metrics: Arc::new(Metrics::new()),
        now: chrono::Utc::now,
    });
    let proxy = Proxy {
        state,
        limits: ConnLimits {
            max_header_bytes: config.limits.max_header_bytes,
            header_timeout: config.limits.header_timeout,
        },
        shutdown_timeout: config.shutdown_timeout,
        threads: config.threads,
    };
    run(public, admin, proxy, shutdown).await;
    Ok(())
}

fn snapshots(config: &Config) -> Snapshots {
    match &config.source {
        SourceConfig::Inspector { addr } => Snapshots::Local(Arc::new(InspectorSource::new(
            *addr,
            DEFAULT_SPILL_MEM_LIMIT,
        ))),
        SourceConfig::Upstream { path } => Snapshots::Local(Arc::new(UpstreamSnapshots::new(
            config.upstream.clone(),
            path.clone(),
        ))),
        SourceConfig::Gateway(gateway) => {
            Snapshots::Gateway(Arc::new(Gateway::new(gateway.clone())))
        }
    }
}

/// Binds a listener, naming the address in the error.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

fn local(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string())
}

fn source_kind(source: &SourceConfig) -> &'static str {
    match source {
        SourceConfig::Inspector { .. } => "inspector",
        SourceConfig::Upstream { .. } => "upstream",
        SourceConfig::Gateway(_) => "gateway",
    }
}
