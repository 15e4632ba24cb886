//! The index cache for the commands that analyse snapshots (`summary`, `diff`, `inspect`):
//! `--cache-dir`/`HEAPGATE_CACHE_DIR` (default `$XDG_CACHE_HOME/heapgate`, `~/.cache/heapgate`),
//! `--cache-max`/`HEAPGATE_CACHE_MAX`, `--no-cache`/`HEAPGATE_NO_CACHE`; progress on a terminal.
//!
//! Cache trouble (an index ignored and rebuilt, a directory that cannot be written) is a
//! one-line warning: the answer never depends on the cache.

use std::path::{Path, PathBuf};
use std::time::Duration;

use heapgate_snapshot::{
    Cache, OpenOptions, Progress, Snapshot, SnapshotError, SourceIdentity, Stage, Summary, Work,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::CacheArgs;
use crate::{Error, Io, warn};

/// The cache the flags ask for; `None` with `--no-cache`, or when no directory is known.
pub(crate) fn cache(args: &CacheArgs, io: &Io<'_>) -> Option<Cache> {
    if args.no_cache {
        return None;
    }
    let dir = args
        .cache_dir
        .clone()
        .or_else(|| Cache::default_dir(io.env))?;
    Some(Cache::new(dir).max_bytes(args.cache_max))
}

/// A [`Work`] drawing a progress bar on stderr when it is a terminal; the bar, to clear.
pub(crate) fn work(io: &Io<'_>) -> (Work, Option<ProgressBar>) {
    if !io.stderr_is_terminal {
        return (Work::new(), None);
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {bytes}/{total_bytes} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let shown = bar.clone();
    let work = Work::new().on_progress(move |p: Progress| {
        shown.set_message(p.stage.describe());
        match (p.stage, p.total) {
            (Stage::Reading, Some(total)) => {
                shown.set_length(total);
                shown.set_position(p.done);
            }
            (Stage::Reading, None) => shown.set_position(p.done),
            (stage, total) => {
                shown.set_length(total.unwrap_or(0));
                shown.set_position(p.done);
                shown.set_message(format!(
                    "{} ({}/{})",
                    stage.describe(),
                    p.done,
                    total.unwrap_or(0)
                ));
            }
        }
    });
    (work, Some(bar))
}

/// Whether `file` names a stored object rather than a local file.
fn is_url(file: &Path) -> Option<&str> {
    file.to_str().filter(|f| f.starts_with("s3://"))
}

/// Opens `file` (a path or an `s3://` URL) for any question, through the cache; warnings go to
/// stderr.
pub(crate) fn open(file: &Path, args: &CacheArgs, io: &mut Io<'_>) -> Result<Snapshot, Error> {
    open_as(file, args, io, Cache::load, |path, options| {
        Snapshot::open_with(path, options).map(|o| (o.snapshot, o.warnings))
    })
}

/// [`open`] for a summary only: from an index, just the summary's part of it.
pub(crate) fn open_summary(
    file: &Path,
    args: &CacheArgs,
    io: &mut Io<'_>,
) -> Result<Summary, Error> {
    open_as(file, args, io, Cache::load_summary, |path, options| {
        Summary::open_with(path, options).map(|o| (o.summary, o.warnings))
    })
}

type Warnings = Vec<String>;

/// Opens `file` as a `T`: an `s3://` object from its index without downloading it when the
/// cache has one (`cached`), else streamed through a pipe and `opened` with its identity.
fn open_as<T>(
    file: &Path,
    args: &CacheArgs,
    io: &mut Io<'_>,
    cached: impl FnOnce(
        &Cache,
        &SourceIdentity,
        &Work,
        &mut Warnings,
    ) -> Result<Option<T>, SnapshotError>,
    opened: impl FnOnce(&Path, &OpenOptions) -> Result<(T, Warnings), SnapshotError>,
) -> Result<T, Error> {
    let cache = cache(args, io);
    let (work, bar) = work(io);
    let mut options = OpenOptions::new().cache(cache.clone()).work(work.clone());
    let mut warnings = Vec::new();
    let result = (|| {
        let mut inputs = None;
        let path: PathBuf = match is_url(file) {
            None => file.to_owned(),
            Some(url) => {
                let identity = crate::stored::identity(url)?;
                if let Some(cache) = &cache
                    && let Some(found) = cached(cache, &identity, &work, &mut warnings)
                        .map_err(|e| Error::Failed(format!("{url}: {e}")))?
                {
                    return Ok(found);
                }
                options = options.identity(identity);
                let streamed = crate::stored::inputs(std::slice::from_ref(&file.to_owned()))?;
                let path = streamed.paths[0].clone();
                inputs = Some(streamed);
                path
            }
        };
        let (found, more) = opened(&path, &options).map_err(|e| {
            Error::Failed(match is_url(file) {
                // The error names the pipe; the user named the URL.
                Some(url) => e.to_string().replace(&path.display().to_string(), url),
                None => e.to_string(),
            })
        })?;
        drop(inputs);
        warnings.extend(more);
        Ok(found)
    })();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for warning in &warnings {
        warn(io, warning);
    }
    result
}

/// The identities of `files` that are `s3://` URLs (local files are identified by the engine).
pub(crate) fn identities(
    files: &[PathBuf],
    cache: Option<&Cache>,
) -> Result<Vec<Option<SourceIdentity>>, Error> {
    files
        .iter()
        .map(|f| match (is_url(f), cache) {
            (Some(url), Some(_)) => crate::stored::identity(url).map(Some),
            _ => Ok(None),
        })
        .collect()
}
