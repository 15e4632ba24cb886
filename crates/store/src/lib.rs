//! Where heapgate's leak watch keeps its evidence so it outlives the task, written once for the
//! sidecar that writes it and the tools that read it (`heapgate list`, `diff`/`summary` on
//! `s3://` URLs), none of which need to link the sidecar:
//!
//! - [`StoreLocation`]: `--store DIR` or `--store s3://bucket/prefix`, parsed and shown;
//! - [`Store`]: the location opened through `object_store` (S3 settings from the environment);
//! - the layout ([`layout`]): `<task>/<series>/` folders holding `<stamp>.heapprofile`,
//!   `<stamp>.heapsnapshot.zst` and `manifest.json`, and [`Store::series`] to read them back;
//! - [`Manifest`]: what each series' `manifest.json` says.
//!
//! Listing a store:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use heapgate_store::{Store, StoreLocation};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(&StoreLocation::parse(dir.path().to_str().unwrap())?)?;
//! for series in store.series().await? {
//!     println!("{} ({} objects)", store.display(&series.folder), series.evidence.len());
//! }
//! # Ok(()) }
//! ```

pub mod layout;
mod location;
mod manifest;
mod store;

pub use location::StoreLocation;
pub use manifest::{CaptureRecord, EndRecord, Evidence, MANIFEST, Manifest, TriggerRecord};
pub use store::{Store, StoredSeries};
