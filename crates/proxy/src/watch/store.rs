//! Storage that outlives the task: a directory or an S3 bucket, through `object_store`.
//!
//! Layout under the store's prefix: `<task>/<series>/<UTC stamp>.heapprofile` for each sampling
//! heap profile (DevTools' JSON, a few KiB), `<task>/<series>/<UTC stamp>.heapsnapshot.zst` for
//! each snapshot, and `<task>/<series>/manifest.json`. Snapshots are written as multipart uploads,
//! part by part as the compressed bytes come, so memory stays bounded and nothing is copied to
//! local disk first; an upload that does not finish is aborted, so no object that looks complete
//! is left (S3 shows nothing until completion; a directory gets the file only when it is renamed
//! from its staging name at completion).
//!
//! S3 credentials come from the standard AWS chain as `object_store` reads it (environment
//! variables, web identity, the ECS task role through `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`,
//! then instance metadata); `AWS_ENDPOINT_URL` points it at another S3-compatible server.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};
use serde::{Deserialize, Serialize};

/// Where stored snapshots go: `--store DIR` or `--store s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Dir(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl StoreLocation {
    /// Parses `s3://bucket[/prefix]` or a directory path.
    pub fn parse(text: &str) -> Result<StoreLocation, String> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let plain =
                |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
            if bucket.len() < 3 || bucket.len() > 63 || !bucket.chars().all(plain) {
                return Err(format!(
                    "not an S3 bucket name in {:?} (3-63 of a-z 0-9 . -)",
                    text.chars().take(80).collect::<String>()
                ));
            }
            let prefix = prefix.trim_matches('/');
            Path::parse(prefix).map_err(|e| format!("S3 prefix: {e}"))?;
            return Ok(StoreLocation::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        if text.contains("://") {
            return Err("only s3:// URLs and directories are supported".to_owned());
        }
        if text.is_empty() {
            return Err("empty store".to_owned());
        }
        Ok(StoreLocation::Dir(PathBuf::from(text)))
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Dir(dir) => write!(f, "{}", dir.display()),
            StoreLocation::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StoreLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// An opened store.
#[derive(Debug, Clone)]
pub struct Store {
    objects: Arc<dyn ObjectStore>,
    prefix: Path,
    location: StoreLocation,
}

/// Retries of each storage request: 0.5 s doubling to 8 s, at most 5 retries and 30 s in all,
/// so a store that is down is reported within a minute rather than object_store's 3.
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            base: 2.0,
        },
        max_retries: 5,
        retry_timeout: Duration::from_secs(30),
    }
}

impl Store {
    /// Opens `location` (creating the directory), with S3 settings from the environment.
    pub fn open(location: &StoreLocation) -> Result<Store, String> {
        match location {
            StoreLocation::Dir(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                let fs = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| format!("{}: {e}", dir.display()))?;
                Ok(Store {
                    objects: Arc::new(fs),
                    prefix: Path::default(),
                    location: location.clone(),
                })
            }
            StoreLocation::S3 { bucket, prefix } => {
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry());
                let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
                    .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
                    .ok();
                if let Some(endpoint) = endpoint.filter(|e| !e.is_empty()) {
                    // A local S3-compatible server speaks plain http and path-style URLs.
                    if endpoint.starts_with("http://") {
                        builder = builder.with_allow_http(true);
                    }
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                if std::env::var_os("AWS_REGION").is_none()
                    && std::env::var_os("AWS_DEFAULT_REGION").is_none()
                {
                    builder = builder.with_region("us-east-1");
                }
                let s3 = builder.build().map_err(|e| format!("s3://{bucket}: {e}"))?;
                Ok(Store {
                    objects: Arc::new(s3),
                    prefix: Path::from(prefix.as_str()),
                    location: location.clone(),
                })
            }
        }
    }

    /// The object store itself.
    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// `relative` (slash-separated) under the store's prefix.
    pub fn path(&self, relative: &str) -> Path {
        let mut path = self.prefix.clone();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            path = path.child(part);
        }
        path
    }

    /// The store's prefix.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// How a user names the object at `path` (a file path or an `s3://` URL).
    pub fn display(&self, path: &Path) -> String {
        match &self.location {
            StoreLocation::Dir(dir) => dir.join(path.as_ref()).display().to_string(),
            StoreLocation::S3 { bucket, .. } => format!("s3://{bucket}/{path}"),
        }
    }

    pub fn location(&self) -> &StoreLocation {
        &self.location
    }
}

/// The file name of the manifest in each series' folder.
pub const MANIFEST: &str = "manifest.json";

/// `manifest.json`: what a stored series is, for `heapgate list` and for people.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub task: String,
    /// The series' folder name: its UTC start stamp and the inspector session's series id.
    pub series: String,
    /// The inspector session's series (V8 object ids are comparable within it).
    pub session: String,
    pub heapgate_version: String,
    pub started_at: String,
    /// Why the series was taken.
    pub trigger: TriggerRecord,
    pub captures: Vec<CaptureRecord>,
    /// How the series ended; `None` while it runs.
    pub ended: Option<EndRecord>,
}

/// What one stored series holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Evidence {
    /// Sampling heap profiles stored.
    pub profiles: usize,
    /// Heap snapshots stored.
    pub snapshots: usize,
    /// Snapshots the headroom rule held back (a profile was stored instead).
    pub held_back: usize,
}

impl Manifest {
    /// The evidence kinds its captures hold (manifests written before profiles existed list
    /// only snapshots).
    pub fn evidence(&self) -> Evidence {
        let mut evidence = Evidence::default();
        for capture in &self.captures {
            evidence.profiles += usize::from(capture.profile.is_some());
            evidence.snapshots += usize::from(capture.file.is_some());
            evidence.held_back += usize::from(capture.snapshot_held_back.is_some());
        }
        evidence
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TriggerRecord {
    pub reason: String,
    pub floor_from_bytes: u64,
    pub floor_to_bytes: u64,
    pub over_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CaptureRecord {
    /// The snapshot's object name within the series' folder; `None` when none was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The sampling heap profile's object name within the series' folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Why the headroom rule held the snapshot back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_held_back: Option<String>,
    pub at: String,
    pub heap_used_bytes: u64,
    pub heap_total_bytes: u64,
    pub rss_bytes: Option<u64>,
    /// Bytes stored (the snapshot compressed, and the profile).
    pub stored_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EndRecord {
    /// `complete`, `app_restarted`, `headroom`, `storage_failed`, `snapshot_failed`,
    /// `gate_busy`, `app_unreachable`.
    pub reason: String,
    pub detail: String,
    pub at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            StoreLocation::parse("s3://my-bucket/heap/dumps/").unwrap(),
            StoreLocation::S3 {
                bucket: "my-bucket".into(),
                prefix: "heap/dumps".into()
            }
        );
        assert_eq!(
            StoreLocation::parse("s3://my-bucket").unwrap().to_string(),
            "s3://my-bucket"
        );
        assert_eq!(
            StoreLocation::parse("/var/heapgate").unwrap(),
            StoreLocation::Dir("/var/heapgate".into())
        );
        assert!(StoreLocation::parse("s3://").is_err());
        assert!(StoreLocation::parse("s3://Bad_Bucket/x").is_err());
        assert!(StoreLocation::parse("gs://bucket/x").is_err());
        assert!(StoreLocation::parse("").is_err());
    }
}
