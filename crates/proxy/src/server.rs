//! Accept loop with connection limits and graceful shutdown.
//!
//! Served by hand rather than with `axum::serve` to set what a sidecar in front of production
//! traffic needs: a cap on the request head, a deadline for slow clients sending it, upgrades
//! (WebSocket pass-through), and a drain that lets in-flight requests and a running snapshot
//! finish within a bounded time.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use tower::ServiceExt;

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub max_header_bytes: usize,
    pub header_timeout: Duration,
    /// A write that makes no progress this long cuts the connection (see [`SendTimeout`]).
    pub send_timeout: Duration,
}

/// The next connection; failures (out of file descriptors and the like) are logged and retried
/// after a pause instead of spinning. Cancel-safe, for `select!`.
pub(crate) async fn accept(listener: &TcpListener) -> (tokio::net::TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl ConnLimits {
    /// An HTTP/1 server connection builder with these limits.
    pub(crate) fn http1(&self) -> http1::Builder {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            // max_header_size checks the whole parsed head exactly; max_buf_size alone is only
            // checked when a read leaves the head incomplete.
            .max_header_size(self.max_header_bytes)
            .max_buf_size(self.max_header_bytes.max(8192));
        builder
    }
}

impl Default for ConnLimits {
    fn default() -> ConnLimits {
        ConnLimits {
            max_header_bytes: 64 * 1024,
            header_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(60),
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
    let builder = limits.http1();
    // Each connection task holds a clone of `open`; shutdown flips `stop` and waits for the
    // clones to be gone (the mini-redis pattern).
    let (stop, stopped) = watch::channel(false);
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    let connections = Arc::new(());
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = connection_service(router.clone(), remote);
        let connection = builder
            .serve_connection(
                TokioIo::new(SendTimeout::new(stream, limits.send_timeout)),
                service,
            )
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

/// A connection's socket that fails a write which has made no progress for `limit`, like nginx's
/// `send_timeout`: a client that stops reading cannot hold a response open forever — nor the
/// snapshot gate, which a snapshot response holds until its body is dropped. A slow reader that
/// keeps taking bytes is never cut. The timer exists only while a write waits.
pub(crate) struct SendTimeout<S> {
    inner: S,
    limit: Duration,
    /// Armed at the first `Pending` write, disarmed by any progress.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    armed: bool,
}

impl<S> SendTimeout<S> {
    pub(crate) fn new(inner: S, limit: Duration) -> SendTimeout<S> {
        SendTimeout {
            inner,
            limit,
            timer: None,
            armed: false,
        }
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    /// After a `Pending` write: arms the timer if this is the first, and fails once it fires.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.armed {
            let deadline = tokio::time::Instant::now() + self.limit;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed = true;
        }
        match self.timer.as_mut().map(|timer| timer.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took nothing for the send timeout",
            ))),
            _ => Poll::Pending,
        }
    }

    fn progressed<T>(
        &mut self,
        polled: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => self.stalled(cx),
            ready => {
                self.armed = false;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progressed(polled, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progressed(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.progressed(polled, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A connection's socket with bytes already read from it put back in front: the lane hands a
/// connection to hyper this way, so hyper reads the request exactly as the client sent it.
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    read: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Prefixed<S> {
        Prefixed {
            prefix,
            read: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.read < this.prefix.len() {
            let left = &this.prefix[this.read..];
            let n = left.len().min(buf.remaining());
            buf.put_slice(&left[..n]);
            this.read += n;
            if this.read == this.prefix.len() {
                this.prefix = Vec::new();
                this.read = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
