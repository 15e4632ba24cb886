//! `heapgate-proxy`: see `heapgate-proxy --help` and the README.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use heapgate_proxy::app::{AppState, Snapshots};
use heapgate_proxy::config::{Args, Config, LogFormat, SourceConfig};
use heapgate_proxy::gate::SnapshotGate;
use heapgate_proxy::gateway::Gateway;
use heapgate_proxy::inspector::InspectorSource;
use heapgate_proxy::metrics::Metrics;
use heapgate_proxy::passthrough::Upstream;
use heapgate_proxy::server::{ConnLimits, Proxy, run};
use heapgate_proxy::task;
use heapgate_proxy::upstream_source::UpstreamSnapshots;
use tokio::net::TcpListener;

/// Memory a snapshot stream may hold before spilling to a temp file.
const SPILL_MEMORY: usize = 4 << 20;

fn main() -> ExitCode {
    let config = match Config::from_args(Args::parse(), |name| std::env::var_os(name)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("heapgate-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(start(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            // No usable task id is a configuration problem; anything else (a port that cannot
            // be bound) is an operational failure.
            let config_error = e.downcast_ref::<task::TaskIdError>().is_some();
            ExitCode::from(if config_error { 2 } else { 1 })
        }
    }
}

async fn start(config: Config) -> anyhow::Result<()> {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let ecs = std::env::var("ECS_CONTAINER_METADATA_URI_V4").ok();
    let hostname = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned());
    let hostname = hostname.or_else(|| std::env::var("HOSTNAME").ok());
    let (task_id, origin) =
        task::discover(config.task_id.as_deref(), ecs.as_deref(), hostname).await?;

    let snapshots = match &config.source {
        SourceConfig::Inspector { addr } => {
            Snapshots::Local(Arc::new(InspectorSource::new(*addr, SPILL_MEMORY)))
        }
        SourceConfig::Upstream { path } => Snapshots::Local(Arc::new(UpstreamSnapshots::new(
            config.upstream.clone(),
            path.clone(),
        ))),
        SourceConfig::Gateway(gateway) => {
            Snapshots::Gateway(Arc::new(Gateway::new(gateway.clone())))
        }
    };
    let upstream = Upstream::new(config.upstream.clone(), Some(config.limits.request_timeout))?;
    let public = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let admin = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", config.admin_listen))?;
    tracing::info!(
        task = %task_id, task_origin = ?origin, listen = %public.local_addr()?,
        admin = %admin.local_addr()?, upstream = %config.upstream, source = ?source_kind(&config.source),
        snapshot_path = %config.snapshot.path, "heapgate-proxy started"
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
    };
    run(public, admin, proxy, shutdown_signal()).await;
    Ok(())
}

fn source_kind(source: &SourceConfig) -> &'static str {
    match source {
        SourceConfig::Inspector { .. } => "inspector",
        SourceConfig::Upstream { .. } => "upstream",
        SourceConfig::Gateway(_) => "gateway",
    }
}

/// Resolves on SIGTERM (what ECS and Kubernetes send) or SIGINT.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
