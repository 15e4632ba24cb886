//! Progress and cancellation for long operations (reading a file, analysing it, writing or
//! reading its index): the caller hands in a [`Work`], the engine reports [`Progress`] to it
//! and stops with [`crate::SnapshotError::Cancelled`] soon after its flag is set.

use std::{
    fmt,
    io::{self, Read},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use serde::Serialize;

use crate::error::SnapshotError;

/// Which part of a long operation is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Reading and parsing the snapshot file; `done`/`total` in bytes of the file as stored.
    Reading,
    /// Classes, dominators, retained sizes, retainers; `done`/`total` in steps.
    Analysing,
    /// Writing the index into the cache; `done`/`total` in sections.
    WritingIndex,
    /// Reading an index from the cache; `done`/`total` in sections.
    ReadingIndex,
}

impl Stage {
    /// A few words for a progress line: `reading`, `analysing`…
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Reading => "reading",
            Stage::Analysing => "analysing",
            Stage::WritingIndex => "writing index",
            Stage::ReadingIndex => "reading index",
        }
    }
}

/// How far a long operation got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// What is running.
    pub stage: Stage,
    /// Units done in this stage.
    pub done: u64,
    /// Units in this stage, when known (a pipe has no size).
    pub total: Option<u64>,
}

type Callback = Arc<dyn Fn(Progress) + Send + Sync>;

/// What a long operation reports to and is stopped by. `Work::default()` reports nothing and is
/// never cancelled. Cheap to clone; clones share the callback and the flag.
#[derive(Clone, Default)]
pub struct Work {
    progress: Option<Callback>,
    cancel: Option<Arc<AtomicBool>>,
}

impl fmt::Debug for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Work")
            .field("progress", &self.progress.is_some())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// Bytes read between two progress reports while reading.
const REPORT_EVERY: u64 = 8 << 20;

impl Work {
    /// Nothing reported, never cancelled.
    pub fn new() -> Work {
        Work::default()
    }

    /// Calls `progress` as the operation advances (from the thread doing the work; keep it
    /// quick). Reports come at most every few megabytes read and at each stage.
    pub fn on_progress(mut self, progress: impl Fn(Progress) + Send + Sync + 'static) -> Work {
        self.progress = Some(Arc::new(progress));
        self
    }

    /// Stops the operation, with [`SnapshotError::Cancelled`], soon after `flag` becomes true.
    pub fn cancel_when(mut self, flag: Arc<AtomicBool>) -> Work {
        self.cancel = Some(flag);
        self
    }

    /// Whether the caller asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// `Err(Cancelled)` once the caller asked to stop.
    pub(crate) fn check(&self) -> Result<(), SnapshotError> {
        if self.is_cancelled() {
            Err(SnapshotError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Reports a stage's progress.
    pub(crate) fn stage(&self, stage: Stage, done: u64, total: Option<u64>) {
        if let Some(progress) = &self.progress {
            progress(Progress { stage, done, total });
        }
    }

    /// `reader` counting its bytes into progress reports of `stage` and failing once cancelled.
    pub(crate) fn watch<R: Read>(&self, reader: R, stage: Stage, total: Option<u64>) -> Watched<R> {
        Watched {
            inner: reader,
            work: self.clone(),
            stage,
            total,
            done: 0,
            reported: 0,
        }
    }
}

/// See [`Work::watch`].
pub(crate) struct Watched<R> {
    inner: R,
    work: Work,
    stage: Stage,
    total: Option<u64>,
    done: u64,
    reported: u64,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.work.is_cancelled() {
            return Err(io::Error::other("cancelled"));
        }
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.done - self.reported >= REPORT_EVERY || (n == 0 && self.done > self.reported) {
            self.reported = self.done;
            self.work.stage(self.stage, self.done, self.total);
        }
        Ok(n)
    }
}
