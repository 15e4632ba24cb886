//! Compares two V8 `.heapsnapshot` files the way Chrome DevTools' Comparison view does, without
//! DevTools and without holding either file in memory.
//!
//! A leak shows up as a class whose objects keep being allocated and never freed between two
//! snapshots of the same process. DevTools answers that with its Comparison view, but only
//! interactively and only for snapshots that fit in a browser tab. `heapgate diff` gives the same
//! table on a server or in CI, so the numbers must be DevTools' own: the same classes, the same
//! counts and the same byte sizes. The rules, reproduced from devtools-frontend's
//! `HeapSnapshot.ts` and checked against DevTools' snapshot worker on real Node.js snapshots:
//!
//! - objects are grouped into classes by their constructor or type (`(system)`,
//!   `(compiled code)`, `Function`, `(string)`, plain objects by shape such as `{url, method}`…),
//!   split by constructor location;
//! - sizes are self sizes after DevTools folds singly-owned arrays and internal nodes into their
//!   owner; nodes left with size 0 are not counted;
//! - objects are matched between the files by id: `# New` / `Alloc. Size` for ids only in NEW,
//!   `# Deleted` / `Freed Size` for ids only in BASE.
//!
//! Snapshots are often hundreds of megabytes. [`load`] streams a file into compact columns (a
//! fast scanner for the big integer arrays, `serde_json` for the rest), keeps only the strings it
//! needs, and boils the graph down to a [`Summary`] (ids and sizes per class) before the next
//! file is read: comparing two 400 MB snapshots takes a few seconds and peaks well below the size
//! of the larger file.
//!
//! Matching by id is only meaningful within one process, so [`comparability`] checks that the
//! two files are a series before anyone trusts the diff.
//!
//! ```no_run
//! use heapgate_snapshot::{SortBy, comparability, diff, load, render_table};
//!
//! let base = load("before.heapsnapshot")?;
//! let new = load("after.heapsnapshot")?;
//! let check = comparability(&base, &new);
//! if check.is_warning() {
//!     eprintln!("warning: {}", check.message);
//! }
//! let mut rows = diff(&base, &new);
//! rows.sort(SortBy::CountDelta);
//! print!("{}", render_table(&rows, Some(20)));
//! println!("{}", serde_json::to_string(&rows)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod classify;
mod decode;
mod diff;
mod error;
mod fxhash;
mod graph;
mod identity;
mod input;
mod layout;
mod model;
mod parse;
mod redact;
mod render;
mod summary;

pub use decode::{Encoding, decoded};
pub use diff::{ClassDiff, Diff, SortBy, Totals, UnknownSortBy, diff};
pub use error::SnapshotError;
pub use identity::{Comparability, Verdict, comparability};
pub use model::{ClassSummary, InterfaceDefinition, Location, SnapshotInfo};
pub use redact::{PLACEHOLDER, RedactError, RedactStats, Redactor, redact};
pub use render::{MAX_NAME_WIDTH, render_table};
pub use summary::{Summary, load};
