//! Reading a snapshot file and working out everything about it: the layer above [`Summary`]
//! and [`Snapshot`], which only hold the answers.
//!
//! [`build`] turns a parsed heap into a [`Snapshot`] keeping as much of the graph as the caller
//! asks for ([`Keep`]): a summary only needs classes and retained sizes, retainer paths need
//! names and retainers, drill-down ([`crate::ObjectView`]) also the edges' targets.

use std::{
    collections::HashMap,
    fs::File,
    io::{self, BufRead, BufReader, Read},
    path::{Path, PathBuf},
};

use crate::analysis::{Snapshot, Subjects};
use crate::classify;
use crate::column::ColumnWriter;
use crate::dominators::{self, EdgeTypes};
use crate::error::SnapshotError;
use crate::fxhash::FastMap;
use crate::graph;
use crate::identity::{self, IdentitySample};
use crate::layout::NodeKind;
use crate::model::{Location, SnapshotInfo};
use crate::parse::{self, EDGE_TARGET_MASK, Heap, ReadError, StringTable};
use crate::summary::{ClassRef, Group, Member, Summary};
use crate::work::{Stage, Work};

/// Read buffer: large enough that system calls do not show in profiles.
const READ_BUFFER: usize = 1 << 20;

/// Marks a plain object's shape index in the per-node class column.
const PLAIN: u32 = 1 << 31;

/// How much of the graph [`build`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Classes and retained sizes: what [`Summary`] answers.
    Summary,
    /// Also names, distances and retainers: retainer paths.
    Paths,
    /// Also the edges' targets: an object's outgoing edges (drill-down and the index).
    Everything,
}

/// Loads and summarises the snapshot at `path`, streaming it from disk; plain, zstd or gzip
/// (recognised by their first bytes).
pub fn load(path: impl AsRef<Path>) -> Result<Summary, SnapshotError> {
    let path = path.as_ref();
    let heap = read_heap(open(path, &Work::default())?, path, &Work::default())?;
    Ok(build(heap, Keep::Summary, None, &Work::default(), None)?.into_summary())
}

/// Opens `path` for reading with a large buffer, decoding zstd or gzip (told by their first
/// bytes); progress is reported in bytes of the file as stored.
pub(crate) fn open(
    path: &Path,
    work: &Work,
) -> Result<BufReader<Box<dyn Read + Send>>, SnapshotError> {
    work.check()?;
    let io_error = |source| {
        if work.is_cancelled() {
            return SnapshotError::Cancelled;
        }
        SnapshotError::Io {
            path: path.to_owned(),
            source,
        }
    };
    let file = File::open(path).map_err(io_error)?;
    let total = file
        .metadata()
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len());
    let watched = work.watch(file, Stage::Reading, total);
    let (_, reader) = crate::decode::decoded(watched).map_err(io_error)?;
    Ok(BufReader::with_capacity(READ_BUFFER, reader))
}

impl Snapshot {
    /// Loads the snapshot at `path`, streaming it from disk, with everything drill-down needs
    /// (see [`Snapshot::open_with`] for the index and progress).
    pub fn open(path: impl AsRef<Path>) -> Result<Snapshot, SnapshotError> {
        let path = path.as_ref();
        let work = Work::default();
        let heap = read_heap(open(path, &work)?, path, &work)?;
        let mut snapshot = build(heap, Keep::Everything, None, &work, None)?;
        snapshot.origin = path.to_owned();
        Ok(snapshot)
    }

    /// Loads a snapshot read from `reader`; `origin` names it in errors.
    pub fn from_reader(
        reader: impl BufRead,
        origin: impl Into<PathBuf>,
    ) -> Result<Snapshot, SnapshotError> {
        let path = origin.into();
        let work = Work::default();
        let heap = read_heap(reader, &path, &work)?;
        let mut snapshot = build(heap, Keep::Everything, None, &work, None)?;
        snapshot.origin = path;
        Ok(snapshot)
    }

    /// What [`crate::compare`] needs of its last file: [`Snapshot::open`] with the class sums
    /// of the `subjects` (see [`Snapshot::kept`]) worked out while the dominator tree is there,
    /// which is then dropped.
    pub(crate) fn open_for_compare(
        path: &Path,
        subjects: Subjects<'_>,
    ) -> Result<Snapshot, SnapshotError> {
        let work = Work::default();
        let heap = read_heap(open(path, &work)?, path, &work)?;
        build(heap, Keep::Paths, Some(subjects), &work, None)
    }
}

impl Summary {
    /// Summarises a snapshot read from `reader`; `origin` names it in errors.
    pub fn from_reader(
        reader: impl BufRead,
        origin: impl Into<PathBuf>,
    ) -> Result<Summary, SnapshotError> {
        let path = origin.into();
        let work = Work::default();
        let heap = read_heap(reader, &path, &work)?;
        Ok(build(heap, Keep::Summary, None, &work, None)?.into_summary())
    }
}

/// An I/O error of [`build`], naming the temporary directory (the only place it reads).
fn temp_error(source: io::Error) -> SnapshotError {
    SnapshotError::Io {
        path: std::env::temp_dir(),
        source,
    }
}

/// Reads a heap from `reader`, errors naming `path`; a cancelled `work` is
/// [`SnapshotError::Cancelled`].
pub(crate) fn read_heap(
    reader: impl BufRead,
    path: &Path,
    work: &Work,
) -> Result<Heap, SnapshotError> {
    let path = path.to_owned();
    let heap = parse::read(reader).map_err(|e| {
        if work.is_cancelled() {
            return SnapshotError::Cancelled;
        }
        match e {
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
        }
    })?;
    work.check()?;
    Ok(heap)
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
/// With [`Keep::Summary`], what only retainer paths need is dropped early (see
/// `dominators::analyse`). With `compare` (see [`Snapshot::open_for_compare`]), the dominator
/// tree is not kept. `work` hears of the stages and may cancel between them.
pub(crate) fn build(
    mut heap: Heap,
    keep: Keep,
    compare: Option<Subjects<'_>>,
    work: &Work,
    index: Option<&mut ColumnWriter>,
) -> Result<Snapshot, SnapshotError> {
    let paths = keep != Keep::Summary;
    work.stage(Stage::Analysing, 0, Some(4));
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
    heap.node_detachedness = Vec::new().into();
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
    work.check()?;
    work.stage(Stage::Analysing, 1, Some(4));
    let scripts = script_names(&heap);
    let root = graph::root(&heap);
    let essential = dominators::essential_edges(&heap, root);
    let mut renamed = renamed;
    // Distances first: they need edge names and types, which the dominator pass does not.
    let distance = if paths {
        dominators::distances(&heap, root)
    } else {
        Vec::new()
    };
    // While the dominator pass runs, names and types wait in the index being written (for
    // good: the snapshot reads them from there), else in a temporary file.
    let mut detached = None;
    let spilled = if paths {
        match index.and_then(|w| crate::spill::into_index(&mut heap, &mut renamed, w).ok()) {
            Some(column) => {
                detached = Some(column);
                None
            }
            None => crate::spill::Spilled::out(&mut heap, &mut renamed),
        }
    } else {
        // Only retainer paths need them (the caller keeps the summary alone, which holds its
        // own names); the dominator pass needs the memory.
        heap.edge_name = Vec::new().into();
        heap.edge_type = Vec::new().into();
        heap.node_name = Vec::new().into();
        heap.node_type = Vec::new().into();
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
    work.check()?;
    work.stage(Stage::Analysing, 2, Some(4));
    let analysis = dominators::analyse(&heap, essential, size_of, root, distance);
    work.check()?;
    work.stage(Stage::Analysing, 3, Some(4));
    if keep != Keep::Everything {
        // Retainer lists name edges: their targets are not read again.
        heap.edges = Vec::new().into();
    }

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
    let detached = detached.unwrap_or_else(|| renamed.into());
    let snapshot = Snapshot::new(
        summary, heap, analysis, class_of, detached, spilled, compare,
    )
    .map_err(temp_error)?;
    work.stage(Stage::Analysing, 4, Some(4));
    Ok(snapshot)
}

/// Script names by script id: a located closure's `shared` function info points to its script
/// (`script_or_debug_info` or `script`), a node named by the script's name.
pub(crate) fn script_names(heap: &Heap) -> HashMap<u32, String> {
    let mut out = HashMap::new();
    let edge_to = |node: usize, names: &[&str]| {
        (heap.first_edge[node] as usize..heap.first_edge[node + 1] as usize)
            .find(|&e| {
                EdgeTypes::of(heap).has_string_name(heap.edge_type[e])
                    && names.contains(&heap.string(heap.edge_name[e]))
            })
            .map(|e| (heap.edges[e] & EDGE_TARGET_MASK) as usize)
    };
    for &(closure, location) in &heap.closure_locations {
        if out.contains_key(&location.script_id) {
            continue;
        }
        let Some(shared) = edge_to(closure as usize, &["shared"]) else {
            continue;
        };
        let Some(script) = edge_to(shared, &["script_or_debug_info", "script"]) else {
            continue;
        };
        let name = heap.raw_name(script);
        if !name.is_empty() && heap.kind(script) == NodeKind::Code {
            out.insert(location.script_id, name.to_owned());
        }
    }
    out
}
