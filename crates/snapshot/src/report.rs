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

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use crate::analysis::{IdSet, Snapshot, Subjects};
use crate::diff::{Diff, SortBy, comparability, diff};
use crate::error::SnapshotError;
use crate::identity::Comparability;
use crate::index::{OpenOptions, SourceIdentity};
use crate::load::load;
use crate::model::{ClassSummary, Location, SnapshotInfo};
use crate::summary::Summary;

/// What [`compare`] adds beyond the Comparison rows.
#[derive(Clone, Copy, Debug)]
pub struct CompareOptions {
    /// Row order; `None` means [`SortBy::NewRetained`] for two files, [`SortBy::Kept`] for
    /// three.
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
    /// Every file's facts and classes (named like the rows), in file order: the growth of a
    /// class across the series.
    pub files: Vec<FileClasses>,
}

/// One file of a comparison: its facts and every class with count, self size and retained
/// size, plain objects named with the definitions the rows use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileClasses {
    /// Facts about the file.
    pub info: SnapshotInfo,
    /// The Summary view of the file, largest retained size first.
    pub classes: Vec<ClassSummary>,
}

impl FileClasses {
    fn of(summary: &Summary, definitions: &[crate::InterfaceDefinition]) -> FileClasses {
        FileClasses {
            info: summary.info().clone(),
            classes: summary.classes_with(definitions),
        }
    }
}

/// What [`compare`] keeps of the files before the last while the last one is read.
enum BeforeLast {
    /// BASE, whole.
    Two(Summary),
    /// B (for its definitions and ids), and what A was needed for.
    Three {
        middle: Summary,
        rows: Diff,
        before: HashMap<(String, Option<Location>), u64>,
        new_ids: Vec<u32>,
        files: Vec<FileClasses>,
    },
}

/// Every id counted in a summary, sorted (allocated once, at its final size).
fn all_ids(summary: &Summary) -> Vec<u32> {
    let mut ids: Vec<u32> =
        Vec::with_capacity(summary.groups.iter().map(|g| g.members.len()).sum());
    for group in &summary.groups {
        ids.extend(group.members.iter().map(|m| m.id));
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The ids counted in `summary` and not in `before` (sorted), sorted: the new objects, without
/// a sorted copy of every id of `summary`.
fn new_ids(summary: &Summary, before: &[u32]) -> Vec<u32> {
    let before = IdSet::new(before);
    let mut ids: Vec<u32> = summary
        .groups
        .iter()
        .flat_map(|g| g.members.iter().map(|m| m.id))
        .filter(|&id| !before.has(id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
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
    let last = files.len() - 1;
    compare_by(
        files.len(),
        options,
        |i| load(&files[i]),
        |subjects| Snapshot::open_for_compare(files[last].as_ref(), subjects),
    )
}

/// [`compare`] with each file opened by [`Snapshot::open_with`]: from its index when the cache
/// has one (else the index is written), with `open`'s progress and cancellation. `identities`
/// names the sources whose paths cannot (pipes fed from `s3://`); it may be shorter than
/// `files`. Returns the comparison and the cache's one-line warnings.
///
/// # Panics
/// When `files` does not hold two or three paths, as [`compare`].
pub fn compare_with(
    files: &[impl AsRef<Path>],
    identities: &[Option<SourceIdentity>],
    options: &CompareOptions,
    open: &OpenOptions,
) -> Result<(Comparison, Vec<String>), SnapshotError> {
    assert!(
        files.len() == 2 || files.len() == 3,
        "compare takes two or three files"
    );
    let warnings = std::cell::RefCell::new(Vec::new());
    let open_options = |i: usize| match identities.get(i) {
        Some(Some(identity)) => open.clone().identity(identity.clone()),
        _ => open.clone(),
    };
    let last = files.len() - 1;
    let comparison = compare_by(
        files.len(),
        options,
        options_summary(&open_options, files, &warnings),
        |subjects| {
            Snapshot::open_for_compare_with(
                files[last].as_ref(),
                &open_options(last),
                subjects,
                &mut warnings.borrow_mut(),
            )
        },
    )?;
    Ok((comparison, warnings.into_inner()))
}

/// How [`compare_with`] summarises file `i`: from the summary's part of its index, if any.
fn options_summary<'a, P: AsRef<Path>>(
    options: &'a impl Fn(usize) -> OpenOptions,
    files: &'a [P],
    warnings: &'a std::cell::RefCell<Vec<String>>,
) -> impl FnMut(usize) -> Result<Summary, SnapshotError> + 'a {
    move |i| {
        let opened = Summary::open_with(files[i].as_ref(), &options(i))?;
        warnings.borrow_mut().extend(opened.warnings);
        Ok(opened.summary)
    }
}

/// The comparison of `files` (2 or 3) files, given how to summarise file `i` and how to open
/// the last one with its subjects' class sums.
fn compare_by(
    files: usize,
    options: &CompareOptions,
    mut summary: impl FnMut(usize) -> Result<Summary, SnapshotError>,
    last: impl FnOnce(Subjects<'_>) -> Result<Snapshot, SnapshotError>,
) -> Result<Comparison, SnapshotError> {
    let first = summary(0)?;
    let mut checks = Vec::new();
    // With three files, everything A is needed for is worked out before C is read, so that A
    // is gone when C's graph (the peak) is built.
    let before_last = if files == 3 {
        let middle = summary(1)?;
        checks.push(comparability(&first, &middle));
        let rows = diff(&first, &middle);
        // Retained sizes are named with the definitions the rows use (B's).
        let before = first.retained_with(middle.interfaces());
        let new_ids = new_ids(&middle, &all_ids(&first));
        let files = vec![
            FileClasses::of(&first, middle.interfaces()),
            FileClasses::of(&middle, middle.interfaces()),
        ];
        drop(first);
        BeforeLast::Three {
            middle,
            rows,
            before,
            new_ids,
            files,
        }
    } else {
        BeforeLast::Two(first)
    };
    // Two files: the new objects are those whose ids BASE does not have.
    let base_ids = match &before_last {
        BeforeLast::Two(first) => all_ids(first),
        BeforeLast::Three { .. } => Vec::new(),
    };
    let subjects = match &before_last {
        BeforeLast::Three { new_ids, .. } => Subjects::Ids(new_ids),
        BeforeLast::Two(_) => Subjects::NotIn(&base_ids),
    };
    let last = last(subjects)?;

    let (mut rows, middle_new, subjects, files) = match before_last {
        BeforeLast::Three {
            middle,
            mut rows,
            before,
            new_ids,
            mut files,
        } => {
            checks.push(comparability(&middle, last.summary()));
            files.push(FileClasses::of(last.summary(), middle.interfaces()));
            // Retained sizes are the last file's.
            let now = last.summary().retained_with(middle.interfaces());
            drop(middle);
            for row in &mut rows.classes {
                let key = (row.name.clone(), row.location);
                row.retained_size = now.get(&key).copied().unwrap_or_default();
                row.retained_size_delta =
                    row.retained_size as i64 - before.get(&key).copied().unwrap_or_default() as i64;
            }
            let no_kept = HashMap::new();
            let kept = last.kept().unwrap_or(&no_kept);
            for row in &mut rows.classes {
                let (count, retained) = kept
                    .get(&(row.name.clone(), row.location))
                    .copied()
                    .unwrap_or_default();
                row.kept_count = Some(count);
                row.kept_retained_size = Some(retained);
            }
            (rows, true, new_ids, files)
        }
        BeforeLast::Two(first) => {
            checks.push(comparability(&first, last.summary()));
            let mut rows = diff(&first, last.summary());
            let no_new = HashMap::new();
            let held = last.kept().unwrap_or(&no_new);
            for row in &mut rows.classes {
                let (_, retained) = held
                    .get(&(row.name.clone(), row.location))
                    .copied()
                    .unwrap_or_default();
                row.new_retained_size = Some(retained);
            }
            let new_ids = new_ids(last.summary(), &base_ids);
            let definitions = last.summary().interfaces();
            let files = vec![
                FileClasses::of(&first, definitions),
                FileClasses::of(last.summary(), definitions),
            ];
            (rows, false, new_ids, files)
        }
    };
    let sort = options.sort.unwrap_or(if middle_new {
        SortBy::Kept
    } else {
        SortBy::NewRetained
    });
    rows.sort(sort);
    // The top classes that have objects to show: a class none of whose new objects was kept
    // does not take one of the places.
    let mut chosen = 0;
    for row in &mut rows.classes {
        if chosen == options.retainer_classes {
            break;
        }
        if row.kept_count == Some(0) || (row.kept_count.is_none() && row.new_count == 0) {
            continue;
        }
        chosen += 1;
        let ids = last.ids_of_class(&row.name, row.location, Some(&subjects));
        row.retainers = last.retainer_groups(&ids, options.groups_per_class);
    }
    Ok(Comparison {
        diff: rows,
        checks,
        newest: last.into_summary(),
        files,
    })
}
