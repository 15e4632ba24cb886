//! A lane connection's buffers and timers: read buffers of initialized memory taken from a
//! per-thread spare list only while a request is in, and deadlines that are cheap to move.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

/// A connection's buffers, taken when a request arrives and given back when it waits for the
/// next (see [`take_spare`]): this large to start with.
const REQUEST_BUFFER: usize = 8 * 1024;
const OUT_BUFFER: usize = 4 * 1024;
/// Reads of the app's answer.
pub(super) const READ_SIZE: usize = 16 * 1024;

/// A connection's buffers and timers, reused from request to request.
pub(super) struct Buffers {
    /// From the client.
    pub(super) request: InBuf,
    /// From the app.
    pub(super) answer: InBuf,
    /// To the app (the rewritten request), then to the client (the rewritten answer head).
    pub(super) out: Vec<u8>,
    pub(super) head_wait: Deadline,
    pub(super) answer_wait: Deadline,
}

/// The proxy's shutdown signal as one connection sees it; remembered once seen (a oneshot must
/// not be polled after it has resolved).
pub(super) struct Closing<'a> {
    pub(super) signal: &'a mut oneshot::Receiver<()>,
    pub(super) fired: bool,
}

impl Closing<'_> {
    pub(super) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.fired && Pin::new(&mut *self.signal).poll(cx).is_ready() {
            self.fired = true;
        }
        if self.fired {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Whether shutdown has begun, without waiting.
    pub(super) fn fired_now(&mut self) -> bool {
        self.poll(&mut Context::from_waker(Waker::noop()))
            .is_ready()
    }
}

/// Runs `fut` until `deadline` passes (`None` then).
pub(super) async fn within<T>(deadline: &mut Deadline, fut: impl Future<Output = T>) -> Option<T> {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        if let Poll::Ready(value) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(value));
        }
        if deadline.poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// A deadline that is cheap to move later: moving it touches no timer. The timer fires at the
/// earliest deadline set since it last fired, and is then re-armed for the current one if that
/// has moved on. A keep-alive connection thus re-arms its timer about once per timeout period
/// instead of once per request (which is what hyper's per-request header timer costs).
pub(super) struct Deadline {
    sleep: Pin<Box<Sleep>>,
    at: Option<Instant>,
}

impl Deadline {
    pub(super) fn new() -> Deadline {
        Deadline {
            // Not registered with the timer until first polled.
            sleep: Box::pin(tokio::time::sleep_until(far_future())),
            at: None,
        }
    }

    pub(super) fn set(&mut self, at: Instant) {
        self.at = Some(at);
    }

    pub(super) fn clear(&mut self) {
        self.at = None;
    }

    /// Ready once the deadline has passed; never, when none is set.
    pub(super) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(at) = self.at else {
            return Poll::Pending;
        };
        if self.sleep.deadline() > at {
            self.sleep.as_mut().reset(at);
        }
        loop {
            ready!(self.sleep.as_mut().poll(cx));
            if Instant::now() >= at {
                return Poll::Ready(());
            }
            self.sleep.as_mut().reset(at);
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

impl Buffers {
    /// Gives the buffers back once nothing is buffered (a pipelined request keeps them).
    pub(super) fn release(&mut self) {
        if self.request.len() == 0 && self.request.is_allocated() {
            self.request.release();
            self.answer.release();
            give_spare(Spare::Out, std::mem::take(&mut self.out));
        }
    }
}

/// The kinds of buffer a connection takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Spare {
    Request,
    Answer,
    Out,
}

impl Spare {
    /// The size buffers of this kind start with.
    pub(super) const fn size(self) -> usize {
        match self {
            Spare::Request => REQUEST_BUFFER,
            Spare::Answer => READ_SIZE,
            Spare::Out => OUT_BUFFER,
        }
    }
}

/// Buffers given back by connections waiting for their next request, per thread, for the next
/// request to take: a busy thread does not allocate (or zero) per request, an idle connection
/// holds no buffer, and after a burst at most [`SPARE_KEPT`] of each kind stay per thread (the
/// rest, and any that grew past their size, are freed).
/// Spare buffers kept per kind and thread.
const SPARE_KEPT: usize = 64;

thread_local! {
    static SPARE: std::cell::RefCell<[Vec<Vec<u8>>; 3]> = const {
        std::cell::RefCell::new([Vec::new(), Vec::new(), Vec::new()])
    };
}

fn index(kind: Spare) -> usize {
    match kind {
        Spare::Request => 0,
        Spare::Answer => 1,
        Spare::Out => 2,
    }
}

/// A buffer of `kind`'s size: `len` that size for read buffers (initialized memory), empty
/// with that capacity for `Out`.
pub(super) fn take_spare(kind: Spare) -> Vec<u8> {
    let reused = SPARE
        .try_with(|spare| spare.borrow_mut()[index(kind)].pop())
        .ok()
        .flatten();
    let mut buffer = reused.unwrap_or_else(|| match kind {
        Spare::Out => Vec::with_capacity(kind.size()),
        Spare::Request | Spare::Answer => vec![0; kind.size()],
    });
    if kind == Spare::Out {
        buffer.clear();
    }
    buffer
}

/// Gives `buffer` back; kept for reuse if it has its kind's size and there is room.
pub(super) fn give_spare(kind: Spare, buffer: Vec<u8>) {
    let fits = match kind {
        Spare::Out => buffer.capacity() == kind.size(),
        Spare::Request | Spare::Answer => {
            buffer.len() == kind.size() && buffer.capacity() == kind.size()
        }
    };
    if !fits {
        return;
    }
    let _ = SPARE.try_with(|spare| {
        let mut spare = spare.borrow_mut();
        let kept = &mut spare[index(kind)];
        if kept.len() < SPARE_KEPT {
            kept.push(buffer);
        }
    });
}

/// A read buffer of initialized memory: `data[start..end]` is unread.
pub(super) struct InBuf {
    /// Empty until the first read.
    data: Vec<u8>,
    start: usize,
    end: usize,
    kind: Spare,
}

pub(super) enum Read {
    /// Some bytes arrived.
    Bytes,
    Eof,
    /// The buffer holds its limit unread.
    Full,
}

impl InBuf {
    /// A buffer that takes its memory at the first read.
    pub(super) fn new(kind: Spare) -> InBuf {
        InBuf {
            data: Vec::new(),
            start: 0,
            end: 0,
            kind,
        }
    }

    pub(super) fn is_allocated(&self) -> bool {
        !self.data.is_empty()
    }

    /// Gives the memory back (what is unread is dropped).
    pub(super) fn release(&mut self) {
        give_spare(self.kind, std::mem::take(&mut self.data));
        self.clear();
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub(super) fn len(&self) -> usize {
        self.end - self.start
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.clear();
        }
    }

    pub(super) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    pub(super) fn into_unread(mut self) -> Vec<u8> {
        self.data.truncate(self.end);
        self.data.drain(..self.start);
        self.data
    }

    /// Reads what is available into the free space, making room first (up to `limit` bytes
    /// unread in all).
    pub(super) fn poll_read<S: AsyncRead + Unpin>(
        &mut self,
        io: &mut S,
        limit: usize,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Read>> {
        if self.end == self.data.len() {
            if self.start > 0 {
                self.data.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.data.is_empty() && limit > 0 {
                self.data = take_spare(self.kind);
                self.data.truncate(limit);
            } else if self.data.len() < limit {
                let grown = (self.data.len() * 2).min(limit);
                self.data.resize(grown, 0);
            } else {
                return Poll::Ready(Ok(Read::Full));
            }
        }
        let mut free = ReadBuf::new(&mut self.data[self.end..]);
        ready!(Pin::new(io).poll_read(cx, &mut free))?;
        let n = free.filled().len();
        self.end += n;
        Poll::Ready(Ok(if n == 0 { Read::Eof } else { Read::Bytes }))
    }
}
