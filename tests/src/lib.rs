//! Helpers shared by the end-to-end tests: locating the repo's test data and the external
//! programs (Node.js) the tests drive.
//!
//! A test that needs an external program must never pass silently without it: outside CI it
//! prints a loud `SKIPPED` line; under `CI=true` a missing program is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A file under `tests/data`.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

/// Whether this run is CI, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The `node` executable if it runs; otherwise `None` after a loud notice, or a panic in CI.
pub fn node_or_skip(test: &str) -> Option<PathBuf> {
    let node = PathBuf::from(std::env::var_os("NODE").unwrap_or_else(|| "node".into()));
    let works = Command::new(&node)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if works {
        return Some(node);
    }
    assert!(
        !in_ci(),
        "{test}: node not found, and CI=true forbids skipping; install Node.js"
    );
    eprintln!("\n*** SKIPPED {test}: node not found on PATH (set NODE=/path/to/node) ***\n");
    None
}
