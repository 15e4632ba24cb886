//! Snapshots and series kept by the leak watch: `heapgate list`, and `s3://` URLs wherever a
//! snapshot file is read (`diff`, `summary`).
//!
//! An `s3://bucket/key` argument is streamed, not downloaded: a thread copies the object into a
//! named pipe (FIFO) in a private temporary folder, and the analysis reads the pipe as it would
//! a file. Credentials and endpoint come from the standard AWS environment (`AWS_ENDPOINT_URL`
//! for another S3-compatible server), as for `heapgate-proxy --store`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;

use futures_util::StreamExt;
use heapgate_store::{Manifest, Store, StoreLocation};
use object_store::path::Path as ObjectPath;

use crate::Error;

/// Local paths for `files`; `s3://` ones are pipes fed by background threads, alive as long as
/// the returned value.
pub(crate) struct Inputs {
    pub(crate) paths: Vec<PathBuf>,
    _dir: Option<tempfile::TempDir>,
    /// The pipes, to release their writers if nobody read them (an index answered instead).
    pipes: Vec<PathBuf>,
}

impl Drop for Inputs {
    fn drop(&mut self) {
        use std::os::unix::fs::OpenOptionsExt;
        /// Linux's `O_NONBLOCK`: opening a FIFO's read end this way never waits.
        const O_NONBLOCK: i32 = 0o4000;
        for pipe in &self.pipes {
            // A writer still waiting for a reader gets one, then a broken pipe, and ends.
            let _ = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(O_NONBLOCK)
                .open(pipe);
        }
    }
}

/// Opens each of `files` as a path the analysis can read: local files as they are, `s3://`
/// URLs streamed through a pipe.
pub(crate) fn inputs(files: &[PathBuf]) -> Result<Inputs, Error> {
    let mut dir = None;
    let mut paths = Vec::with_capacity(files.len());
    let mut pipes = Vec::new();
    for (n, file) in files.iter().enumerate() {
        let Some(url) = file.to_str().filter(|f| f.starts_with("s3://")) else {
            paths.push(file.clone());
            continue;
        };
        let (store, key) = open_url(url)?;
        let runtime = runtime()?;
        runtime
            .block_on(store.objects().head(&key))
            .map_err(|e| Error::Failed(format!("{url}: {e}")))?;
        if dir.is_none() {
            dir = Some(tempfile::tempdir().map_err(|e| Error::Failed(format!("temp dir: {e}")))?);
        }
        let pipe = dir
            .as_ref()
            .map(|d| d.path().join(format!("{n}.pipe")))
            .unwrap_or_default();
        let made = std::process::Command::new("mkfifo")
            .arg(&pipe)
            .status()
            .map_err(|e| Error::Failed(format!("mkfifo: {e}")))?;
        if !made.success() {
            return Err(Error::Failed(format!("mkfifo {} failed", pipe.display())));
        }
        let (url, target) = (url.to_owned(), pipe.clone());
        std::thread::spawn(move || {
            if let Err(e) = copy(&runtime, &store, &key, &target) {
                eprintln!("heapgate: {url}: {e}");
            }
        });
        pipes.push(pipe.clone());
        paths.push(pipe);
    }
    Ok(Inputs {
        paths,
        _dir: dir,
        pipes,
    })
}

/// The identity of the object at `url` for the index cache: its URL, size, ETag and
/// modification time as the store reports them.
pub(crate) fn identity(url: &str) -> Result<heapgate_snapshot::SourceIdentity, Error> {
    let (store, key) = open_url(url)?;
    let runtime = runtime()?;
    let meta = runtime
        .block_on(store.objects().head(&key))
        .map_err(|e| Error::Failed(format!("{url}: {e}")))?;
    Ok(heapgate_snapshot::SourceIdentity::of_object(
        url,
        meta.size,
        meta.e_tag.as_deref(),
        Some(&meta.last_modified.to_rfc3339()),
    ))
}

/// The first `limit` bytes of the object at `url` (all of it when `limit` is `None`): enough to
/// tell a profile from a snapshot, or a whole profile (profiles are small).
pub(crate) fn object_bytes(url: &str, limit: Option<u64>) -> Result<Vec<u8>, Error> {
    let (store, key) = open_url(url)?;
    let runtime = runtime()?;
    runtime.block_on(async {
        let failed = |e: object_store::Error| Error::Failed(format!("{url}: {e}"));
        let size = store.objects().head(&key).await.map_err(failed)?.size;
        let end = limit.map_or(size, |l| l.min(size));
        if end == 0 {
            return Ok(Vec::new());
        }
        let bytes = store
            .objects()
            .get_range(&key, 0..end)
            .await
            .map_err(failed)?;
        Ok(bytes.to_vec())
    })
}

fn copy(
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    key: &ObjectPath,
    pipe: &std::path::Path,
) -> Result<(), String> {
    // Opening a FIFO for writing waits for its reader.
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .open(pipe)
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let mut stream = store
            .objects()
            .get(key)
            .await
            .map_err(|e| e.to_string())?
            .into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            if out.write_all(&chunk).is_err() {
                // The reader stopped (an error it reports itself).
                return Ok(());
            }
        }
        Ok(())
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("runtime: {e}")))
}

/// `s3://bucket/key` → the bucket's store and the key.
fn open_url(url: &str) -> Result<(Store, ObjectPath), Error> {
    let location = StoreLocation::parse(url).map_err(|e| Error::Config(format!("{url}: {e}")))?;
    let StoreLocation::S3 { bucket, prefix } = location else {
        return Err(Error::Config(format!("{url}: not an s3:// URL")));
    };
    if prefix.is_empty() {
        return Err(Error::Config(format!(
            "{url}: names a bucket, not an object"
        )));
    }
    let store = Store::open(&StoreLocation::S3 {
        bucket,
        prefix: String::new(),
    })
    .map_err(Error::Failed)?;
    Ok((store, ObjectPath::from(prefix.as_str())))
}

/// One folder of a store that holds evidence files (`heapgate mcp`'s `list_evidence`).
pub(crate) struct Folder {
    /// How a user names the folder (a path or an `s3://` URL).
    pub(crate) name: String,
    /// Set when the folder is a series the leak watch stored: its manifest, or why it cannot
    /// be read.
    pub(crate) manifest: Option<Result<Manifest, String>>,
    /// Its evidence files, in name order (the watch's names start with a UTC stamp).
    pub(crate) files: Vec<StoredFile>,
}

/// One evidence file in a store.
pub(crate) struct StoredFile {
    /// How a user names it (a path or an `s3://` URL).
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) modified: chrono::DateTime<chrono::Utc>,
}

/// Whether `name` is a snapshot or profile file, plain or compressed, however it got there
/// (the watch's names, `heapgate fetch --out`, a copy).
pub(crate) fn is_evidence_file(name: &str) -> bool {
    [
        ".heapsnapshot",
        ".heapsnapshot.zst",
        ".heapsnapshot.gz",
        ".heapprofile",
        ".pb.gz",
    ]
    .iter()
    .any(|suffix| name.ends_with(suffix))
}

/// Every folder under `location` that holds evidence files, with the series' manifests
/// ([`Store::series`]) where the leak watch stored one.
pub(crate) fn folders(location: &StoreLocation) -> Result<Vec<Folder>, Error> {
    if let StoreLocation::Dir(dir) = location
        && !dir.is_dir()
    {
        return Err(Error::Failed(format!(
            "{}: no such directory",
            dir.display()
        )));
    }
    let store = Store::open(location).map_err(Error::Failed)?;
    let failed = |e: object_store::Error| Error::Failed(format!("listing {location}: {e}"));
    runtime()?.block_on(async {
        let mut manifests: HashMap<String, Result<Manifest, String>> = store
            .series()
            .await
            .map_err(failed)?
            .into_iter()
            .map(|s| (s.folder.to_string(), s.manifest))
            .collect();
        let mut by_folder: BTreeMap<String, Vec<StoredFile>> = BTreeMap::new();
        let mut listing = store.objects().list(Some(store.prefix()));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(failed)?;
            if !is_evidence_file(meta.location.as_ref()) {
                continue;
            }
            let folder = meta
                .location
                .as_ref()
                .rsplit_once('/')
                .map_or("", |(folder, _)| folder)
                .to_owned();
            by_folder.entry(folder).or_default().push(StoredFile {
                name: store.display(&meta.location),
                size: meta.size,
                modified: meta.last_modified,
            });
        }
        Ok(by_folder
            .into_iter()
            .map(|(folder, mut files)| {
                files.sort_by(|a, b| a.name.cmp(&b.name));
                Folder {
                    name: store.display(&ObjectPath::from(folder.as_str())),
                    manifest: manifests.remove(&folder),
                    files,
                }
            })
            .collect())
    })
}

/// `heapgate list DIR|s3://bucket/prefix`: one block per stored series.
pub(crate) fn list(store: &str, out: &mut dyn Write) -> Result<(), Error> {
    let location =
        StoreLocation::parse(store).map_err(|e| Error::Config(format!("{store}: {e}")))?;
    if let StoreLocation::Dir(dir) = &location
        && !dir.is_dir()
    {
        return Err(Error::Failed(format!(
            "{}: no such directory",
            dir.display()
        )));
    }
    let store = Store::open(&location).map_err(Error::Failed)?;
    let series = runtime()?
        .block_on(store.series())
        .map_err(|e| Error::Failed(format!("listing {location}: {e}")))?;
    let w = |out: &mut dyn Write, text: String| {
        writeln!(out, "{text}").map_err(|e| crate::output_error(&e))
    };
    if series.is_empty() {
        return w(out, format!("no stored series in {location}"));
    }
    for series in series {
        let folder = store.display(&series.folder);
        match series.manifest {
            Ok(m) => {
                let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
                let growth = m
                    .trigger
                    .floor_to_bytes
                    .saturating_sub(m.trigger.floor_from_bytes);
                let ended = m.ended.as_ref().map_or("running", |e| e.reason.as_str());
                w(
                    out,
                    format!(
                        "{folder}\n  task {}  started {}  heap floor +{:.1} MiB in {}s ({:.1} → {:.1} MiB)  ended: {ended}",
                        m.task,
                        utc_seconds(&m.started_at),
                        mib(growth),
                        m.trigger.over_seconds,
                        mib(m.trigger.floor_from_bytes),
                        mib(m.trigger.floor_to_bytes),
                    ),
                )?;
                let e = m.evidence();
                let held = if e.held_back > 0 {
                    format!(
                        " ({} held back by the headroom rule: would not fit in the task's memory)",
                        e.held_back
                    )
                } else {
                    String::new()
                };
                w(
                    out,
                    format!(
                        "  evidence: {} profile(s), {} snapshot(s){held}",
                        e.profiles, e.snapshots
                    ),
                )?;
            }
            Err(e) => w(out, format!("{folder}\n  (unreadable manifest: {e})"))?,
        }
        for object in &series.evidence {
            w(out, format!("  {}", store.display(object)))?;
        }
    }
    Ok(())
}

/// `2026-12-03T03:15:00Z`: a manifest's RFC 3339 time in UTC to the second, as `list` shows every
/// time; a time that does not parse is shown as stored.
pub(crate) fn utc_seconds(stored: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(stored).map_or_else(
        |_| stored.to_owned(),
        |t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        },
    )
}
