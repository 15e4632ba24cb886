//! Two or three snapshots compared end to end, holding at most one graph at a time.
//!
//! - Two files (BASE, NEW): DevTools' Comparison rows, each with the class's Retained Size in
//!   NEW and its change, and for the top classes the retainer paths of their new objects.
//! - Three files (A, B, C, as `heapgate fetch --count 3` takes them): the rows compare A with B
//!   (what was allocated in between), and `# Kept` counts those new objects that are still alive
//!   in C, matched by id — allocations that were freed again drop out, what stays is the leak
//!   (memlab's baseline/target/final). Retained sizes are C's (and their change since A). Rows
//!   rank by the kept objects' retained size, and retainer paths are those of the kept objects.
//!
//! A and B are boiled down to summaries (ids and sizes) as they are read; only the last file's
//! graph stays in memory while its retained sizes and paths are worked out.

use std::path::Path;

use crate::analysis::Snapshot;
use crate::diff::{Diff, SortBy, diff};
use crate::error::SnapshotError;
use crate::identity::{Comparability, comparability};
use crate::summary::{Summary, load};

/// What [`compare`] adds beyond the Comparison rows.
#[derive(Clone, Copy, Debug)]
pub struct CompareOptions {
    /// Row order; `None` means [`SortBy::SizeDelta`] for two files, [`SortBy::Kept`] for three.
    pub sort: Option<SortBy>,
    /// For how many of the top rows to find retainer paths (0: none).
    pub retainer_classes: usize,
    /// At most this many path groups per class.
    pub groups_per_class: usize,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            sort: None,
            retainer_classes: 3,
            groups_per_class: 3,
        }
    }
}

/// The result of [`compare`].
#[derive(Debug)]
pub struct Comparison {
    /// The rows, sorted.
    pub diff: Diff,
    /// Whether each consecutive pair of files is a series (same process), in file order.
    pub checks: Vec<Comparability>,
    /// The newest file's summary.
    pub newest: Summary,
}

/// Every id counted in a summary, sorted.
fn all_ids(summary: &Summary) -> Vec<u32> {
    let mut ids: Vec<u32> = summary
        .groups
        .iter()
        .flat_map(|g| g.members.iter().map(|m| m.id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Sorted `a` minus sorted `b`.
fn minus(a: &[u32], b: &[u32]) -> Vec<u32> {
    a.iter()
        .copied()
        .filter(|id| b.binary_search(id).is_err())
        .collect()
}

/// Compares two (BASE, NEW) or three (A, B, C) snapshots; see the module documentation.
///
/// # Panics
/// Never on bad input; `files` must hold two or three paths (anything else is a usage error the
/// caller checks).
pub fn compare(
    files: &[impl AsRef<Path>],
    options: &CompareOptions,
) -> Result<Comparison, SnapshotError> {
    assert!(
        files.len() == 2 || files.len() == 3,
        "compare takes two or three files"
    );
    let first = load(&files[0])?;
    let mut checks = Vec::new();
    // Ids whose objects the retainer paths (and # Kept) are about, once the last file is read.
    let middle = if files.len() == 3 {
        let middle = load(&files[1])?;
        checks.push(comparability(&first, &middle));
        Some(middle)
    } else {
        None
    };
    let last = Snapshot::open(files[files.len() - 1].as_ref())?;
    checks.push(comparability(
        middle.as_ref().unwrap_or(&first),
        last.summary(),
    ));

    let (mut rows, middle_new) = match &middle {
        Some(middle) => {
            let mut rows = diff(&first, middle);
            // Retained sizes are the last file's, named with the definitions the rows use.
            let definitions = middle.interfaces();
            let (now, before) = (
                last.summary().retained_with(definitions),
                first.retained_with(definitions),
            );
            for row in &mut rows.classes {
                let key = (row.name.clone(), row.location);
                row.retained_size = now.get(&key).copied().unwrap_or_default();
                row.retained_size_delta =
                    row.retained_size as i64 - before.get(&key).copied().unwrap_or_default() as i64;
            }
            (rows, Some(minus(&all_ids(middle), &all_ids(&first))))
        }
        None => (diff(&first, last.summary()), None),
    };
    drop(middle);
    let subjects = match &middle_new {
        Some(new_ids) => {
            let kept = last.retained_of(new_ids);
            for row in &mut rows.classes {
                let (count, retained) = kept
                    .get(&(row.name.clone(), row.location))
                    .copied()
                    .unwrap_or_default();
                row.kept_count = Some(count);
                row.kept_retained_size = Some(retained);
            }
            new_ids.clone()
        }
        None => minus(&all_ids(last.summary()), &all_ids(&first)),
    };
    let sort = options.sort.unwrap_or(if middle_new.is_some() {
        SortBy::Kept
    } else {
        SortBy::SizeDelta
    });
    rows.sort(sort);
    for row in rows.classes.iter_mut().take(options.retainer_classes) {
        if row.kept_count == Some(0) {
            continue;
        }
        let ids = last.ids_of_class(&row.name, row.location, Some(&subjects));
        row.retainers = last.retainer_groups(&ids, options.groups_per_class);
    }
    Ok(Comparison {
        diff: rows,
        checks,
        newest: last.into_summary(),
    })
}
