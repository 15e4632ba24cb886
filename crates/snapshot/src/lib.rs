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
//! **Who holds it.** Each loaded file also gets DevTools' dominator tree (Lengauer–Tarjan over
//! the edges DevTools treats as essential), retained sizes, distances from the roots and the
//! Summary view's per-class `Retained Size` ([`Summary::classes`]). A [`Snapshot`] keeps the
//! graph in memory to find the retainer path DevTools' Retainers pane opens first and to group
//! objects by it ([`Snapshot::retainer_groups`]); [`compare`] runs the whole two- or
//! three-snapshot comparison (`# Kept`: objects new in the second file still alive in the
//! third) holding one graph at a time. [`testing`] exposes per-node numbers for tests that
//! compare heapgate with DevTools' own code.
//!
//! **Drill-down.** [`Snapshot::open_with`] opens one file for any question, from its index in a
//! [`Cache`] when one is there (the first analysis writes it; see [`Cache`] for how it is keyed
//! and why a damaged or foreign index is never trusted), reporting [`Progress`] and honouring
//! cancellation through a [`Work`]. Objects are named by their node id (`@12345`):
//! [`Snapshot::object`] (class, sizes, distance, edges, retainers, grouped retainer paths),
//! [`Snapshot::query`] (by class, location, edge name, minimum retained size; paged),
//! [`Snapshot::largest`] and [`Snapshot::holders`] (who holds one class). Answers are plain
//! serializable structs; string contents are never read, and names that may be data are
//! hidden unless [`Strings::Shown`].
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

mod analysis;
mod classify;
mod column;
mod decode;
mod diff;
mod dominators;
mod error;
mod fxhash;
mod graph;
mod holder;
mod identity;
mod index;
mod input;
mod layout;
mod load;
mod model;
mod object;
mod parse;
mod query;
mod redact;
mod render;
mod render_drill;
mod report;
mod spill;
mod summary;
mod work;

pub use analysis::{MIN_KEYS, RetainerGroup, Snapshot};
pub use decode::{Encoding, decoded};
pub use diff::{
    ClassDiff, Diff, ENGINE_CLASSES, SortBy, Totals, UnknownSortBy, comparability, diff,
};
pub use error::SnapshotError;
pub use holder::Holder;
pub use identity::{Comparability, Verdict};
pub use index::{
    Cache, DEFAULT_MAX_BYTES, IndexUse, OpenOptions, Opened, OpenedSummary, SourceIdentity,
};
pub use load::load;
pub use model::{ClassSummary, InterfaceDefinition, Location, PathStep, SnapshotInfo};
pub use object::{
    EdgeView, HIDDEN_KEY, ObjectOptions, ObjectRef, ObjectView, Page, Paging, Strings,
};
pub use query::{ClassInstances, Holders, Query, QueryAnswer};
pub use redact::{PLACEHOLDER, RedactError, RedactStats, Redactor, redact};
pub use render::{
    MAX_NAME_WIDTH, SHOWN_STEPS, render_answer, render_retainers, render_summary, render_table,
};
pub use render_drill::{render_holders, render_largest, render_object, render_query};
pub use report::{CompareOptions, Comparison, FileClasses, compare, compare_with};
pub use summary::Summary;
pub use work::{Progress, Stage, Work};

/// Per-node numbers for tests that compare heapgate with DevTools' own `HeapSnapshot.ts` (the
/// oracle in `tests/devtools-oracle`). Not a stable API.
pub mod testing {
    use std::path::Path;

    use crate::{PathStep, Snapshot, SnapshotError};

    /// One step up a retainer chain: the retainer's id, the edge's name (or index) and type.
    pub type ChainStep = (u32, String, String);

    /// `(node id, retained size)` of every node, in file order.
    pub fn retained_sizes(path: impl AsRef<Path>) -> Result<Vec<(u32, u64)>, SnapshotError> {
        Snapshot::open(path).map(|s| s.retained_sizes())
    }

    /// `(node id, id of its immediate dominator)` of every node, in file order.
    pub fn dominators(path: impl AsRef<Path>) -> Result<Vec<(u32, u32)>, SnapshotError> {
        Snapshot::open(path).map(|s| s.dominators())
    }

    /// `(node id, distance)` of every node, in file order; DevTools' numbers (`-5` for none,
    /// 100,000,000 and up for what only the root reaches).
    pub fn distances(path: impl AsRef<Path>) -> Result<Vec<(u32, i32)>, SnapshotError> {
        Snapshot::open(path).map(|s| s.distances())
    }

    /// `(node id, shallow size after DevTools' folding)` of every node, in file order.
    pub fn shallow_sizes(path: impl AsRef<Path>) -> Result<Vec<(u32, u32)>, SnapshotError> {
        Snapshot::open(path).map(|s| {
            s.retained_sizes()
                .iter()
                .map(|&(id, _)| id)
                .zip(s.shallow_sizes())
                .collect()
        })
    }

    /// The retainer chain of node `id` that DevTools' Retainers pane opens first, from the node
    /// up: `(retainer id, edge name or index, edge type)` per step (DevTools stops expanding
    /// after 20; this goes on to a user root or a root). `None` if no node has that id.
    pub fn first_retainer_chain(
        path: impl AsRef<Path>,
        id: u32,
    ) -> Result<Option<Vec<ChainStep>>, SnapshotError> {
        Snapshot::open(path).map(|s| s.first_retainer_ids(id))
    }

    /// The retainer chain of node `id` that DevTools' Retainers pane opens first, root side
    /// first (each step: node class, the edge that holds it, the edge's type); `None` if no
    /// node has that id.
    pub fn first_retainer_path(
        path: impl AsRef<Path>,
        id: u32,
    ) -> Result<Option<Vec<PathStep>>, SnapshotError> {
        Snapshot::open(path).map(|s| s.first_retainer_path(id))
    }
}
