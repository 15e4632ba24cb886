//! A store opened through `object_store`.
//!
//! Snapshots are written as multipart uploads, part by part as the compressed bytes come, so
//! memory stays bounded and nothing is copied to local disk first; an upload that does not
//! finish is aborted, so no object that looks complete is left (S3 shows nothing until
//! completion; a directory gets the file only when it is renamed from its staging name at
//! completion).
//!
//! S3 credentials come from the standard AWS chain as `object_store` reads it (environment
//! variables, web identity, the ECS task role through `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`,
//! then instance metadata); `AWS_ENDPOINT_URL` points it at another S3-compatible server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};

use crate::{MANIFEST, Manifest, StoreLocation, layout};

/// An opened store.
#[derive(Debug, Clone)]
pub struct Store {
    objects: Arc<dyn ObjectStore>,
    prefix: Path,
    location: StoreLocation,
}

/// A series found in a store.
#[derive(Debug, Clone)]
pub struct StoredSeries {
    /// Its folder.
    pub folder: Path,
    /// Its manifest, or why it cannot be read.
    pub manifest: Result<Manifest, String>,
    /// Its snapshots and profiles, in the order they were taken.
    pub evidence: Vec<Path>,
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

    /// Every series under the prefix (a folder holding a manifest), in folder order; other
    /// objects are ignored.
    pub async fn series(&self) -> Result<Vec<StoredSeries>, object_store::Error> {
        let mut by_folder: BTreeMap<String, Vec<Path>> = BTreeMap::new();
        let mut listing = self.objects.list(Some(&self.prefix));
        while let Some(meta) = listing.next().await {
            let path = meta?.location;
            if let Some((folder, _)) = path.as_ref().rsplit_once('/') {
                by_folder.entry(folder.to_owned()).or_default().push(path);
            }
        }
        let mut found = Vec::new();
        for (folder, objects) in by_folder {
            let Some(manifest_path) = objects
                .iter()
                .find(|p| p.filename() == Some(MANIFEST))
                .cloned()
            else {
                continue;
            };
            // The listing's own text, already a valid path.
            let Ok(folder) = Path::parse(&folder) else {
                continue;
            };
            let manifest = match self.objects.get(&manifest_path).await {
                Ok(got) => match got.bytes().await {
                    Ok(bytes) => serde_json::from_slice::<Manifest>(&bytes)
                        .map_err(|e| format!("{MANIFEST}: {e}")),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            // In the order they were taken (their names start with a UTC stamp), whatever
            // order the store lists them in.
            let mut evidence: Vec<Path> = objects
                .into_iter()
                .filter(|p| p.filename().is_some_and(layout::is_evidence))
                .collect();
            evidence.sort();
            found.push(StoredSeries {
                folder,
                manifest,
                evidence,
            });
        }
        Ok(found)
    }
}
