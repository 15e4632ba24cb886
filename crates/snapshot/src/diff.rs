//! The Comparison view: per class, which objects of NEW are new and which of BASE are gone.
//!
//! DevTools' `calculateDiffForClass`: objects are matched by id within a class (both id lists
//! sorted, then merged); an id only in BASE is deleted, only in NEW is new, in both is neither.
//! Sizes are self sizes (after folding, see `graph`), never retained sizes. A class whose objects
//! are all matched is not listed.

use std::{cmp::Ordering, collections::HashSet, fmt, str::FromStr};

use serde::Serialize;

use crate::analysis::RetainerGroup;
use crate::identity::{self, Comparability};
use crate::model::Location;
use crate::summary::{Member, Summary};

/// One row of the Comparison view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClassDiff {
    /// Class name as DevTools shows it.
    pub name: String,
    /// Constructor location; classes of the same name from different places are separate rows.
    pub location: Option<Location>,
    /// `# New`: objects in NEW whose id is not in BASE.
    pub new_count: u64,
    /// `# Deleted`: objects in BASE whose id is not in NEW.
    pub deleted_count: u64,
    /// `# Delta` = `# New` − `# Deleted`.
    pub delta_count: i64,
    /// `Alloc. Size`: self sizes of the new objects, in bytes.
    pub alloc_size: u64,
    /// `Freed Size`: self sizes of the deleted objects, in bytes.
    pub freed_size: u64,
    /// `Size Delta` = `Alloc. Size` − `Freed Size`.
    pub size_delta: i64,
    /// The Summary view's `Retained Size` of the class in NEW (the newest snapshot), in bytes.
    pub retained_size: u64,
    /// `retained_size` minus the class's retained size in BASE (the oldest snapshot).
    pub retained_size_delta: i64,
    /// Three snapshots only: objects new in the middle snapshot (not in the first) that are
    /// still alive in the last, matched by id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_count: Option<u64>,
    /// Three snapshots only: the retained size of the kept objects in the last snapshot
    /// (objects dominated by another kept object of the class counted once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_retained_size: Option<u64>,
    /// Two snapshots only: the retained size of the new objects in NEW (objects dominated by
    /// another new object of the class counted once), what `--sort new-retained` ranks by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_retained_size: Option<u64>,
    /// The name of the script at `location`, when the snapshot names it.
    pub script: Option<String>,
    /// Who holds the new (or kept) objects: groups by retainer path, largest first; empty for
    /// classes beyond `--retainers`.
    pub retainers: Vec<RetainerGroup>,
}

/// Column sums over all rows (not only the ones shown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Sum of `# New`.
    pub new_count: u64,
    /// Sum of `# Deleted`.
    pub deleted_count: u64,
    /// Sum of `# Delta`.
    pub delta_count: i64,
    /// Sum of `Alloc. Size`.
    pub alloc_size: u64,
    /// Sum of `Freed Size`.
    pub freed_size: u64,
    /// Sum of `Size Delta`.
    pub size_delta: i64,
}

/// A whole comparison: its rows (sorted by [`SortBy::SizeDelta`] unless re-sorted) and totals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// One row per class with at least one new or deleted object.
    pub classes: Vec<ClassDiff>,
    /// Sums over every row.
    pub totals: Totals,
}

/// Row orders, largest first; ties by name, then location.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    /// `Size Delta` (`--sort size`): the classes whose memory grew most.
    #[default]
    SizeDelta,
    /// `# Delta` (`--sort delta`): the classes whose object count grew most.
    CountDelta,
    /// `# New` (`--sort count`): the classes that allocated most objects, freed or not.
    NewCount,
    /// Retained size delta (`--sort retained`).
    RetainedDelta,
    /// Retained size of the kept objects (`--sort kept`, three snapshots; the default there).
    Kept,
    /// What the new objects retain (two snapshots; the default there): a class whose new
    /// objects hold new strings, numbers or arrays retains them, so it ranks above them, while a
    /// string retains only itself.
    NewRetained,
}

/// V8's bookkeeping classes: code, hidden classes and other internal objects.
pub const ENGINE_CLASSES: [&str; 3] = ["(compiled code)", "(system)", "(object shape)"];

impl SortBy {
    /// The names `FromStr` accepts, for help texts.
    pub const NAMES: [&'static str; 6] =
        ["size", "delta", "count", "retained", "kept", "new-retained"];
}

/// An unknown `--sort` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown sort order {0:?}; use size, delta, count, retained, kept or new-retained")]
pub struct UnknownSortBy(pub String);

impl FromStr for SortBy {
    type Err = UnknownSortBy;
    fn from_str(s: &str) -> Result<SortBy, UnknownSortBy> {
        match s {
            "size" => Ok(SortBy::SizeDelta),
            "delta" => Ok(SortBy::CountDelta),
            "count" => Ok(SortBy::NewCount),
            "retained" => Ok(SortBy::RetainedDelta),
            "kept" => Ok(SortBy::Kept),
            "new-retained" => Ok(SortBy::NewRetained),
            _ => Err(UnknownSortBy(s.to_owned())),
        }
    }
}

impl fmt::Display for SortBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SortBy::SizeDelta => "size",
            SortBy::CountDelta => "delta",
            SortBy::NewCount => "count",
            SortBy::RetainedDelta => "retained",
            SortBy::Kept => "kept",
            SortBy::NewRetained => "new-retained",
        })
    }
}

impl Diff {
    /// Re-sorts the rows, largest first. With three snapshots, rows with no kept object come
    /// after those with kept objects whatever the order: they are not the leak. By `kept` and
    /// `new-retained` (the defaults), V8's bookkeeping classes — [`ENGINE_CLASSES`] — come after
    /// the others that have kept (or new) objects: they grow with any code V8 compiles or shape
    /// it meets while traffic runs, and are never what the app keeps.
    pub fn sort(&mut self, by: SortBy) {
        let tier = |c: &ClassDiff| -> u8 {
            if c.kept_count == Some(0) {
                2
            } else if matches!(by, SortBy::Kept | SortBy::NewRetained)
                && ENGINE_CLASSES.contains(&c.name.as_str())
            {
                1
            } else {
                0
            }
        };
        let key = |c: &ClassDiff| -> i128 {
            match by {
                SortBy::SizeDelta => i128::from(c.size_delta),
                SortBy::CountDelta => i128::from(c.delta_count),
                SortBy::NewCount => i128::from(c.new_count),
                SortBy::RetainedDelta => i128::from(c.retained_size_delta),
                SortBy::Kept => i128::from(c.kept_retained_size.unwrap_or_default()),
                SortBy::NewRetained => i128::from(c.new_retained_size.unwrap_or_default()),
            }
        };
        self.classes.sort_by(|a, b| {
            tier(a)
                .cmp(&tier(b))
                .then_with(|| key(b).cmp(&key(a)))
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.location.cmp(&b.location))
        });
    }

    /// The first `n` rows (all of them if there are fewer).
    pub fn top(&self, n: usize) -> &[ClassDiff] {
        &self.classes[..n.min(self.classes.len())]
    }

    /// The row of the class `name` (the first, if several locations share it).
    pub fn class(&self, name: &str) -> Option<&ClassDiff> {
        self.classes.iter().find(|c| c.name == name)
    }
}

/// Compares `new` against `base` the way DevTools' Comparison view does, plain objects named
/// with `new`'s interface definitions in both. Rows come sorted by [`SortBy::SizeDelta`].
pub fn diff(base: &Summary, new: &Summary) -> Diff {
    let definitions = new.interfaces();
    let base_classes = base.resolve(definitions);
    let new_classes = new.resolve(definitions);
    let base_retained = base.retained_with(definitions);
    let keys: HashSet<&(String, Option<Location>)> =
        base_classes.keys().chain(new_classes.keys()).collect();
    let mut classes = Vec::new();
    let mut totals = Totals::default();
    for key in keys {
        let before = base_classes.get(key).map_or(&[][..], |m| m);
        let after = new_classes.get(key).map_or(&[][..], |m| m);
        let mut row = compare_class(&key.0, key.1, before, after);
        if row.new_count == 0 && row.deleted_count == 0 {
            continue;
        }
        row.retained_size = new.retained_size(&key.0, key.1);
        row.retained_size_delta =
            row.retained_size as i64 - base_retained.get(key).copied().unwrap_or_default() as i64;
        row.script = key
            .1
            .and_then(|l| new.script_name(l.script_id).map(str::to_owned));
        totals.new_count += row.new_count;
        totals.deleted_count += row.deleted_count;
        totals.delta_count += row.delta_count;
        totals.alloc_size += row.alloc_size;
        totals.freed_size += row.freed_size;
        totals.size_delta += row.size_delta;
        classes.push(row);
    }
    let mut diff = Diff { classes, totals };
    diff.sort(SortBy::SizeDelta);
    diff
}

/// Merges two id-sorted member lists of one class.
fn compare_class(
    name: &str,
    location: Option<Location>,
    base: &[Member],
    new: &[Member],
) -> ClassDiff {
    let (mut i, mut j) = (0, 0);
    let (mut new_count, mut deleted_count, mut alloc_size, mut freed_size) =
        (0u64, 0u64, 0u64, 0u64);
    while i < base.len() && j < new.len() {
        match base[i].id.cmp(&new[j].id) {
            Ordering::Less => {
                deleted_count += 1;
                freed_size += u64::from(base[i].size);
                i += 1;
            }
            Ordering::Greater => {
                new_count += 1;
                alloc_size += u64::from(new[j].size);
                j += 1;
            }
            Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    for m in &base[i..] {
        deleted_count += 1;
        freed_size += u64::from(m.size);
    }
    for m in &new[j..] {
        new_count += 1;
        alloc_size += u64::from(m.size);
    }
    ClassDiff {
        name: name.to_owned(),
        location,
        new_count,
        deleted_count,
        delta_count: new_count as i64 - deleted_count as i64,
        alloc_size,
        freed_size,
        size_delta: alloc_size as i64 - freed_size as i64,
        retained_size: 0,
        retained_size_delta: 0,
        kept_count: None,
        kept_retained_size: None,
        new_retained_size: None,
        script: None,
        retainers: Vec::new(),
    }
}

/// Whether `base` and `new` look like two snapshots of the same process, `base` first (see
/// the `identity` module for how that is told).
pub fn comparability(base: &Summary, new: &Summary) -> Comparability {
    identity::compare_samples(
        (&base.identity, base.info.max_js_id),
        (&new.identity, new.info.max_js_id),
    )
}
