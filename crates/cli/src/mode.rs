//! The one rule for the modes of the files heapgate writes.
//!
//! A snapshot holds whatever the app held (users' data, tokens; a redacted one still every name),
//! so it is readable by its owner only: fetched snapshots, `redact` output. A report (`--html`)
//! is meant to be attached to a ticket and shared, so it gets the mode any new file gets (0666
//! less the umask: 0644 under the usual 022).

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;

/// Mode of a written snapshot (plain or compressed, redacted or not).
pub(crate) const SNAPSHOT: u32 = 0o600;
/// Mode asked for a written report; the umask narrows it.
pub(crate) const REPORT: u32 = 0o666;

pub(crate) fn snapshot() -> Permissions {
    Permissions::from_mode(SNAPSHOT)
}

pub(crate) fn report() -> Permissions {
    Permissions::from_mode(REPORT)
}
