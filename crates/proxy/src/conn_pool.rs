//! Idle upstream connections, kept per thread.
//!
//! Each pass-through worker is a current-thread runtime (see [`crate::workers`]), so a connection
//! opened by a request on a worker is driven by a task on that same thread. Keeping the idle
//! ones in a thread-local list means a request only ever reuses a connection its own thread
//! drives: handing a request to the connection and its response back is a wake-up inside one
//! thread, never a cross-thread (futex) one, and the pool needs no lock. On a multi-thread
//! runtime (tests, embedding) it still works: a handle is `Send`, it just may be reused from
//! another thread than the one that returned it.
//!
//! Two kinds are kept apart: hyper's client connections (the general path,
//! [`crate::passthrough::general`]) and bare sockets (the plain-request lane, [`crate::passthrough::lane`]).
//!
//! Entries are keyed by the [`crate::passthrough::upstream::Upstream`] they belong to (a process may have
//! several), and expire after the idle timeout: an expired one is never handed out, and
//! [`sweep`] (run every second by each worker) closes them even when no traffic comes.
//!
//! An app that writes more than its answer framed (Node does not enforce `Content-Length`: a
//! `res.end(more)` after the announced bytes) leaves bytes on the socket that the next request
//! would read as its answer. So a connection is checked when it is handed back, while it waits,
//! when it is taken, and once more with a non-blocking `recv(MSG_PEEK)` right before the next
//! request is written to it: bytes there are the app's, sent outside any answer, and the
//! connection is retired (never used again) and counted in `heapgate_upstream_oversent_total`.
//! Bytes that arrive after the next request has gone out cannot be told from its answer (nginx
//! and HAProxy share this limit; see docs/sidecar.md). A look right after the write would not settle
//! it either: a proxy thread descheduled between its write and its look sees the real answer
//! there, and would retire a good connection and re-send or fail the request.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::thread::LocalKey;
use std::time::{Duration, Instant};

use axum::body::Body;
use hyper::client::conn::http1::SendRequest;
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What is waiting to be read on a socket, found without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unread {
    Nothing,
    Bytes,
    /// The peer closed (or the socket failed).
    Closed,
}

/// A non-blocking `recv(MSG_PEEK)` of one byte: a system call, so it sees what has arrived even
/// before the runtime's next look at its sockets.
pub(crate) fn unread(stream: &TcpStream) -> Unread {
    let mut byte = [MaybeUninit::<u8>::uninit(); 1];
    match socket2::SockRef::from(stream).peek(&mut byte) {
        Ok(0) => Unread::Closed,
        Ok(_) => Unread::Bytes,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Unread::Nothing,
        Err(_) => Unread::Closed,
    }
}

/// Whether a pooled connection can carry the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Open,
    Closed,
    /// The app sent bytes outside an answer: retired.
    Oversent,
}

/// What the general path's connection saw of the app's bytes, shared between the socket hyper
/// drives ([`Watched`]) and the pooled handle.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    /// Pooled: between an answer's end and the next request's first write.
    idle: AtomicBool,
    /// Reused: look for unread bytes right before the next write.
    before_write: AtomicBool,
    oversent: AtomicBool,
}

/// The upstream socket as hyper's client connection uses it: bytes that arrive while the
/// connection is idle, or that are there right before a request on a reused connection is
/// written, mark it as over-sent.
pub(crate) struct Watched {
    stream: TcpStream,
    watch: Arc<Watch>,
}

impl Watched {
    pub(crate) fn new(stream: TcpStream, watch: Arc<Watch>) -> Watched {
        Watched { stream, watch }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(())))
            && buf.filled().len() > before
            && self.watch.idle.load(Ordering::Relaxed)
        {
            self.watch.oversent.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.writing();
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.written(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.writing();
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.written(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Watched {
    /// Before the first write of a request on a reused connection: anything readable was sent
    /// before the app could have read the request.
    fn writing(&self) {
        if self.watch.before_write.swap(false, Ordering::Relaxed)
            && unread(&self.stream) == Unread::Bytes
        {
            self.watch.oversent.store(true, Ordering::Relaxed);
        }
    }

    /// After a write: the connection carries a request now.
    fn written(&self, polled: &Poll<io::Result<usize>>) {
        if matches!(polled, Poll::Ready(Ok(n)) if *n > 0) {
            self.watch.idle.store(false, Ordering::Relaxed);
        }
    }
}

/// hyper's connection future (with upgrades), whose type cannot be named.
type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// An HTTP/1.1 connection to the upstream: the handle requests are sent on, and the
/// connection's I/O state machine, which has no task of its own: whoever uses the connection
/// polls it ([`UpstreamConn::drive`]) from the task that serves the client's connection. Reading
/// the app's answer then wakes that task directly, instead of a connection task that would in
/// turn wake it.
pub(crate) struct UpstreamConn {
    pub(crate) sender: SendRequest<Body>,
    /// `None` once the connection has ended.
    driver: Option<Driver>,
    watch: Arc<Watch>,
}

impl UpstreamConn {
    pub(crate) fn new(
        sender: SendRequest<Body>,
        driver: impl Future<Output = hyper::Result<()>> + Send + 'static,
        watch: Arc<Watch>,
    ) -> UpstreamConn {
        UpstreamConn {
            sender,
            driver: Some(Box::pin(driver)),
            watch,
        }
    }

    /// Whether the app has sent bytes outside an answer on this connection.
    pub(crate) fn oversent(&self) -> bool {
        self.watch.oversent.load(Ordering::Relaxed)
    }

    /// Makes progress on the connection's reads and writes, registering the current task for
    /// its socket. Returns `false` once the connection has ended.
    pub(crate) fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(driver) = self.driver.as_mut()
            && let Poll::Ready(result) = driver.as_mut().poll(cx)
        {
            if let Err(e) = result {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
            self.driver = None;
        }
        self.driver.is_some()
    }

    /// Hands the connection's I/O to a task of its own: after a `101` it must be polled until
    /// it gives up the socket to the tunnel, whoever else is polled.
    pub(crate) fn detach(self) {
        if let Some(driver) = self.driver {
            tokio::spawn(async move {
                if let Err(e) = driver.await {
                    tracing::debug!(error = %e, "upstream connection ended with an error");
                }
            });
        }
    }

    fn is_closed(&self) -> bool {
        self.driver.is_none() || self.sender.is_closed()
    }
}

/// A kind of upstream connection kept idle per thread: hyper's ([`UpstreamConn`], for the
/// general path) or a bare socket ([`RawConn`], for the plain-request lane).
pub(crate) trait Pooled: Sized + 'static {
    /// This thread's idle connections of this kind.
    fn pools() -> &'static LocalKey<RefCell<Vec<Pool<Self>>>>;
    /// Whether the connection can carry another request.
    fn state(&mut self) -> State;
    /// Marks the connection idle (its answer is complete), or about to be reused.
    fn mark(&mut self, reused: bool);
}

impl Pooled for UpstreamConn {
    fn pools() -> &'static LocalKey<RefCell<Vec<Pool<Self>>>> {
        &HYPER
    }

    /// hyper reads an idle connection when polled (bytes there end it): polled once here, and
    /// the socket looked at directly.
    fn state(&mut self) -> State {
        self.drive(&mut Context::from_waker(Waker::noop()));
        if self.oversent() {
            return State::Oversent;
        }
        if self.is_closed() {
            return State::Closed;
        }
        State::Open
    }

    fn mark(&mut self, reused: bool) {
        if reused {
            self.watch.before_write.store(true, Ordering::Relaxed);
        } else {
            self.watch.idle.store(true, Ordering::Relaxed);
        }
    }
}

/// A kept-alive socket to the upstream, between two exchanges of the plain-request lane.
pub(crate) struct RawConn {
    pub(crate) stream: TcpStream,
}

impl Pooled for RawConn {
    fn pools() -> &'static LocalKey<RefCell<Vec<Pool<Self>>>> {
        &RAW
    }

    /// An idle HTTP/1 connection has nothing to say: anything readable is the app closing it,
    /// or bytes it sent outside an answer. Tokio clears read readiness after a short read and
    /// sets it when the socket has news, so a healthy idle socket costs no system call here; the
    /// lane then looks again, with one, right before it writes the next request.
    fn state(&mut self) -> State {
        if self
            .stream
            .poll_read_ready(&mut Context::from_waker(Waker::noop()))
            .is_pending()
        {
            return State::Open;
        }
        match unread(&self.stream) {
            Unread::Nothing => State::Open,
            Unread::Bytes => State::Oversent,
            Unread::Closed => State::Closed,
        }
    }

    /// The lane looks after the write itself.
    fn mark(&mut self, _reused: bool) {}
}

struct Idle<T> {
    conn: T,
    since: Instant,
}

/// One upstream's idle connections of one kind, on one thread.
pub(crate) struct Pool<T> {
    upstream: u64,
    idle_timeout: Duration,
    /// `heapgate_upstream_oversent_total`.
    oversent: Counter,
    /// Oldest first; connections are reused newest first so the old ones can expire.
    idle: Vec<Idle<T>>,
}

/// Idle connections kept per upstream on one thread, at most this many (the rest are closed).
const MAX_IDLE_PER_THREAD: usize = 1024;

thread_local! {
    static HYPER: RefCell<Vec<Pool<UpstreamConn>>> = const { RefCell::new(Vec::new()) };
    static RAW: RefCell<Vec<Pool<RawConn>>> = const { RefCell::new(Vec::new()) };
}

/// The most recently used idle connection to `upstream` that is still open, not expired and
/// has nothing unread; the ones found over-sent are counted in the pool's counter.
pub(crate) fn checkout<T: Pooled>(upstream: u64, now: Instant) -> Option<T> {
    T::pools().with_borrow_mut(|pools| {
        let pool = pools.iter_mut().find(|p| p.upstream == upstream)?;
        while let Some(mut idle) = pool.idle.pop() {
            if now.saturating_duration_since(idle.since) >= pool.idle_timeout {
                continue;
            }
            match idle.conn.state() {
                State::Open => {
                    idle.conn.mark(true);
                    return Some(idle.conn);
                }
                State::Oversent => retire(&pool.oversent),
                State::Closed => {}
            }
        }
        None
    })
}

/// Counts a connection retired because the app sent bytes outside an answer.
pub(crate) fn retire(oversent: &Counter) {
    tracing::warn!("the app sent bytes after its answer's end: upstream connection retired");
    oversent.inc();
}

/// Returns a connection whose last response is complete.
pub(crate) fn checkin<T: Pooled>(
    upstream: u64,
    idle_timeout: Duration,
    oversent: &Counter,
    mut conn: T,
    now: Instant,
) {
    conn.mark(false);
    match conn.state() {
        State::Open => {}
        State::Oversent => return retire(oversent),
        State::Closed => return,
    }
    // A connection handed back while the thread is being torn down is simply closed.
    let _ = T::pools().try_with(|pools| {
        let Ok(mut pools) = pools.try_borrow_mut() else {
            return;
        };
        let index = match pools.iter().position(|p| p.upstream == upstream) {
            Some(index) => index,
            None => {
                pools.push(Pool {
                    upstream,
                    idle_timeout,
                    oversent: oversent.clone(),
                    idle: Vec::new(),
                });
                pools.len() - 1
            }
        };
        let pool = &mut pools[index];
        if pool.idle.len() < MAX_IDLE_PER_THREAD {
            pool.idle.push(Idle { conn, since: now });
        }
    });
}

/// Closes this thread's expired and closed idle connections, of both kinds.
pub(crate) fn sweep(now: Instant) {
    fn sweep_kind<T: Pooled>(now: Instant) {
        let _ = T::pools().try_with(|pools| {
            if let Ok(mut pools) = pools.try_borrow_mut() {
                for pool in pools.iter_mut() {
                    let timeout = pool.idle_timeout;
                    let oversent = &pool.oversent;
                    pool.idle.retain_mut(|idle| {
                        now.saturating_duration_since(idle.since) < timeout
                            && match idle.conn.state() {
                                State::Open => true,
                                State::Oversent => {
                                    retire(oversent);
                                    false
                                }
                                State::Closed => false,
                            }
                    });
                }
            }
        });
    }
    sweep_kind::<UpstreamConn>(now);
    sweep_kind::<RawConn>(now);
}

/// Closes every idle connection of this thread (at shutdown, so the upstream sees them go).
pub(crate) fn clear() {
    fn clear_kind<T: Pooled>() {
        let _ = T::pools().try_with(|pools| {
            if let Ok(mut pools) = pools.try_borrow_mut() {
                pools.clear();
            }
        });
    }
    clear_kind::<UpstreamConn>();
    clear_kind::<RawConn>();
}
