//! Why a snapshot could not be read: one variant per thing a user can act on, each a one-line
//! message that names the file.
//!
//! The parser never panics on bad input. JSON syntax errors, a file that ends early and a document
//! that is JSON but not a heap snapshot are told apart because each calls for a different fix:
//! wrong file, wait for the writer (or fetch again), or a tool that writes another format.

use std::{io, path::PathBuf};

/// A snapshot that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file could not be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The bytes are not JSON.
    #[error("{}: not a heap snapshot: invalid JSON at line {line}, column {column}", path.display())]
    NotJson {
        /// The file.
        path: PathBuf,
        /// 1-based line of the first offending byte.
        line: usize,
        /// 1-based column of the first offending byte.
        column: usize,
    },
    /// Valid JSON, but not shaped like a V8 heap snapshot (missing keys, wrong types, fields that
    /// do not add up).
    #[error("{}: not a V8 heap snapshot: {reason}", path.display())]
    NotASnapshot {
        /// The file.
        path: PathBuf,
        /// What is wrong, e.g. `no "nodes" array`.
        reason: String,
    },
    /// The file ends before the snapshot does: cut off, or still being written.
    #[error(
        "{}: truncated: the file ends at line {line}, column {column}, before the snapshot does \
         (cut off, or still being written?)",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// 1-based line where the input ran out.
        line: usize,
        /// Column where the input ran out.
        column: usize,
    },
    /// The caller cancelled the operation (see [`crate::Work::cancel_when`]).
    #[error("cancelled")]
    Cancelled,
    /// The object id is not in this snapshot (an id from another snapshot, or a typo).
    #[error("no object @{id} in {}", path.display())]
    NoSuchObject {
        /// The snapshot.
        path: PathBuf,
        /// The id asked for.
        id: u32,
    },
    /// The class is not in this snapshot.
    #[error("no class {name:?} in {}", path.display())]
    NoSuchClass {
        /// The snapshot.
        path: PathBuf,
        /// The class asked for.
        name: String,
    },
}
