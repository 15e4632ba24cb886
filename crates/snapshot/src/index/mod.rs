//! The index: the first analysis of a file is kept in a cache directory so that later questions
//! about the same file (`summary`, `diff`, drill-down) load it in a fraction of the time.
//!
//! - **Keyed by the source's identity** ([`SourceIdentity`]): for a local file its size,
//!   modification time and a hash of its first and last MiB; for an `s3://` object its URL,
//!   size, ETag and modification time. The identity is written into the index and compared in
//!   full on every load; the file name is only a hash of it.
//! - **Never trusted**: an index written by another heapgate version, for another source,
//!   truncated, damaged (every section carries a checksum) or inconsistent is ignored, deleted
//!   and rebuilt, with a one-line warning (see `format`).
//! - **Bounded**: after each write, the least recently used indexes are deleted until the
//!   directory holds at most [`Cache::max_bytes`]; an index larger than that is not kept.
//! - **Optional**: a directory that cannot be created or written (read-only, full) costs a
//!   warning, never the answer.

mod format;

use std::{
    ffi::OsString,
    fs::{self, File},
    io::{self, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::analysis::{Snapshot, Subjects};
use crate::column::ColumnWriter;
use crate::error::SnapshotError;
use crate::load::{Keep, build, open, read_heap};
use crate::summary::Summary;
use crate::work::Work;

/// The cache directory's size cap unless configured: room for the indexes of a few ~2 GB
/// snapshots.
pub const DEFAULT_MAX_BYTES: u64 = 8 << 30;

/// Index files end with this.
const SUFFIX: &str = ".hgindex";

/// Bytes hashed at each end of a local file.
const SAMPLE: u64 = 1 << 20;

/// What an index is keyed by: which bytes it was built from. Two identities are the same source
/// only if every part agrees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceIdentity {
    text: String,
}

impl SourceIdentity {
    /// A local file's identity: size, modification time (nanoseconds) and a hash of its first
    /// and last MiB. `None` for what is not a regular file (a pipe has no identity).
    pub fn of_file(path: &Path) -> io::Result<Option<SourceIdentity>> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(None);
        }
        let size = meta.len();
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let mut head = Vec::new();
        (&mut file).take(SAMPLE).read_to_end(&mut head)?;
        let mut tail = Vec::new();
        if size > SAMPLE {
            file.seek(SeekFrom::Start(size - SAMPLE.min(size)))?;
            file.take(SAMPLE).read_to_end(&mut tail)?;
        }
        Ok(Some(SourceIdentity {
            text: format!(
                "file size={size} mtime={mtime} head={:016x}{:016x} tail={:016x}{:016x}",
                fnv(&head, 0),
                fnv(&head, 1),
                fnv(&tail, 0),
                fnv(&tail, 1)
            ),
        }))
    }

    /// A stored object's identity (an `s3://` URL): its URL, size, ETag and modification time
    /// as the store reports them. Without an ETag, a changed object of the same size written
    /// in the same second would look the same; S3 always gives one.
    pub fn of_object(
        url: &str,
        size: u64,
        etag: Option<&str>,
        modified: Option<&str>,
    ) -> SourceIdentity {
        SourceIdentity {
            text: format!(
                "object url={url:?} size={size} etag={:?} modified={:?}",
                etag.unwrap_or(""),
                modified.unwrap_or("")
            ),
        }
    }

    /// The index's file name in the cache.
    fn file_name(&self) -> String {
        let b = self.text.as_bytes();
        format!("{:016x}{:016x}{SUFFIX}", fnv(b, 0), fnv(b, 1))
    }
}

/// FNV-1a, two seeds for 128 bits between them: stable across runs and platforms.
fn fnv(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A cache directory of indexes. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
}

impl Cache {
    /// Indexes in `dir` (created when first written), at most [`DEFAULT_MAX_BYTES`].
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache {
            dir: dir.into(),
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// At most `bytes` of indexes in the directory.
    pub fn max_bytes(mut self, bytes: u64) -> Cache {
        self.max_bytes = bytes;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The usual place: `$XDG_CACHE_HOME/heapgate`, else `$HOME/.cache/heapgate`; `None` when
    /// neither is set. `env` looks variables up (time and environment are parameters).
    pub fn default_dir(env: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
        let set = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        set("XDG_CACHE_HOME")
            .filter(|p| p.is_absolute())
            .map(|p| p.join("heapgate"))
            .or_else(|| set("HOME").map(|h| h.join(".cache").join("heapgate")))
    }

    fn path_of(&self, identity: &SourceIdentity) -> PathBuf {
        self.dir.join(identity.file_name())
    }

    /// The snapshot indexed for `identity`, if a valid index is there. An index that is not
    /// valid is deleted, and why is added to `warnings`. Only cancellation is an error.
    pub fn load(
        &self,
        identity: &SourceIdentity,
        work: &Work,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        self.load_with(identity, work, warnings, |path, text| {
            format::read(path, text, work)
        })
    }

    /// Only the [`Summary`] indexed for `identity` (a fraction of the index), as
    /// [`Cache::load`] otherwise.
    pub fn load_summary(
        &self,
        identity: &SourceIdentity,
        work: &Work,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Summary>, SnapshotError> {
        self.load_with(identity, work, warnings, |path, text| {
            format::read_summary(path, text, work)
        })
    }

    fn load_with<T>(
        &self,
        identity: &SourceIdentity,
        work: &Work,
        warnings: &mut Vec<String>,
        read: impl FnOnce(&Path, &str) -> Result<T, String>,
    ) -> Result<Option<T>, SnapshotError> {
        let path = self.path_of(identity);
        if !path.is_file() {
            return Ok(None);
        }
        match read(&path, &identity.text) {
            Ok(found) => {
                // Recently used: evicted last.
                let _ = File::options()
                    .append(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(SystemTime::now()));
                Ok(Some(found))
            }
            Err(_) if work.is_cancelled() => Err(SnapshotError::Cancelled),
            Err(why) => {
                let _ = fs::remove_file(&path);
                warnings.push(format!(
                    "ignored the index {}: {why}; rebuilding it",
                    path.display()
                ));
                Ok(None)
            }
        }
    }

    /// Starts writing the index for `identity`: a temporary file in the directory, which the
    /// analysis may put columns into as soon as they are final. An error is a warning's text.
    pub(crate) fn begin(&self) -> Result<Writing, String> {
        fs::create_dir_all(&self.dir).map_err(|e| self.cannot("create", &e))?;
        let temp = tempfile::Builder::new()
            .prefix(".writing-")
            .suffix(SUFFIX)
            .tempfile_in(&self.dir)
            .map_err(|e| self.cannot("write", &e))?;
        let file = temp
            .as_file()
            .try_clone()
            .map_err(|e| self.cannot("write", &e))?;
        let columns = format::begin(file, temp.path()).map_err(|e| self.cannot("write", &e))?;
        Ok(Writing { temp, columns })
    }

    /// Finishes the index `writing` of `snapshot` for `identity` and puts it in place, then
    /// evicts the least recently used indexes over the cap. Returns the index's size; an error
    /// is a warning's text. The snapshot then reads its graph's columns from the index file
    /// (readable either way: the file stays open).
    fn finish(
        &self,
        mut writing: Writing,
        identity: &SourceIdentity,
        snapshot: &mut Snapshot,
        work: &Work,
    ) -> Result<u64, String> {
        let size = format::finish(snapshot, &identity.text, &mut writing.columns, work)
            .map_err(|e| self.cannot("write", &e))?;
        if size > self.max_bytes {
            return Err(format!(
                "the index ({size} bytes) is larger than the cache's cap ({} bytes); not kept",
                self.max_bytes
            ));
        }
        let target = self.path_of(identity);
        writing
            .temp
            .persist(&target)
            .map_err(|e| self.cannot("write", &e.error))?;
        self.evict(&target);
        Ok(size)
    }

    /// A warning: the cache cannot be used.
    fn cannot(&self, what: &str, e: &dyn std::fmt::Display) -> String {
        format!(
            "cannot keep an index in {}: {what}: {e}; working without it",
            self.dir.display()
        )
    }

    /// Deletes the least recently used indexes until the directory is under the cap, never
    /// `keep`.
    fn evict(&self, keep: &Path) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(SystemTime, u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(SUFFIX))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                meta.is_file()
                    .then(|| (meta.modified().unwrap_or(UNIX_EPOCH), meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, size, path) in files {
            if total <= self.max_bytes {
                break;
            }
            if path == keep {
                continue;
            }
            if fs::remove_file(&path).is_ok() {
                total -= size;
            }
        }
    }
}

/// An index being written: its temporary file (deleted unless finished) and the columns in it.
pub(crate) struct Writing {
    temp: tempfile::NamedTempFile,
    columns: ColumnWriter,
}

/// How [`Snapshot::open_with`] opens a file.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    cache: Option<Cache>,
    identity: Option<SourceIdentity>,
    work: Work,
}

impl OpenOptions {
    /// No cache, no progress, not cancellable.
    pub fn new() -> OpenOptions {
        OpenOptions::default()
    }

    /// Read and write indexes in `cache` (`None`: no index).
    pub fn cache(mut self, cache: Option<Cache>) -> OpenOptions {
        self.cache = cache;
        self
    }

    /// The source's identity, when the path cannot tell it (a pipe fed from `s3://`).
    pub fn identity(mut self, identity: SourceIdentity) -> OpenOptions {
        self.identity = Some(identity);
        self
    }

    /// Progress and cancellation.
    pub fn work(mut self, work: Work) -> OpenOptions {
        self.work = work;
        self
    }
}

/// Whether an index was used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexUse {
    /// No cache configured, or the source has no identity.
    Off,
    /// Loaded from the index.
    Loaded,
    /// Analysed, and the index written.
    Written,
    /// Analysed; the index could not be written (see the warnings).
    Failed,
}

/// A snapshot opened by [`Snapshot::open_with`].
pub struct Opened {
    /// The snapshot, with everything drill-down needs.
    pub snapshot: Snapshot,
    /// Whether it came from an index.
    pub index: IndexUse,
    /// One-line warnings: an index ignored and rebuilt, a cache that cannot be written.
    pub warnings: Vec<String>,
}

impl Snapshot {
    /// Opens the snapshot at `path` for any question (summary, comparison, drill-down): from
    /// its index in the cache when a valid one is there, else by reading the file, then keeps
    /// the index for next time. Cache problems are warnings; errors are the file's.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: &OpenOptions,
    ) -> Result<Opened, SnapshotError> {
        let path = path.as_ref();
        let source = options.source(path)?;
        let mut warnings = Vec::new();
        if let Some((cache, identity)) = &source
            && let Some(mut snapshot) = cache.load(identity, &options.work, &mut warnings)?
        {
            snapshot.origin = path.to_owned();
            return Ok(Opened {
                snapshot,
                index: IndexUse::Loaded,
                warnings,
            });
        }
        Snapshot::read_and_index(
            path,
            options,
            source.as_ref().map(|(c, i)| (*c, i)),
            warnings,
        )
    }

    /// Reads the file and keeps its index under `source` (the cache and the file's identity,
    /// computed once by the caller whose index read missed).
    fn read_and_index(
        path: &Path,
        options: &OpenOptions,
        source: Option<(&Cache, &SourceIdentity)>,
        mut warnings: Vec<String>,
    ) -> Result<Opened, SnapshotError> {
        let work = &options.work;
        let mut writing = match source {
            Some((cache, _)) => match cache.begin() {
                Ok(writing) => Some(writing),
                Err(warning) => {
                    warnings.push(warning);
                    None
                }
            },
            None => None,
        };
        let heap = read_heap(open(path, work)?, path, work)?;
        let columns = writing.as_mut().map(|w| &mut w.columns);
        let mut snapshot = build(heap, Keep::Everything, None, work, columns)?;
        snapshot.origin = path.to_owned();
        let index = match (source, writing) {
            (Some((cache, identity)), Some(writing)) => {
                match cache.finish(writing, identity, &mut snapshot, work) {
                    Ok(_) => IndexUse::Written,
                    Err(_) if work.is_cancelled() => return Err(SnapshotError::Cancelled),
                    Err(warning) => {
                        warnings.push(warning);
                        IndexUse::Failed
                    }
                }
            }
            (Some(_), None) => IndexUse::Failed,
            (None, _) => IndexUse::Off,
        };
        Ok(Opened {
            snapshot,
            index,
            warnings,
        })
    }
}

/// A summary opened by [`Summary::open_with`].
pub struct OpenedSummary {
    /// The summary.
    pub summary: Summary,
    /// Whether it came from an index.
    pub index: IndexUse,
    /// One-line warnings, as [`Opened::warnings`].
    pub warnings: Vec<String>,
}

impl Summary {
    /// [`Snapshot::open_with`] for a summary only: from an index, only the summary's part of it
    /// is read; else the file is analysed and its whole index written for later questions.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: &OpenOptions,
    ) -> Result<OpenedSummary, SnapshotError> {
        let path = path.as_ref();
        let mut warnings = Vec::new();
        let source = options.source(path)?;
        if let Some((cache, identity)) = &source
            && let Some(summary) = cache.load_summary(identity, &options.work, &mut warnings)?
        {
            return Ok(OpenedSummary {
                summary,
                index: IndexUse::Loaded,
                warnings,
            });
        }
        let opened = Snapshot::read_and_index(
            path,
            options,
            source.as_ref().map(|(c, i)| (*c, i)),
            warnings,
        )?;
        Ok(OpenedSummary {
            summary: opened.snapshot.into_summary(),
            index: opened.index,
            warnings: opened.warnings,
        })
    }
}

impl Snapshot {
    /// What [`crate::compare_with`] needs of its last file: from its index (its columns read as
    /// the comparison touches them), else [`Snapshot::open_with`]; then the class sums of `subjects`.
    pub(crate) fn open_for_compare_with(
        path: &Path,
        options: &OpenOptions,
        subjects: Subjects<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<Snapshot, SnapshotError> {
        let source = options.source(path)?;
        let found = match &source {
            Some((cache, identity)) => cache.load(identity, &options.work, warnings)?,
            None => None,
        };
        let mut snapshot = match found {
            Some(snapshot) => snapshot,
            None => {
                let mut opened = Snapshot::read_and_index(
                    path,
                    options,
                    source.as_ref().map(|(c, i)| (*c, i)),
                    Vec::new(),
                )?;
                warnings.append(&mut opened.warnings);
                opened.snapshot
            }
        };
        snapshot.origin = path.to_owned();
        snapshot.set_subjects(subjects);
        Ok(snapshot)
    }
}

impl OpenOptions {
    /// The cache and the source's identity, when both are known.
    fn source(&self, path: &Path) -> Result<Option<(&Cache, SourceIdentity)>, SnapshotError> {
        let Some(cache) = &self.cache else {
            return Ok(None);
        };
        let identity = match &self.identity {
            Some(identity) => Some(identity.clone()),
            None => SourceIdentity::of_file(path).map_err(|source| SnapshotError::Io {
                path: path.to_owned(),
                source,
            })?,
        };
        Ok(identity.map(|i| (cache, i)))
    }
}
