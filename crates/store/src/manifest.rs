//! `manifest.json`: what a stored series is, for `heapgate list` and for people.

use serde::{Deserialize, Serialize};

/// The file name of the manifest in each series' folder.
pub const MANIFEST: &str = "manifest.json";

/// A series' `manifest.json`.
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

/// Why a series was taken: the heap floor's growth.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TriggerRecord {
    pub reason: String,
    pub floor_from_bytes: u64,
    pub floor_to_bytes: u64,
    pub over_seconds: u64,
}

/// One capture of a series: the heap's figures then, and what was stored.
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

/// How a series ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EndRecord {
    /// `complete`, `app_restarted`, `headroom`, `storage_failed`, `snapshot_failed`,
    /// `gate_busy`, `app_unreachable`.
    pub reason: String,
    pub detail: String,
    pub at: String,
}
