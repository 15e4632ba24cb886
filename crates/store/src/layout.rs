//! The layout under a store's prefix, one folder per series:
//!
//! ```text
//! <task>/<series>/<stamp>.heapprofile        a sampling heap profile (DevTools' JSON, a few KiB)
//! <task>/<series>/<stamp>.heapsnapshot.zst   a heap snapshot, zstd-compressed
//! <task>/<series>/manifest.json              the series' [`Manifest`](crate::Manifest)
//! ```
//!
//! `<series>` is `<stamp>-<inspector session>`, and `<stamp>` a UTC time to the second
//! (`20261203T031500Z`), so names sort in the order things were taken.

use chrono::{DateTime, Utc};

/// How a stored snapshot's name ends.
pub const SNAPSHOT_EXTENSION: &str = ".heapsnapshot.zst";
/// How a stored sampling heap profile's name ends.
pub const PROFILE_EXTENSION: &str = ".heapprofile";

/// `20261203T031500Z`: `at` in UTC to the second, as every name starts.
pub fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// The id of a series started at `started` on the inspector session `session`.
pub fn series_id(started: DateTime<Utc>, session: &str) -> String {
    format!("{}-{session}", stamp(started))
}

/// The folder of series `series` of task `task`, relative to the store's prefix.
pub fn series_folder(task: &str, series: &str) -> String {
    format!("{task}/{series}")
}

/// The name of a snapshot taken at `at`, within its series' folder.
pub fn snapshot_name(at: DateTime<Utc>) -> String {
    format!("{}{SNAPSHOT_EXTENSION}", stamp(at))
}

/// The name of a sampling heap profile taken at `at`, within its series' folder.
pub fn profile_name(at: DateTime<Utc>) -> String {
    format!("{}{PROFILE_EXTENSION}", stamp(at))
}

/// Whether the object named `name` is evidence (a snapshot or a profile).
pub fn is_evidence(name: &str) -> bool {
    name.ends_with(SNAPSHOT_EXTENSION) || name.ends_with(PROFILE_EXTENSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_start_with_the_utc_stamp() {
        let at = DateTime::parse_from_rfc3339("2026-12-03T04:15:00+01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(series_id(at, "s1"), "20261203T031500Z-s1");
        assert_eq!(
            series_folder("t1", &series_id(at, "s1")),
            "t1/20261203T031500Z-s1"
        );
        assert_eq!(snapshot_name(at), "20261203T031500Z.heapsnapshot.zst");
        assert_eq!(profile_name(at), "20261203T031500Z.heapprofile");
        assert!(is_evidence(&snapshot_name(at)) && is_evidence(&profile_name(at)));
        assert!(!is_evidence(crate::MANIFEST));
    }
}
