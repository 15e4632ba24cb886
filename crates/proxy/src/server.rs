//! Accept loop with connection limits and graceful shutdown.
//!
//! Served by hand rather than with `axum::serve` to set what a sidecar in front of production
//! traffic needs: a cap on the request head, a deadline for slow clients sending it, upgrades
//! (WebSocket pass-through), and a drain that lets in-flight requests and a running snapshot
//! finish within a bounded time.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use tower::ServiceExt;

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub max_header_bytes: usize,
    pub header_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> ConnLimits {
        ConnLimits {
            max_header_bytes: 64 * 1024,
            header_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits up to
/// `drain` for open connections to finish. Returns how many were still open when time ran out.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> usize {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // max_header_size checks the whole parsed head exactly; max_buf_size alone is only
        // checked when a read leaves the head incomplete.
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(8192));
    // Each connection task holds a clone of `open`; shutdown flips `stop` and waits for the
    // clones to be gone (the mini-redis pattern).
    let (stop, stopped) = watch::channel(false);
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    let connections = Arc::new(());
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = connection_service(router.clone(), remote);
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let (mut stopped, open, counted) =
            (stopped.clone(), open.clone(), Arc::clone(&connections));
        tokio::spawn(async move {
            let _tracked = (open, counted);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stopped.changed() => {
                    // Finish the request in flight (a snapshot stream included), then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(open);
    let still_open = Arc::strong_count(&connections) - 1;
    if still_open > 0 {
        tracing::info!(
            connections = still_open,
            ?drain,
            "draining open connections"
        );
    }
    match tokio::time::timeout(drain, all_closed.recv()).await {
        Ok(_) => 0,
        Err(_) => {
            let left = Arc::strong_count(&connections) - 1;
            tracing::warn!(
                connections = left,
                ?drain,
                "shutdown timeout: closing remaining connections"
            );
            left
        }
    }
}

/// The router as a hyper service for one connection, with the peer address attached the way
/// axum's `ConnectInfo` extractor expects it.
fn connection_service(
    router: Router,
    remote: SocketAddr,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        router.clone().oneshot(request)
    })
}
