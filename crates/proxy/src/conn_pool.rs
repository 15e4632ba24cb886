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
//! [`crate::passthrough`]) and bare sockets (the plain-request lane, [`crate::lane`]).
//!
//! Entries are keyed by the [`crate::passthrough::Upstream`] they belong to (a process may have
//! several), and expire after the idle timeout: an expired one is never handed out, and
//! [`sweep`] (run every second by each worker) closes them even when no traffic comes.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::thread::LocalKey;
use std::time::{Duration, Instant};

use axum::body::Body;
use hyper::client::conn::http1::SendRequest;
use tokio::net::TcpStream;

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
}

impl UpstreamConn {
    pub(crate) fn new(
        sender: SendRequest<Body>,
        driver: impl Future<Output = hyper::Result<()>> + Send + 'static,
    ) -> UpstreamConn {
        UpstreamConn {
            sender,
            driver: Some(Box::pin(driver)),
        }
    }

    /// Makes progress on the connection's reads and writes, registering the current task for
    /// its socket. Returns `false` once the connection has ended.
    pub(crate) fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(driver) = self.driver.as_mut() {
            if let Poll::Ready(result) = driver.as_mut().poll(cx) {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "upstream connection ended with an error");
                }
                self.driver = None;
            }
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
    /// Whether the connection can no longer carry a request.
    fn is_closed(&self) -> bool;
}

impl Pooled for UpstreamConn {
    fn pools() -> &'static LocalKey<RefCell<Vec<Pool<Self>>>> {
        &HYPER
    }

    fn is_closed(&self) -> bool {
        UpstreamConn::is_closed(self)
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

    /// An idle HTTP/1 connection has nothing to say: anything readable is the app closing it
    /// (or sending garbage). Tokio clears read readiness after a short read, so a healthy idle
    /// socket usually costs no syscall here; after a read that filled its buffer the readiness
    /// is only a maybe, and a non-blocking read settles it.
    fn is_closed(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        if self.stream.poll_read_ready(&mut cx).is_pending() {
            return false;
        }
        !matches!(
            self.stream.try_read(&mut [0; 1]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        )
    }
}

struct Idle<T> {
    conn: T,
    since: Instant,
}

/// One upstream's idle connections of one kind, on one thread.
pub(crate) struct Pool<T> {
    upstream: u64,
    idle_timeout: Duration,
    /// Oldest first; connections are reused newest first so the old ones can expire.
    idle: Vec<Idle<T>>,
}

/// Idle connections kept per upstream on one thread, at most this many (the rest are closed).
const MAX_IDLE_PER_THREAD: usize = 1024;

thread_local! {
    static HYPER: RefCell<Vec<Pool<UpstreamConn>>> = const { RefCell::new(Vec::new()) };
    static RAW: RefCell<Vec<Pool<RawConn>>> = const { RefCell::new(Vec::new()) };
}

/// The most recently used idle connection to `upstream` that is still open and not expired.
pub(crate) fn checkout<T: Pooled>(upstream: u64, now: Instant) -> Option<T> {
    T::pools().with_borrow_mut(|pools| {
        let pool = pools.iter_mut().find(|p| p.upstream == upstream)?;
        while let Some(idle) = pool.idle.pop() {
            if now.saturating_duration_since(idle.since) < pool.idle_timeout
                && !idle.conn.is_closed()
            {
                return Some(idle.conn);
            }
        }
        None
    })
}

/// Returns a connection whose last response is complete.
pub(crate) fn checkin<T: Pooled>(upstream: u64, idle_timeout: Duration, conn: T, now: Instant) {
    if conn.is_closed() {
        return;
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
                    pool.idle.retain(|idle| {
                        now.saturating_duration_since(idle.since) < timeout
                            && !idle.conn.is_closed()
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
