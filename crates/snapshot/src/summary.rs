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

use std::{
    borrow::Cow,
    collections::HashMap,
    fs::File,
    io::{self, BufRead, BufReader, Read},
    path::{Path, PathBuf},
};

use crate::analysis::Snapshot;
use crate::classify::{self, InterfaceMatcher};
use crate::dominators;
use crate::error::SnapshotError;
use crate::fxhash::FastMap;
use crate::graph;
use crate::identity::{self, IdentitySample};
use crate::layout::NodeKind;
use crate::model::{ClassSummary, InterfaceDefinition, Location, SnapshotInfo};
use crate::parse::{self, Heap, ReadError, StringTable};

/// Marks a plain object's shape index in the per-node class column.
const PLAIN: u32 = 1 << 31;

/// Read buffer: large enough that system calls do not show in profiles.
const READ_BUFFER: usize = 1 << 20;

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

/// A loaded snapshot, ready to be compared. See [`load`].
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

/// Loads and summarises the snapshot at `path`, streaming it from disk; plain, zstd or gzip
/// (recognised by their first bytes).
pub fn load(path: impl AsRef<Path>) -> Result<Summary, SnapshotError> {
    let path = path.as_ref();
    let heap = read_heap(open(path)?, path)?;
    Ok(built(build(heap, false, None))?.into_summary())
}

/// Opens `path` for reading with a large buffer, decoding zstd or gzip (told by their first
/// bytes).
pub(crate) fn open(path: &Path) -> Result<BufReader<Box<dyn Read + Send>>, SnapshotError> {
    let file = File::open(path).map_err(|source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    })?;
    let (_, reader) = crate::decode::decoded(file).map_err(|source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(BufReader::with_capacity(READ_BUFFER, reader))
}

impl Summary {
    /// Summarises a snapshot read from `reader`; `origin` names it in errors.
    pub fn from_reader(
        reader: impl BufRead,
        origin: impl Into<PathBuf>,
    ) -> Result<Summary, SnapshotError> {
        let path = origin.into();
        let heap = read_heap(reader, &path)?;
        Ok(built(build(heap, false, None))?.into_summary())
    }

    /// Facts about the file.
    pub fn info(&self) -> &SnapshotInfo {
        &self.info
    }
}

/// [`build`]'s answer, an I/O error naming the temporary directory (the only place it reads).
pub(crate) fn built(result: io::Result<Snapshot>) -> Result<Snapshot, SnapshotError> {
    result.map_err(|source| SnapshotError::Io {
        path: std::env::temp_dir(),
        source,
    })
}

/// Reads a heap from `reader`, errors naming `path`.
pub(crate) fn read_heap(reader: impl BufRead, path: &Path) -> Result<Heap, SnapshotError> {
    let path = path.to_owned();
    parse::read(reader).map_err(|e| match e {
        ReadError::Io(source) => SnapshotError::Io {
            path: path.clone(),
            source,
        },
        ReadError::Syntax { line, column } => SnapshotError::NotJson {
            path: path.clone(),
            line,
            column,
        },
        ReadError::Eof { line, column } => SnapshotError::Truncated {
            path: path.clone(),
            line,
            column,
        },
        ReadError::Shape(reason) => SnapshotError::NotASnapshot {
            path: path.clone(),
            reason,
        },
    })
}

impl Summary {
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

/// Interns strings to dense indexes.
#[derive(Default)]
struct Interner {
    index: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.into());
        self.index.insert(name.into(), i);
        i
    }
}

/// Classes, shapes, sizes, fingerprints, dominators and retained sizes of a parsed heap.
/// Without `paths`, what only retainer paths need is dropped early (see `dominators::analyse`).
/// With `compare` (see [`Snapshot::open_for_compare`]), the dominator tree is not kept.
pub(crate) fn build(
    mut heap: Heap,
    paths: bool,
    compare: Option<crate::analysis::Subjects<'_>>,
) -> io::Result<Snapshot> {
    let n = heap.node_count();
    let sample = heap.sample;

    // Fingerprints use the sizes as written, before folding moves them.
    let mut info = SnapshotInfo {
        node_count: n,
        edge_count: heap.edges.len(),
        counted_nodes: 0,
        total_self_size: 0,
        js_objects: 0,
        max_js_id: 0,
        sizes_folded: false,
        interface_count: 0,
    };
    let mut identity_entries = Vec::new();
    let mut redacted = false;
    let placeholder = identity::hash_bytes(crate::PLACEHOLDER.as_bytes());
    for ordinal in 0..n {
        let id = heap.node_id[ordinal];
        if id % 2 == 1 {
            info.js_objects += 1;
            info.max_js_id = info.max_js_id.max(id);
        }
        if sample.includes(id) {
            let type_name = &heap.layout.nodes.type_names[usize::from(heap.node_type[ordinal])];
            let name_hash = heap
                .name_hashes
                .get(&heap.node_name[ordinal])
                .copied()
                .unwrap_or_default();
            let size = heap.node_size[ordinal];
            let exact = identity::fingerprint(type_name, name_hash, size);
            let unnamed_strings = if crate::redact::is_string_type(type_name) {
                redacted |= name_hash == placeholder;
                identity::fingerprint(type_name, 0, size)
            } else {
                exact
            };
            identity_entries.push((
                id,
                identity::Fingerprint {
                    exact,
                    unnamed_strings,
                },
            ));
        }
    }
    identity_entries.sort_unstable_by_key(|&(id, _)| id);

    let renamed = graph::detached_names(&heap);
    heap.node_detachedness = Vec::new();
    let mut sizes = std::mem::take(&mut heap.node_size);
    info.sizes_folded = graph::fold_owned_sizes(&heap, &renamed, &mut sizes);

    // The class of every node (a class index, or PLAIN for now).
    let mut class_names = Interner::default();
    let mut by_type: FastMap<u8, u32> = FastMap::default();
    let mut by_name: FastMap<(u32, bool), u32> = FastMap::default();
    let mut class_of: Vec<u32> = Vec::with_capacity(n);
    let mut plain: Vec<u32> = Vec::new();
    for (ordinal, &detached) in renamed.iter().enumerate() {
        let class = match heap.kind(ordinal) {
            NodeKind::Object | NodeKind::Native => {
                let key = (heap.node_name[ordinal], detached);
                match by_name.get(&key) {
                    Some(&c) => c,
                    None => {
                        let c = match classify::class_name(&heap, ordinal, detached) {
                            Some(name) => class_names.intern(&name),
                            None => PLAIN,
                        };
                        by_name.insert(key, c);
                        c
                    }
                }
            }
            _ => *by_type.entry(heap.node_type[ordinal]).or_insert_with(|| {
                let name = classify::class_name(&heap, ordinal, false).unwrap_or_default();
                class_names.intern(&name)
            }),
        };
        if class == PLAIN {
            plain.push(ordinal as u32);
        }
        class_of.push(class);
    }
    let plain_objects = classify::plain_objects(&heap, &plain);
    for (&ordinal, &shape) in plain.iter().zip(&plain_objects.shape_of) {
        class_of[ordinal as usize] = PLAIN | shape;
    }
    drop(plain);
    let classify::PlainObjects {
        interfaces,
        property_names,
        shapes,
        shape_of,
    } = plain_objects;
    drop(shape_of);
    info.interface_count = interfaces.len();

    // Group every counted node: first the group of each node and the group sizes, then the
    // members, so that no vector grows past its final size.
    const NONE: u32 = u32::MAX;
    let mut groups: Vec<Group> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    let mut named_group = vec![NONE; class_names.names.len()];
    let mut plain_group = vec![NONE; shapes.len()];
    let mut located_group: FastMap<(ClassRef, Location), u32> = FastMap::default();
    let mut last_located: Option<((ClassRef, Location), u32)> = None;
    let mut next_location = 0;
    for ordinal in 0..n {
        if sizes[ordinal] == 0 {
            class_of[ordinal] = NONE;
            continue;
        }
        let class = match class_of[ordinal] {
            c if c & PLAIN != 0 => ClassRef::Plain(c & !PLAIN),
            c => ClassRef::Named(c),
        };
        let location = if heap.kind(ordinal) == NodeKind::Object {
            let locations = &heap.locations;
            while next_location < locations.len() && (locations[next_location].0 as usize) < ordinal
            {
                next_location += 1;
            }
            locations
                .get(next_location)
                .filter(|l| l.0 as usize == ordinal)
                .map(|l| l.1)
        } else {
            None
        };
        let mut new_group = || {
            groups.push(Group {
                class,
                location,
                members: Vec::new(),
            });
            counts.push(0);
            (groups.len() - 1) as u32
        };
        let group = match (location, class) {
            (Some(l), _) => match last_located {
                Some((key, group)) if key == (class, l) => group,
                _ => {
                    let group = *located_group.entry((class, l)).or_insert_with(new_group);
                    last_located = Some(((class, l), group));
                    group
                }
            },
            (None, ClassRef::Named(c)) => {
                let slot = &mut named_group[c as usize];
                if *slot == NONE {
                    *slot = new_group();
                }
                *slot
            }
            (None, ClassRef::Plain(s)) => {
                let slot = &mut plain_group[s as usize];
                if *slot == NONE {
                    *slot = new_group();
                }
                *slot
            }
        };
        counts[group as usize] += 1;
        class_of[ordinal] = group;
    }
    for (group, &count) in groups.iter_mut().zip(&counts) {
        group.members = Vec::with_capacity(count);
    }
    for ordinal in 0..n {
        let group = class_of[ordinal];
        if group == NONE {
            continue;
        }
        let size = sizes[ordinal];
        groups[group as usize].members.push(Member {
            id: heap.node_id[ordinal],
            size,
        });
        info.counted_nodes += 1;
        info.total_self_size += u64::from(size);
    }
    for group in &mut groups {
        group.members.sort_unstable_by_key(|m| m.id);
    }
    // Nothing of the grouping is needed by the graph pass, which is where memory peaks.
    drop((counts, named_group, plain_group, located_group));
    heap.locations = Vec::new();
    // The graph passes last, when what only classification needed is gone.
    let scripts = crate::analysis::script_names(&heap);
    let root = graph::root(&heap);
    let essential = dominators::essential_edges(&heap, root);
    let mut renamed = renamed;
    // Distances first: they need edge names and types, which the dominator pass does not.
    let distance = if paths {
        dominators::distances(&heap, root)
    } else {
        Vec::new()
    };
    let spilled = if paths {
        crate::spill::Spilled::out(&mut heap, &mut renamed)
    } else {
        // Only retainer paths need them (the caller keeps the summary alone, which holds its
        // own names); the dominator pass needs the memory.
        heap.edge_name = Vec::new();
        heap.edge_type = Vec::new();
        heap.node_name = Vec::new();
        heap.node_type = Vec::new();
        heap.closure_locations = Vec::new();
        heap.strings = StringTable::default();
        renamed = Vec::new();
        None
    };
    // Sizes are read back from the groups, so the column is not held through the graph pass.
    drop(sizes);
    let size_of = |o: usize| match class_of[o] {
        NONE => 0,
        group => {
            let members = &groups[group as usize].members;
            members
                .binary_search_by_key(&heap.node_id[o], |m| m.id)
                .map_or(0, |i| members[i].size)
        }
    };
    let analysis = dominators::analyse(&heap, essential, size_of, root, distance);
    // Retainer lists name edges: their targets are not read again.
    heap.edges = Vec::new();

    let summary = Summary {
        info,
        class_names: class_names.names,
        property_names,
        shapes,
        groups,
        interfaces,
        identity: IdentitySample {
            rate: sample,
            entries: identity_entries,
            redacted,
        },
        retained: HashMap::new(),
        group_retained: Vec::new(),
        scripts,
    };
    Snapshot::new(summary, heap, analysis, class_of, renamed, spilled, compare)
}
