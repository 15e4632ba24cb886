//! One snapshot boiled down to what a comparison needs: for every class, the ids and self sizes
//! of its objects, sorted by id.
//!
//! The graph is needed only while classes and sizes are worked out; the [`Summary`] keeps
//! 8 bytes per counted object, so comparing two large files holds one graph and two summaries
//! at most.
//!
//! Plain objects are kept by *shape* (their sorted property names) rather than by name, because
//! DevTools names them with the interface definitions inferred from the NEW snapshot, also in
//! BASE. Keeping shapes lets each file be loaded on its own and still be classified by the
//! other's definitions when the two are compared.

use std::{borrow::Cow, collections::HashMap};

use crate::classify::{self, InterfaceMatcher};
use crate::identity::IdentitySample;
use crate::model::{ClassSummary, InterfaceDefinition, Location, SnapshotInfo};

/// A counted object: its id and self size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) id: u32,
    pub(crate) size: u32,
}

/// What a group's class name is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ClassRef {
    /// An index into `Summary::class_names`.
    Named(u32),
    /// A plain object: an index into `Summary::shapes`.
    Plain(u32),
}

/// Objects sharing a class and constructor location.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub(crate) class: ClassRef,
    pub(crate) location: Option<Location>,
    /// Sorted by id.
    pub(crate) members: Vec<Member>,
}

/// A loaded snapshot, ready to be compared. See `load`.
#[derive(Clone, Debug)]
pub struct Summary {
    pub(crate) info: SnapshotInfo,
    pub(crate) class_names: Vec<Box<str>>,
    /// Property names of plain objects, sorted the JavaScript way; a shape lists ranks in here.
    pub(crate) property_names: Vec<Box<str>>,
    pub(crate) shapes: Vec<Box<[u32]>>,
    pub(crate) groups: Vec<Group>,
    pub(crate) interfaces: Vec<InterfaceDefinition>,
    pub(crate) identity: IdentitySample,
    /// DevTools' Summary "Retained Size" per class key, with this snapshot's own definitions.
    pub(crate) retained: HashMap<(String, Option<Location>), u64>,
    /// The same per group (class and shape), to name plain objects with other definitions.
    pub(crate) group_retained: Vec<u64>,
    /// Script names by script id, as far as the snapshot tells.
    pub(crate) scripts: HashMap<u32, String>,
}

impl Summary {
    /// Facts about the file.
    pub fn info(&self) -> &SnapshotInfo {
        &self.info
    }

    /// The plain-object shapes this snapshot names; a comparison uses NEW's for both files.
    pub fn interfaces(&self) -> &[InterfaceDefinition] {
        &self.interfaces
    }

    /// Every class with its object count, total self size and retained size (the Summary
    /// view), classified with this snapshot's own interface definitions, largest retained size
    /// first.
    pub fn classes(&self) -> Vec<ClassSummary> {
        self.classes_with(&self.interfaces)
    }

    /// [`Summary::classes`] with plain objects named by `definitions` (another snapshot's, as
    /// a comparison names both files with one set).
    pub fn classes_with(&self, definitions: &[InterfaceDefinition]) -> Vec<ClassSummary> {
        let retained = self.retained_with(definitions);
        let mut classes: Vec<ClassSummary> = self
            .resolve(definitions)
            .into_iter()
            .map(|((name, location), members)| ClassSummary {
                retained_size: retained
                    .get(&(name.clone(), location))
                    .copied()
                    .unwrap_or_default(),
                script: location.and_then(|l| self.script_name(l.script_id).map(str::to_owned)),
                name,
                location,
                count: members.len() as u64,
                self_size: members.iter().map(|m| u64::from(m.size)).sum(),
            })
            .collect();
        classes.sort_by(|a, b| {
            b.retained_size
                .cmp(&a.retained_size)
                .then_with(|| b.self_size.cmp(&a.self_size))
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.location.cmp(&b.location))
        });
        classes
    }

    /// DevTools' Summary "Retained Size" of the class `name` at `location` in this snapshot.
    pub fn retained_size(&self, name: &str, location: Option<Location>) -> u64 {
        self.retained
            .get(&(name.to_owned(), location))
            .copied()
            .unwrap_or_default()
    }

    /// Retained sizes per class key with plain objects named by `definitions`: exact with this
    /// snapshot's own definitions; with another's, classes that merge several shapes add up
    /// their shapes' retained sizes.
    pub(crate) fn retained_with(
        &self,
        definitions: &[InterfaceDefinition],
    ) -> HashMap<(String, Option<Location>), u64> {
        if definitions == self.interfaces.as_slice() {
            return self.retained.clone();
        }
        let mut out: HashMap<(String, Option<Location>), u64> = HashMap::new();
        for ((group, name), &retained) in self
            .groups
            .iter()
            .zip(self.group_names(definitions))
            .zip(&self.group_retained)
        {
            *out.entry((name, group.location)).or_default() += retained;
        }
        out
    }

    /// `file:line:column` (1-based) for a location, or `script N:line:column` when the
    /// snapshot does not name the script.
    pub fn format_location(&self, location: Location) -> String {
        let (line, column) = (u64::from(location.line) + 1, u64::from(location.column) + 1);
        match self.script_name(location.script_id) {
            Some(name) => format!("{name}:{line}:{column}"),
            None => format!("script {}:{line}:{column}", location.script_id),
        }
    }

    /// The name of script `id` (a file path or URL), when the snapshot tells it.
    pub fn script_name(&self, id: u32) -> Option<&str> {
        self.scripts.get(&id).map(String::as_str)
    }

    /// Members by class key (name, location), plain objects named with `definitions`; groups
    /// that end up with the same key are merged and stay sorted by id.
    pub(crate) fn resolve(
        &self,
        definitions: &[InterfaceDefinition],
    ) -> HashMap<(String, Option<Location>), Cow<'_, [Member]>> {
        let mut out: HashMap<(String, Option<Location>), Cow<'_, [Member]>> = HashMap::new();
        for (group, name) in self.groups.iter().zip(self.group_names(definitions)) {
            match out.entry((name, group.location)) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(Cow::Borrowed(&group.members));
                }
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let merged = o.get_mut().to_mut();
                    merged.extend_from_slice(&group.members);
                    merged.sort_unstable_by_key(|m| m.id);
                }
            }
        }
        out
    }

    /// The class name of each group, plain objects named with `definitions`.
    pub(crate) fn group_names(&self, definitions: &[InterfaceDefinition]) -> Vec<String> {
        let rank = |name: &str| {
            self.property_names
                .binary_search_by(|p| classify::cmp_utf16(p, name))
                .ok()
                .map(|i| i as u32)
        };
        let matcher = InterfaceMatcher::new(definitions, rank);
        let mut shape_names: HashMap<u32, String> = HashMap::new();
        self.groups
            .iter()
            .map(|group| match group.class {
                ClassRef::Named(i) => self.class_names[i as usize].to_string(),
                ClassRef::Plain(shape) => shape_names
                    .entry(shape)
                    .or_insert_with(|| {
                        matcher
                            .best(&self.shapes[shape as usize])
                            .unwrap_or("Object")
                            .to_owned()
                    })
                    .clone(),
            })
            .collect()
    }
}
