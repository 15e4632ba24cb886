//! The public listener, served thread-per-core.
//!
//! A sidecar pays its costs on every request of the service, so the pass-through path is laid
//! out like nginx's event loops (and Pingora's `NoStealRuntime`): `--threads` OS threads, each
//! running its own current-thread Tokio runtime with its own accept loop on the shared listening
//! socket. A connection lives and dies on the thread that accepted it, and so do the upstream
//! connections its requests use ([`crate::conn_pool`]): no work stealing, no cross-thread wake-up
//! per request, no lock on the way. The kernel wakes the threads waiting on the socket, and the
//! one that is least busy tends to accept first.
//!
//! Each connection starts in the plain-request lane ([`crate::passthrough::lane`]), which passes
//! ordinary requests by hand; the first request it leaves, and everything after it on that
//! connection, goes to hyper's server and [`Connection::handle`]: the one public service, which
//! the in-process tests drive too ([`InProcess`]).
//!
//! The snapshot path is rare and heavy: its requests are handed to the runtime the proxy was
//! started on (the "home" runtime, which also serves the admin listener), so the inspector
//! session, the gate and the gateway's retries run there exactly as before, while the response
//! body streams back through the worker's connection.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::StatusCode;
use http_body::{Frame, SizeHint};
use http_body_util::Either;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::conn_pool;
use crate::metrics::{InFlight, Route};
use crate::passthrough::Passthrough;
use crate::passthrough::general::{self, UpstreamBody};
use crate::passthrough::lane::{Ending, Lane, Reason, Split};
use crate::passthrough::rules::{Addressed, check_host, text_answer};
use crate::passthrough::upstream::Peer;
use crate::server::{ConnLimits, Prefixed, SendTimeout, accept};

/// Threads to serve on when `--threads` is not given: the CPUs this process may use.
///
/// `std::thread::available_parallelism` on Linux takes the smallest of the CPU affinity mask
/// (`taskset`, cpusets) and the cgroup CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us` /
/// `cpu.cfs_period_us`, rounded down, at least 1), which is what ECS task and Kubernetes pod
/// CPU limits set.
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// How the workers serve connections.
pub(crate) struct Workers {
    pub(crate) public: Arc<Public>,
    pub(crate) limits: ConnLimits,
    pub(crate) threads: usize,
    /// Client connections open at once, over all workers (`--max-connections`).
    pub(crate) max_connections: usize,
    pub(crate) drain: Duration,
}

/// Serves `listener` on `threads` worker threads until `shutdown` resolves, then stops
/// accepting and gives open connections up to `drain` to finish. Returns how many were still
/// open when time ran out. Must be called inside a Tokio runtime (the home runtime).
pub(crate) async fn serve(
    listener: std::net::TcpListener,
    workers: Workers,
    shutdown: impl Future<Output = ()>,
) -> usize {
    let (stop, stopped) = watch::channel(false);
    // Every open connection, on any worker, holds a clone.
    let connections = Arc::new(());
    // A permit per open connection: at the cap, workers stop accepting (new connections wait in
    // the kernel's queue) until one closes.
    let permits = Arc::new(Semaphore::new(
        workers.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let mut finished = Vec::with_capacity(workers.threads);
    for index in 0..workers.threads {
        let listener = match listener.try_clone() {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot share the listener with another worker");
                break;
            }
        };
        let worker = Worker {
            listener,
            shared: Arc::clone(&workers.public),
            limits: workers.limits,
            stopped: stopped.clone(),
            connections: Arc::clone(&connections),
            permits: Arc::clone(&permits),
            drain: workers.drain,
        };
        let (done, finished_one) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("heapgate-worker-{index}"))
            .spawn(move || {
                let _ = done.send(worker.run());
            });
        match spawned {
            Ok(_) => finished.push(finished_one),
            Err(e) => tracing::warn!(error = %e, "cannot start a worker thread"),
        }
    }
    drop(listener);
    if finished.is_empty() {
        tracing::error!("no worker thread could start: the public listener is not served");
    }
    shutdown.await;
    let _ = stop.send(true);
    // Wait for the workers to have stopped accepting before counting what is still open.
    let still_open = Arc::strong_count(&connections) - 1;
    if still_open > 0 {
        tracing::info!(
            connections = still_open,
            drain = ?workers.drain,
            "draining open connections"
        );
    }
    let mut left = 0;
    for finished_one in finished {
        left += finished_one.await.unwrap_or(0);
    }
    if left > 0 {
        tracing::warn!(
            connections = left,
            drain = ?workers.drain,
            "shutdown timeout: closing remaining connections"
        );
    }
    left
}

/// The public service, as every connection on every worker shares it.
pub(crate) struct Public {
    passthrough: Arc<Passthrough>,
    /// The router of the snapshot and profile paths (the mode's handlers).
    own_routes: Router,
    /// The runtime the snapshot path runs on.
    home: Handle,
}

impl Public {
    /// Must be called inside the home runtime.
    pub(crate) fn new(passthrough: Arc<Passthrough>, own_routes: Router) -> Public {
        Public {
            passthrough,
            own_routes,
            home: Handle::current(),
        }
    }
}

struct Worker {
    listener: std::net::TcpListener,
    shared: Arc<Public>,
    limits: ConnLimits,
    stopped: watch::Receiver<bool>,
    connections: Arc<()>,
    permits: Arc<Semaphore>,
    drain: Duration,
}

impl Worker {
    /// The worker thread: its own runtime, accepting until told to stop, then draining.
    fn run(self) -> usize {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::error!(error = %e, "cannot start a worker runtime");
                return 0;
            }
        };
        let left = runtime.block_on(self.serve());
        conn_pool::clear();
        left
    }

    async fn serve(self) -> usize {
        let Worker {
            listener,
            shared,
            limits,
            mut stopped,
            connections,
            permits,
            drain,
        } = self;
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(error = %e, "cannot register the listener with a worker");
                return 0;
            }
        };
        // Each connection task holds a clone of `open` (and counts itself in `this_worker`);
        // the drain waits for the clones to be gone (the mini-redis pattern).
        let (open, mut all_closed) = mpsc::channel::<()>(1);
        let this_worker = Arc::new(());
        // Idle upstream connections of this thread expire even when no request comes.
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // One shutdown signal per connection: a oneshot costs a connection's poll two atomic
        // loads, where a shared `watch` would take a lock on every wake-up.
        let mut closers: Vec<oneshot::Sender<()>> = Vec::new();
        let mut permit = None;
        loop {
            let (stream, remote) = tokio::select! {
                biased;
                _ = stopped.changed() => break,
                _ = sweep.tick() => {
                    conn_pool::sweep(Instant::now());
                    closers.retain(|closer| !closer.is_closed());
                    continue;
                }
                acquired = Arc::clone(&permits).acquire_owned(), if permit.is_none() => {
                    permit = acquired.ok();
                    continue;
                }
                accepted = accept(&listener), if permit.is_some() => accepted,
            };
            let _ = stream.set_nodelay(true);
            let (closer, closing) = oneshot::channel::<()>();
            closers.push(closer);
            let tracked = (
                open.clone(),
                Arc::clone(&connections),
                Arc::clone(&this_worker),
                permit.take(),
            );
            tokio::spawn(serve_connection(
                Arc::clone(&shared),
                stream,
                remote,
                limits,
                closing,
                tracked,
            ));
        }
        for closer in closers {
            let _ = closer.send(());
        }
        drop(listener);
        conn_pool::clear();
        drop(open);
        match tokio::time::timeout(drain, all_closed.recv()).await {
            Ok(_) => 0,
            Err(_) => Arc::strong_count(&this_worker) - 1,
        }
    }
}

/// One client connection: the plain-request lane first, hyper's general path from the first
/// request the lane leaves to it.
async fn serve_connection<T>(
    shared: Arc<Public>,
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    limits: ConnLimits,
    mut closing: oneshot::Receiver<()>,
    _tracked: T,
) {
    let peer = Peer::new(remote);
    let mut socket = SendTimeout::new(stream, limits.send_timeout);
    let passthrough = &shared.passthrough;
    let ending = if passthrough.lane {
        let lane = Lane {
            passthrough,
            peer: &peer,
            limits,
        };
        lane.serve(&mut socket, &mut closing).await
    } else {
        Ending::General(Vec::new(), Reason::LaneOff)
    };
    let unread = match ending {
        Ending::Done => return,
        Ending::General(unread, reason) => {
            Split::General(reason).count(&passthrough.metrics);
            unread
        }
    };
    let connection = Arc::new(Connection::new(Arc::clone(&shared), remote));
    let service = hyper::service::service_fn(move |request| {
        let connection = Arc::clone(&connection);
        async move { Ok::<_, Infallible>(connection.handle(request).await) }
    });
    // Boxed: a connection's task is as large as its largest state, and most connections never
    // get here; an idle one then costs its socket and a small task.
    let mut serving = Box::pin(
        limits
            .http1()
            .serve_connection(TokioIo::new(Prefixed::new(unread, socket)), service)
            .with_upgrades(),
    );
    let result = tokio::select! {
        biased;
        result = serving.as_mut() => result,
        _ = closing => {
            // Finish the request in flight (a snapshot stream included), then close.
            serving.as_mut().graceful_shutdown();
            serving.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// One client connection on a worker.
struct Connection {
    shared: Arc<Public>,
    /// The client as written into `X-Forwarded-For`.
    peer: Peer,
    remote: SocketAddr,
    /// Requests this connection's general path has begun: the first is the one the lane
    /// handed over (counted then), the rest are counted as `later`.
    begun: std::sync::atomic::AtomicU64,
}

/// A response on the public listener.
type PublicResponse = http::Response<Counted>;

impl Connection {
    fn new(shared: Arc<Public>, remote: SocketAddr) -> Connection {
        Connection {
            shared,
            peer: Peer::new(remote),
            remote,
            begun: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The public service for one request: counted in flight, the `Host` rules, then whoever
    /// answers its path (the snapshot route, the proxy itself, or the app).
    async fn handle<B>(self: Arc<Self>, mut request: http::Request<B>) -> PublicResponse
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // Counted from here until the answer's body is sent or dropped, or this future is
        // (hyper drops it when the client leaves before the answer).
        let in_flight = InFlight::start(&self.shared.passthrough.metrics);
        let passthrough = &self.shared.passthrough;
        let metrics = &passthrough.metrics;
        if self
            .begun
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            > 0
        {
            Split::General(Reason::Later).count(metrics);
        }
        if let Err(why) = check_host(&mut request) {
            metrics.request(Route::Passthrough, StatusCode::BAD_REQUEST);
            let response = text_answer(StatusCode::BAD_REQUEST, why);
            return counted(response.map(Either::Right), in_flight);
        }
        let path = request.uri().path();
        let (route, response) = match passthrough.own.classify(path) {
            Addressed::Route => {
                let response = self.snapshot(request).await;
                return counted(response.map(Either::Right), in_flight);
            }
            Addressed::App => {
                let response =
                    general::forward(&passthrough.upstream, request, Some(&self.peer)).await;
                metrics.request(Route::Passthrough, response.status());
                return counted(response, in_flight);
            }
            Addressed::Guarded => {
                // `path` is recorded as a string field: escaped in text and JSON logs alike.
                tracing::warn!(
                    path,
                    "refused a spelling of a snapshot path on the pass-through route"
                );
                (
                    Route::Snapshot,
                    text_answer(StatusCode::NOT_FOUND, "not found\n"),
                )
            }
            Addressed::Refused(why) => {
                tracing::debug!(
                    path,
                    status = why.status().as_u16(),
                    "refused a request path"
                );
                (Route::Passthrough, text_answer(why.status(), why.body()))
            }
            Addressed::Health => (
                Route::Health,
                text_answer(StatusCode::OK, "ok: snapshot in progress\n"),
            ),
        };
        metrics.request(route, response.status());
        counted(response.map(Either::Right), in_flight)
    }

    /// Runs the snapshot route on the home runtime; the body streams back through this
    /// connection. Dropping the answer (the client left) cancels the handler, as it would if it
    /// ran here.
    async fn snapshot<B>(&self, mut request: http::Request<B>) -> axum::response::Response
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        request.extensions_mut().insert(ConnectInfo(self.remote));
        let routes = self.shared.own_routes.clone();
        let mut handler = AbortOnDrop(self.shared.home.spawn(routes.oneshot(request)));
        match (&mut handler.0).await {
            Ok(Ok(response)) => response,
            Ok(Err(infallible)) => match infallible {},
            Err(e) => {
                tracing::error!(error = %e, "the snapshot handler failed");
                text_answer(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
            }
        }
    }
}

/// An in-process client connection to the public service, for tests: each request goes through
/// `Connection::handle`, as on a worker after the lane (which needs a socket) has handed the
/// connection over.
#[derive(Clone)]
pub struct InProcess(Arc<Connection>);

impl InProcess {
    /// A connection from `remote`. Must be called inside the runtime the snapshot path runs on.
    pub(crate) fn new(public: Arc<Public>, remote: SocketAddr) -> InProcess {
        InProcess(Arc::new(Connection::new(public, remote)))
    }

    /// One request and its answer.
    pub async fn send(&self, request: http::Request<Body>) -> axum::response::Response {
        Arc::clone(&self.0).handle(request).await.map(Body::new)
    }
}

/// The response, counted in flight until its body has been sent or dropped.
fn counted(
    response: http::Response<Either<UpstreamBody, Body>>,
    in_flight: InFlight,
) -> PublicResponse {
    response.map(|body| Counted {
        body,
        _in_flight: in_flight,
    })
}

struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A response body that keeps its request counted in flight.
pub(crate) struct Counted {
    body: Either<UpstreamBody, Body>,
    _in_flight: InFlight,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
