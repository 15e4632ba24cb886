//! From a validated [`Config`] to a running proxy: listeners, identity, the mode's snapshot
//! handler, the router, the server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::{MethodRouter, any};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::admin::{AdminState, admin_app};
use crate::config::{Config, SourceConfig};
use crate::ecs::EcsTask;
use crate::gate::SnapshotGate;
use crate::handlers::gateway::{Gateway, Routing};
use crate::handlers::profile::Profiles;
use crate::handlers::snapshot::Snapshots;
use crate::handlers::{self, Authorizer};
use crate::headroom::SnapshotRule;
use crate::metrics::{Metrics, Route};
use crate::passthrough::Passthrough;
use crate::passthrough::rules::OwnPaths;
use crate::passthrough::upstream::Upstream;
use crate::server::{ConnLimits, serve};
use crate::source::Source;
use crate::source::inspector::{DEFAULT_SPILL_MEM_LIMIT, InspectorSource};
use crate::source::upstream::UpstreamSource;
use crate::task::{self, TaskIdError};
use crate::watch::Watch;
use crate::workers::{self, Public, Workers};
use heapgate_protocol::Instrument;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    TaskId(#[from] TaskIdError),
    #[error("--store: {0}")]
    Store(String),
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
            StartError::TaskId(_) | StartError::Store(_) => 2,
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

impl Environment {
    /// This process's: `ECS_CONTAINER_METADATA_URI_V4`, and `/etc/hostname` or `HOSTNAME`.
    pub fn from_process() -> Environment {
        Environment {
            ecs_metadata_uri: std::env::var("ECS_CONTAINER_METADATA_URI_V4").ok(),
            hostname: std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .or_else(|| std::env::var("HOSTNAME").ok()),
        }
    }
}

/// A proxy whose listeners are bound (so their ports are known), ready to run.
#[derive(Debug)]
pub struct Proxy {
    config: Config,
    public: TcpListener,
    admin: TcpListener,
}

impl Proxy {
    /// Binds the public and admin listeners of `config`.
    pub async fn bind(config: Config) -> Result<Proxy, StartError> {
        let public = bind(config.listen).await?;
        let admin = bind(config.admin_listen).await?;
        Ok(Proxy {
            config,
            public,
            admin,
        })
    }

    /// The public listener's address (the port, when the configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.public.local_addr().unwrap_or(self.config.listen)
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr().unwrap_or(self.config.admin_listen)
    }

    /// Serves until `shutdown` resolves and the drain is over.
    pub async fn run(
        self,
        environment: Environment,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), StartError> {
        let Proxy {
            config,
            public,
            admin,
        } = self;
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        let ecs = read_ecs_task(&config, environment.ecs_metadata_uri.as_deref()).await;
        let identity = task::discover(&config.task_id, ecs.as_ref(), environment.hostname)?;
        let (task_id, origin) = (identity.id.clone(), identity.origin);
        let metrics = Arc::new(Metrics::new());
        tracing::info!(
            task = %task_id,
            task_origin = ?origin,
            listen = %local(&public),
            admin = %local(&admin),
            upstream = %config.upstream,
            source = source_kind(&config.source),
            snapshot_path = %config.snapshot.path,
            profile_path = %config.profile.path,
            profile_interval = config.profile.sampling.map(|s| s.interval),
            threads = config.threads,
            "heapgate-proxy started"
        );
        let gate = SnapshotGate::new(config.snapshot.min_interval);
        // One inspector source for requests, profiles and the leak watch: one session,
        // comparable ids, one sampling profiler.
        let inspector = match &config.source {
            SourceConfig::Inspector { addr } => Some(Arc::new(inspector_source(&config, *addr))),
            _ => None,
        };
        let rule = match &inspector {
            Some(inspector) => {
                let fixed = fixed_memory_limit(&config, ecs.as_ref());
                if let Some((limit, from)) = &fixed {
                    tracing::info!(limit, from = %from, "headroom rule: the app's memory limit");
                }
                if config.headroom.unsafe_override {
                    tracing::warn!(
                        "--unsafe-snapshot-without-headroom: snapshots are taken even when they are expected not to fit; the kernel may kill the app"
                    );
                }
                Some(Arc::new(SnapshotRule::new(
                    Arc::clone(inspector),
                    fixed,
                    config.headroom.unsafe_override,
                )))
            }
            None => None,
        };
        let watcher = match (&inspector, &rule) {
            (Some(inspector), Some(rule)) => Watch::new(
                &config.watch,
                config.snapshot.redact_strings,
                crate::watch::Shared {
                    inspector: Arc::clone(inspector),
                    rule: Arc::clone(rule),
                    gate: Arc::clone(&gate),
                    metrics: Arc::clone(&metrics),
                    task: task_id.clone(),
                },
                chrono::Utc::now,
            )
            .map_err(StartError::Store)?,
            _ => None,
        };
        let routes = Routes::new(
            &config,
            &task_id,
            Arc::clone(&gate),
            &metrics,
            chrono::Utc::now,
            inspector.clone().map(|i| i as Arc<dyn Source>),
            &Own {
                inspector: inspector.clone(),
                rule,
            },
        );
        let serving = Serving {
            public: Workers {
                public: Arc::new(routes.into_public(&config)),
                limits: ConnLimits {
                    max_header_bytes: config.limits.max_header_bytes,
                    header_timeout: config.limits.header_timeout,
                    send_timeout: config.limits.send_timeout,
                },
                threads: config.threads,
                max_connections: config.limits.max_connections,
                drain: config.shutdown_timeout,
            },
            metrics,
        };
        let watcher = watcher.map(|watch| tokio::spawn(watch.run()));
        // Sampling runs from the start, not from the first request: keep a session open.
        let sampler = inspector
            .filter(|inspector| inspector.samples())
            .map(|inspector| tokio::spawn(keep_session(inspector)));
        run(public, admin, serving, shutdown).await;
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        if let Some(sampler) = sampler {
            sampler.abort();
        }
        Ok(())
    }
}

/// How often a sampling sidecar without a session tries to open one (the app may start later,
/// or restart).
const SESSION_RETRY: Duration = Duration::from_secs(5);

/// Opens the inspector session at start and again whenever it is gone, so the sampling heap
/// profiler always runs (a heap sample opens it; between snapshots it costs the app one
/// `Runtime.evaluate`).
async fn keep_session(inspector: Arc<InspectorSource>) {
    let mut told = false;
    loop {
        if inspector.session().is_none() {
            match inspector.sample_heap().await {
                Ok(_) => told = false,
                Err(e) if !told => {
                    tracing::warn!(error = %e, "cannot open the inspector session for sampling yet; retrying");
                    told = true;
                }
                Err(_) => {}
            }
        }
        tokio::time::sleep(SESSION_RETRY).await;
    }
}

/// The inspector source for `config`, sampling if configured.
fn inspector_source(config: &Config, addr: SocketAddr) -> InspectorSource {
    let source = InspectorSource::new(addr, DEFAULT_SPILL_MEM_LIMIT);
    match config.profile.sampling {
        Some(sampling) => source.with_sampling(sampling),
        None => source,
    }
}

/// The ECS task metadata, read once, when on ECS (`ecs_metadata_uri`) and something needs it:
/// the task id, or the app's memory limit for the inspector's headroom rule.
async fn read_ecs_task(config: &Config, ecs_metadata_uri: Option<&str>) -> Option<EcsTask> {
    let base = ecs_metadata_uri.filter(|u| !u.is_empty())?;
    let for_id = matches!(config.task_id, crate::config::TaskIdSource::Discover);
    let for_limit = matches!(config.source, SourceConfig::Inspector { .. })
        && config.headroom.app_memory_limit.is_none();
    if !(for_id || for_limit) {
        return None;
    }
    Some(EcsTask::read(base).await)
}

/// The app's memory limit known at start: `--app-memory-limit`, else the ECS task's. Without
/// either, the headroom rule looks for the app's cgroup at each snapshot.
fn fixed_memory_limit(config: &Config, ecs: Option<&EcsTask>) -> Option<(u64, String)> {
    if let Some(limit) = config.headroom.app_memory_limit {
        return Some((limit, "--app-memory-limit".to_owned()));
    }
    match &ecs?.read {
        Ok(task) => task
            .memory
            .map(|limit| (limit, "the ECS task's memory".to_owned())),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the task's memory limit from the ECS metadata; the headroom rule falls back to the app's cgroup");
            None
        }
    }
}

/// What the public listener serves for `config`: the mode's snapshot handler, the profile
/// handler (inspector and gateway modes), and pass-through.
pub(crate) struct Routes {
    pub(crate) snapshot: MethodRouter,
    pub(crate) profile: Option<MethodRouter>,
    pub(crate) passthrough: Arc<Passthrough>,
}

/// The inspector pieces the routes share with the leak watch (none in other modes, or in tests
/// that inject a stub source).
#[derive(Default)]
pub(crate) struct Own {
    pub(crate) inspector: Option<Arc<InspectorSource>>,
    pub(crate) rule: Option<Arc<SnapshotRule>>,
}

impl Routes {
    /// `source` replaces the configured snapshot source (tests inject stubs).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: &Config,
        task: &heapgate_protocol::TaskId,
        gate: Arc<SnapshotGate>,
        metrics: &Arc<Metrics>,
        now: fn() -> chrono::DateTime<chrono::Utc>,
        source: Option<Arc<dyn Source>>,
        own: &Own,
    ) -> Routes {
        let snapshot = &config.snapshot;
        let authorizer_for = |instrument| {
            Authorizer::new(
                snapshot.keys.clone(),
                &snapshot.value,
                instrument,
                snapshot.window,
                now,
            )
        };
        let authorizer = authorizer_for(Instrument::Snapshot);
        let local = |source: Arc<dyn Source>| -> MethodRouter {
            any(handlers::snapshot::handle).with_state(Arc::new(Snapshots {
                authorizer: authorizer.clone(),
                task: task.clone(),
                source,
                gate: Arc::clone(&gate),
                metrics: Arc::clone(metrics),
                compression: snapshot.compression.clone(),
                redact_strings: snapshot.redact_strings,
                heartbeat: snapshot.heartbeat,
                headroom: own.rule.clone(),
                profile_path: config.profile.path.clone(),
            }))
        };
        let mut profile = own.inspector.as_ref().map(|inspector| {
            any(handlers::profile::handle).with_state(Arc::new(Profiles {
                authorizer: authorizer_for(Instrument::Profile),
                task: task.clone(),
                inspector: Arc::clone(inspector),
                rate: SnapshotGate::new(config.profile.min_interval),
                snapshots: Arc::clone(&gate),
                metrics: Arc::clone(metrics),
                compression: snapshot.compression.clone(),
            }))
        });
        let handler = match (&config.source, source) {
            (_, Some(source)) => local(source),
            (SourceConfig::Inspector { addr }, None) => {
                local(Arc::new(inspector_source(config, *addr)))
            }
            (SourceConfig::Upstream { path }, None) => local(Arc::new(UpstreamSource::new(
                config.upstream.uri().clone(),
                path.clone(),
            ))),
            (SourceConfig::Gateway(gateway), None) => {
                let shared = Arc::new(Gateway::new(gateway.clone()));
                profile = Some(any(handlers::gateway::handle).with_state(Arc::new(Routing {
                    authorizer: authorizer_for(Instrument::Profile),
                    gateway: Arc::clone(&shared),
                    metrics: Arc::clone(metrics),
                    route: Route::Profile,
                    upstream_path: config.profile.upstream_path.clone(),
                })));
                any(handlers::gateway::handle).with_state(Arc::new(Routing {
                    authorizer: authorizer.clone(),
                    gateway: shared,
                    metrics: Arc::clone(metrics),
                    route: Route::Snapshot,
                    upstream_path: gateway.path.clone(),
                }))
            }
        };
        let upstream = Upstream::new(
            &config.upstream,
            Some(config.limits.request_timeout),
            metrics.upstream_oversent(),
        )
        .allowing_upgrades(&config.upgrades);
        let passthrough = Arc::new(Passthrough {
            upstream,
            own: OwnPaths {
                snapshot: snapshot.path.clone(),
                profile: profile.as_ref().map(|_| config.profile.path.clone()),
                guarded: snapshot.guarded_paths.clone(),
                health: snapshot.health_paths.clone(),
                gate,
            },
            metrics: Arc::clone(metrics),
            lane: config.lane,
        });
        Routes {
            snapshot: handler,
            profile,
            passthrough,
        }
    }

    /// The public service: the snapshot and profile paths' router and passthrough. Must be
    /// called inside the home runtime.
    pub(crate) fn into_public(self, config: &Config) -> Public {
        let mut own_routes = Router::new().route_service(&config.snapshot.path, self.snapshot);
        if let Some(profile) = self.profile {
            own_routes = own_routes.route_service(&config.profile.path, profile);
        }
        Public::new(self.passthrough, own_routes)
    }
}

/// Binds a listener, naming the address in the error.
async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
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

/// A proxy ready to run: its routes' state and its listeners' settings.
pub(crate) struct Serving {
    /// Pass-through and the snapshot path, as the workers serve them.
    pub(crate) public: Workers,
    pub(crate) metrics: Arc<Metrics>,
}

/// Runs the public listener (on the workers' threads) and the admin listener (on
/// the calling runtime) until `shutdown` resolves. Then readiness turns 503, the
/// public listener stops accepting, and in-flight requests (a snapshot stream included) get up to
/// `shutdown_timeout` to finish; the admin listener stays up until they have.
pub(crate) async fn run(
    public: TcpListener,
    admin: TcpListener,
    proxy: Serving,
    shutdown: impl Future<Output = ()>,
) {
    let draining = Arc::new(AtomicBool::new(false));
    let admin_state = Arc::new(AdminState {
        metrics: Arc::clone(&proxy.metrics),
        draining: Arc::clone(&draining),
    });
    let (stop_admin, admin_stopped) = oneshot::channel::<()>();
    let admin_task = tokio::spawn(serve(
        admin,
        admin_app(admin_state),
        ConnLimits::default(),
        async {
            let _ = admin_stopped.await;
        },
        Duration::from_secs(1),
    ));
    let shutdown = async {
        shutdown.await;
        draining.store(true, Ordering::SeqCst);
        tracing::info!("shutting down: readyz answers 503, no new connections");
    };
    let public = match public.into_std() {
        Ok(public) => public,
        Err(e) => {
            tracing::error!(error = %e, "cannot hand the public listener to the workers");
            let _ = stop_admin.send(());
            let _ = admin_task.await;
            return;
        }
    };
    let cut = workers::serve(public, proxy.public, shutdown).await;
    if cut == 0 {
        tracing::info!("all connections finished");
    }
    let _ = stop_admin.send(());
    let _ = admin_task.await;
}
