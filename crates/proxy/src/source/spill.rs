//! Bounded memory buffer that spills to a temp file.
//!
//! The inspector actor must read the WebSocket as fast as Node writes it: if it stops, Node
//! queues the remaining frames in the *target's* memory (+350 MiB measured for a stalled reader),
//! on top of the gigabytes the snapshot itself costs there. The HTTP client, on the other hand,
//! may be slow or stall. This queue decouples the two: the producer ([`SpillWriter`]) never
//! waits, keeps at most `mem_limit` bytes in memory, and appends everything beyond that to an
//! anonymous temp file (unlinked at creation, so it disappears on drop, error or crash). The
//! consumer ([`SpillReader`]) is a stream that drains memory first, then the file, preserving
//! order.
//!
//! Ordering rule: once anything sits in the file, new data also goes to the file until the
//! consumer has drained it; so everything in memory is always older than everything in the file.
//!
//! File I/O is synchronous and done under the lock: writes land in the page cache and reads are
//! capped at [`READ_CHUNK`], so neither side holds the lock for long.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;

use crate::source::SourceError;

/// Memory a queue may hold before spilling, unless told otherwise.
pub(crate) const DEFAULT_MEM_LIMIT: usize = 4 << 20;

/// Largest piece read back from the spill file at once.
const READ_CHUNK: usize = 256 << 10;

/// Creates a queue holding at most `mem_limit` bytes in memory.
pub(crate) fn channel(mem_limit: usize) -> (SpillWriter, SpillReader) {
    let shared = Arc::new(Shared {
        mem_limit,
        state: Mutex::new(State::default()),
    });
    (
        SpillWriter {
            shared: Arc::clone(&shared),
        },
        SpillReader { shared },
    )
}

/// What a queue has done so far, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SpillStats {
    /// The most bytes held in memory at any one time.
    pub(crate) peak_mem_bytes: usize,
    /// Bytes that went through the temp file.
    pub(crate) spilled_bytes: u64,
    /// Bytes accepted from the producer (not counting those discarded after the consumer left).
    pub(crate) total_bytes: u64,
}

struct Shared {
    mem_limit: usize,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct State {
    mem: VecDeque<Bytes>,
    mem_bytes: usize,
    spill: Option<SpillFile>,
    end: End,
    consumer_gone: bool,
    waker: Option<Waker>,
    stats: SpillStats,
}

#[derive(Default)]
enum End {
    #[default]
    Open,
    Finished,
    /// Failed; the error is handed to the consumer once, then the stream ends.
    Failed(Option<SourceError>),
}

/// The temp file and the unread region `read_pos..write_pos` in it.
struct SpillFile {
    file: File,
    read_pos: u64,
    write_pos: u64,
}

impl SpillFile {
    fn create() -> io::Result<Self> {
        Ok(Self {
            file: tempfile::tempfile()?,
            read_pos: 0,
            write_pos: 0,
        })
    }

    fn unread(&self) -> u64 {
        self.write_pos - self.read_pos
    }

    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(self.write_pos))?;
        self.file.write_all(data)?;
        self.write_pos += data.len() as u64;
        Ok(())
    }

    /// Reads the next piece of unread data; once all is read, empties the file to free the disk.
    fn read_next(&mut self) -> io::Result<Bytes> {
        let len = usize::try_from(self.unread()).map_or(READ_CHUNK, |n| n.min(READ_CHUNK));
        let mut buf = BytesMut::zeroed(len);
        self.file.seek(SeekFrom::Start(self.read_pos))?;
        self.file.read_exact(&mut buf)?;
        self.read_pos += len as u64;
        if self.unread() == 0 {
            self.file.set_len(0)?;
            self.read_pos = 0;
            self.write_pos = 0;
        }
        Ok(buf.freeze())
    }
}

impl State {
    fn is_open(&self) -> bool {
        matches!(self.end, End::Open) && !self.consumer_gone
    }

    fn file_has_unread(&self) -> bool {
        self.spill.as_ref().is_some_and(|s| s.unread() > 0)
    }

    fn accept(&mut self, data: Bytes, mem_limit: usize) {
        self.stats.total_bytes += data.len() as u64;
        if !self.file_has_unread() && self.mem_bytes + data.len() <= mem_limit {
            self.mem_bytes += data.len();
            self.stats.peak_mem_bytes = self.stats.peak_mem_bytes.max(self.mem_bytes);
            self.mem.push_back(data);
            return;
        }
        if let Err(e) = self.append_to_file(&data) {
            tracing::warn!(error = %e, "snapshot spill file failed");
            self.fail(SourceError::Failed(format!("spill file: {e}")));
        }
    }

    fn append_to_file(&mut self, data: &[u8]) -> io::Result<()> {
        let spill = match &mut self.spill {
            Some(spill) => spill,
            none => none.insert(SpillFile::create()?),
        };
        spill.append(data)?;
        self.stats.spilled_bytes += data.len() as u64;
        Ok(())
    }

    fn fail(&mut self, err: SourceError) {
        self.end = End::Failed(Some(err));
        self.drop_buffers();
    }

    fn drop_buffers(&mut self) {
        self.mem.clear();
        self.mem_bytes = 0;
        self.spill = None;
    }

    fn next_item(&mut self) -> Option<Poll<Option<Result<Bytes, SourceError>>>> {
        if let End::Failed(err) = &mut self.end {
            return Some(Poll::Ready(err.take().map(Err)));
        }
        if let Some(data) = self.mem.pop_front() {
            self.mem_bytes -= data.len();
            return Some(Poll::Ready(Some(Ok(data))));
        }
        if let Some(spill) = self.spill.as_mut().filter(|s| s.unread() > 0) {
            let item = match spill.read_next() {
                Ok(data) => Ok(data),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the snapshot spill file failed");
                    self.drop_buffers();
                    // The error is handed out right here; later polls end the stream.
                    self.end = End::Failed(None);
                    Err(SourceError::Failed(format!("spill file: {e}")))
                }
            };
            return Some(Poll::Ready(Some(item)));
        }
        match self.end {
            End::Finished => Some(Poll::Ready(None)),
            _ => None,
        }
    }

    fn take_waker(&mut self) -> Option<Waker> {
        self.waker.take()
    }
}

/// The producing half. Never blocks; after the consumer is gone it discards data.
///
/// Dropping it without [`finish`](Self::finish) fails the stream, so a truncated snapshot can
/// never look complete.
pub(crate) struct SpillWriter {
    shared: Arc<Shared>,
}

impl SpillWriter {
    /// Queues `data`. Returns false if nobody will read it (consumer gone or queue closed), in
    /// which case it was discarded.
    pub(crate) fn push(&mut self, data: Bytes) -> bool {
        let mut state = self.shared.lock();
        if !state.is_open() {
            return false;
        }
        if data.is_empty() {
            return true;
        }
        state.accept(data, self.shared.mem_limit);
        let open = state.is_open();
        let waker = state.take_waker();
        drop(state);
        wake(waker);
        open
    }

    /// Whether the consumer is still there.
    pub(crate) fn consumer_gone(&self) -> bool {
        self.shared.lock().consumer_gone
    }

    /// What the queue has done so far.
    pub(crate) fn stats(&self) -> SpillStats {
        self.shared.lock().stats
    }

    /// Ends the stream cleanly once the consumer has read everything queued.
    pub(crate) fn finish(self) {
        self.close(End::Finished);
    }

    /// Ends the stream with `err`; queued data is discarded.
    pub(crate) fn fail(self, err: SourceError) {
        self.close(End::Failed(Some(err)));
    }

    fn close(&self, end: End) {
        let mut state = self.shared.lock();
        if !matches!(state.end, End::Open) {
            return;
        }
        if let End::Failed(Some(err)) = end {
            state.fail(err);
        } else {
            state.end = end;
        }
        let waker = state.take_waker();
        drop(state);
        wake(waker);
    }
}

impl Drop for SpillWriter {
    fn drop(&mut self) {
        self.close(End::Failed(Some(SourceError::Failed(
            "snapshot stopped before its end".to_owned(),
        ))));
    }
}

/// The consuming half: a stream of the queued bytes, in order.
pub(crate) struct SpillReader {
    shared: Arc<Shared>,
}

impl Stream for SpillReader {
    type Item = Result<Bytes, SourceError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut state = self.shared.lock();
        if let Some(poll) = state.next_item() {
            return poll;
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for SpillReader {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.consumer_gone = true;
        state.waker = None;
        state.drop_buffers();
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn numbered(i: u32, len: usize) -> Bytes {
        let byte = u8::try_from(i % 251).unwrap_or(0);
        Bytes::from(vec![byte; len])
    }

    async fn collect(reader: SpillReader) -> Result<Vec<u8>, SourceError> {
        let mut out = Vec::new();
        let mut reader = reader;
        while let Some(item) = reader.next().await {
            out.extend_from_slice(&item?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn order_preserved_across_memory_and_file() {
        let (mut writer, reader) = channel(100);
        let mut expected = Vec::new();
        for i in 0..200 {
            let data = numbered(i, 1 + (i as usize * 7) % 90);
            expected.extend_from_slice(&data);
            assert!(writer.push(data));
        }
        let stats = writer.stats();
        writer.finish();
        assert!(stats.spilled_bytes > 0, "nothing spilled: {stats:?}");
        assert!(stats.peak_mem_bytes <= 100, "{stats:?}");
        assert_eq!(collect(reader).await.unwrap(), expected);
    }

    #[tokio::test]
    async fn interleaved_reads_and_writes_keep_order_and_bound() {
        let (mut writer, mut reader) = channel(64);
        let mut expected = Vec::new();
        let mut got = Vec::new();
        for i in 0..500 {
            let data = numbered(i, 1 + (i as usize * 13) % 70);
            expected.extend_from_slice(&data);
            writer.push(data);
            if i % 3 == 0 {
                let item = reader.next().await.unwrap().unwrap();
                got.extend_from_slice(&item);
            }
        }
        let stats = writer.stats();
        writer.finish();
        got.extend(collect(reader).await.unwrap());
        assert_eq!(got, expected);
        assert!(stats.peak_mem_bytes <= 64, "{stats:?}");
        assert!(stats.spilled_bytes > 0, "{stats:?}");
    }

    #[tokio::test]
    async fn piece_larger_than_the_limit_goes_to_the_file() {
        let (mut writer, reader) = channel(10);
        writer.push(Bytes::from_static(b"small"));
        writer.push(numbered(7, 3 * READ_CHUNK + 5));
        writer.push(Bytes::from_static(b"tail"));
        let stats = writer.stats();
        writer.finish();
        assert_eq!(stats.peak_mem_bytes, 5);
        assert_eq!(stats.spilled_bytes, 3 * READ_CHUNK as u64 + 9);
        let got = collect(reader).await.unwrap();
        assert_eq!(got.len(), 3 * READ_CHUNK + 14);
        assert!(got.starts_with(b"small") && got.ends_with(b"tail"));
    }

    #[tokio::test]
    async fn consumer_waits_for_data_then_sees_end() {
        let (mut writer, reader) = channel(DEFAULT_MEM_LIMIT);
        let consumer = tokio::spawn(collect(reader));
        tokio::task::yield_now().await;
        writer.push(Bytes::from_static(b"hello "));
        tokio::task::yield_now().await;
        writer.push(Bytes::from_static(b"world"));
        writer.finish();
        assert_eq!(consumer.await.unwrap().unwrap(), b"hello world");
    }

    #[tokio::test]
    async fn failure_propagates_as_err_item() {
        let (mut writer, mut reader) = channel(4);
        writer.push(Bytes::from_static(b"ab"));
        writer.push(Bytes::from_static(b"cdefgh"));
        writer.fail(SourceError::Failed("boom".to_owned()));
        match reader.next().await {
            Some(Err(SourceError::Failed(msg))) => assert_eq!(msg, "boom"),
            other => panic!("expected the failure, got {other:?}"),
        }
        assert!(reader.next().await.is_none());
    }

    #[tokio::test]
    async fn dropped_writer_is_a_failure_not_an_end() {
        let (mut writer, reader) = channel(4);
        writer.push(Bytes::from_static(b"partial"));
        drop(writer);
        assert!(matches!(collect(reader).await, Err(SourceError::Failed(_))));
    }

    #[tokio::test]
    async fn consumer_drop_lets_producer_discard() {
        let (mut writer, mut reader) = channel(8);
        assert!(writer.push(Bytes::from_static(b"0123456789")));
        assert_eq!(&reader.next().await.unwrap().unwrap()[..], b"0123456789");
        assert!(writer.push(Bytes::from_static(b"spilled!!!")));
        drop(reader);
        assert!(writer.consumer_gone());
        for i in 0..100 {
            assert!(!writer.push(numbered(i, 1000)));
        }
        let stats = writer.stats();
        assert_eq!(stats.total_bytes, 20);
        writer.finish();
    }
}
