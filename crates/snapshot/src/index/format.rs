//! The index file: a loaded [`Snapshot`] with everything drill-down needs, in flat columns.
//!
//! ```text
//! MAGIC  format:u32  version:str  identity:str  sections:u32  (raw_len:u64 stored_len:u64)*
//! section*   (each one zstd frame with its content checksum)
//! ```
//!
//! Nothing read back is trusted: the header must name this heapgate version and the same
//! source, the section lengths must add up to the file's, every frame's checksum must hold, and
//! the columns must agree with each other (lengths, and every index inside its table) before a
//! [`Snapshot`] is made of them. Any failure is a reason to rebuild, never a panic.

use std::{
    collections::HashMap,
    fs::File,
    io::{self, Read, Seek, SeekFrom, Write},
    path::Path,
    sync::atomic::{AtomicUsize, Ordering},
};

use crate::analysis::{NONE, Snapshot};
use crate::dominators::Graph;
use crate::identity::{Fingerprint, IdentitySample, SampleRate};
use crate::layout::Layout;
use crate::model::{InterfaceDefinition, Location, SnapshotInfo};
use crate::parse::{EDGE_TARGET_MASK, Heap, StringTable};
use crate::summary::{ClassRef, Group, Member, Summary};
use crate::work::{Stage, Work};

/// The first bytes of every index file.
const MAGIC: &[u8; 8] = b"HGINDEX\n";
/// Bumped whenever the layout below changes.
const FORMAT: u32 = 2;
/// This build's version: an index written by another is rebuilt.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
/// zstd level: fast, and still about 3× on these columns.
const LEVEL: i32 = 1;
/// Sections in an index.
const SECTIONS: usize = 9;

/// Why an index was not used (a warning's text; the index is rebuilt).
pub(crate) type Bad = String;

/// Writes `snapshot` as an index of the source named `identity` to `out`.
pub(crate) fn write(
    snapshot: &Snapshot,
    identity: &str,
    out: &mut impl Write,
    work: &Work,
) -> io::Result<u64> {
    let all: Vec<usize> = (0..SECTIONS).collect();
    let stored = on_workers(work, Stage::WritingIndex, &all, |i| {
        let raw = encode(snapshot, i);
        compress(&raw).map(|c| (raw.len() as u64, c))
    });
    if work.is_cancelled() {
        return Err(io::Error::other("cancelled"));
    }
    let mut sections = Vec::with_capacity(SECTIONS);
    for s in stored {
        sections.push(s.ok_or_else(|| io::Error::other("an index section was not written"))??);
    }
    let mut head = Enc::default();
    head.0.extend_from_slice(MAGIC);
    head.u32(FORMAT);
    head.str(VERSION);
    head.str(identity);
    head.u32(SECTIONS as u32);
    for (raw, stored) in &sections {
        head.u64(*raw);
        head.u64(stored.len() as u64);
    }
    out.write_all(&head.0)?;
    let mut total = head.0.len() as u64;
    for (_, stored) in &sections {
        out.write_all(stored)?;
        total += stored.len() as u64;
    }
    Ok(total)
}

/// `job(i)` for every section `i` of `jobs`, on a few threads (sections are independent); `None` for the
/// sections not done because `work` was cancelled.
fn on_workers<T: Send>(
    work: &Work,
    stage: Stage,
    jobs: &[usize],
    job: impl Fn(usize) -> T + Sync,
) -> Vec<Option<T>> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .clamp(1, 4);
    let mut out: Vec<Option<T>> = (0..SECTIONS).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= jobs.len() || work.is_cancelled() {
                            break;
                        }
                        let i = jobs[k];
                        let result = job(i);
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        work.stage(stage, n as u64, Some(jobs.len() as u64));
                        mine.push((i, result));
                    }
                    mine
                })
            })
            .collect();
        for handle in handles {
            // A worker that panicked leaves its sections `None`: an error, not a crash.
            for (i, result) in handle.join().unwrap_or_default() {
                out[i] = Some(result);
            }
        }
    });
    out
}

fn compress(raw: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = zstd::stream::Encoder::new(Vec::with_capacity(raw.len() / 3), LEVEL)?;
    encoder.include_checksum(true)?;
    encoder.write_all(raw)?;
    encoder.finish()
}

/// Reads the index at `path` if it was written by this version for `identity`; without
/// `edges`, the edges' targets are left out (a comparison's last file does not need them).
pub(crate) fn read(path: &Path, identity: &str, work: &Work, edges: bool) -> Result<Snapshot, Bad> {
    let wanted: Vec<usize> = (0..SECTIONS).filter(|&i| edges || i != 5).collect();
    let mut parts = read_parts(path, identity, work, &wanted)?.into_iter();
    let mut take = || match parts.next() {
        Some(Some(part)) => Ok(part),
        // Left out on purpose: an empty column.
        Some(None) => Ok(Part::Edges(Vec::new())),
        None => Err(Bad::from("missing section")),
    };
    let (
        Part::Meta(meta),
        Part::Strings(strings),
        Part::Members(ids, sizes),
        Part::Nodes(node_type, node_name, node_id, first_edge),
        Part::Groups(node_group, detached),
        Part::Edges(edges),
        Part::EdgeNames(edge_type, edge_name),
        Part::Retainers(first_retainer, retainer_edge),
        Part::Graph(retained, distance, dominator),
    ) = (
        take()?,
        take()?,
        take()?,
        take()?,
        take()?,
        take()?,
        take()?,
        take()?,
        take()?,
    )
    else {
        return Err("sections out of order".into());
    };
    assemble(
        *meta,
        strings,
        (ids, sizes),
        (node_type, node_name, node_id, first_edge),
        (node_group, detached),
        edges,
        (edge_type, edge_name),
        (first_retainer, retainer_edge),
        (retained, distance, dominator),
    )
}

/// Only the [`Summary`] of the index at `path` (what `summary` and the files of a comparison
/// but the last need): two small sections of nine.
pub(crate) fn read_summary(path: &Path, identity: &str, work: &Work) -> Result<Summary, Bad> {
    let mut parts = read_parts(path, identity, work, &[0, 2])?.into_iter();
    let (Some(Some(Part::Meta(meta))), Some(None), Some(Some(Part::Members(ids, sizes)))) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err("sections out of order".into());
    };
    let (summary, _) = summary_of(*meta, ids, sizes)?;
    Ok(summary)
}

/// The sections `wanted` of the index at `path`, decoded (`None` for the others), after the
/// header checks.
fn read_parts(
    path: &Path,
    identity: &str,
    work: &Work,
    wanted: &[usize],
) -> Result<Vec<Option<Part>>, Bad> {
    let mut file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut head = vec![0u8; (64 * 1024).min(file_len as usize)];
    file.read_exact(&mut head).map_err(|e| e.to_string())?;
    let mut dec = Dec::new(&head);
    if dec.bytes(MAGIC.len())? != MAGIC {
        return Err("not a heapgate index".into());
    }
    let format = dec.u32()?;
    let version = dec.str()?;
    if format != FORMAT || version != VERSION {
        return Err(format!("written by heapgate {version} (format {format})"));
    }
    if dec.str()? != identity {
        return Err("written for another file".into());
    }
    if dec.u32()? as usize != SECTIONS {
        return Err("wrong section count".into());
    }
    let mut lengths = Vec::with_capacity(SECTIONS);
    for _ in 0..SECTIONS {
        lengths.push((dec.u64()?, dec.u64()?));
    }
    let header_len = dec.at as u64;
    let stored: u64 = lengths.iter().map(|l| l.1).sum();
    if header_len.checked_add(stored) != Some(file_len) {
        return Err("truncated or padded".into());
    }
    let mut offsets = Vec::with_capacity(SECTIONS);
    let mut at = header_len;
    for &(raw, len) in &lengths {
        offsets.push((at, len, raw));
        at += len;
    }
    let parts = on_workers(work, Stage::ReadingIndex, wanted, |i| {
        let (offset, len, raw) = offsets[i];
        read_section(path, offset, len, raw).and_then(|bytes| decode(i, &bytes))
    });
    if work.is_cancelled() {
        return Err("cancelled".into());
    }
    parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| match p {
            Some(part) => part.map(Some),
            None if wanted.contains(&i) => Err("a section was not read".into()),
            None => Ok(None),
        })
        .collect()
}

fn read_section(path: &Path, offset: u64, len: u64, raw: u64) -> Result<Vec<u8>, Bad> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| e.to_string())?;
    let mut stored = Vec::new();
    (&mut file)
        .take(len)
        .read_to_end(&mut stored)
        .map_err(|e| e.to_string())?;
    if stored.len() as u64 != len {
        return Err("truncated".into());
    }
    // Grows as it goes: a wrong `raw` in a damaged header allocates nothing up front.
    let mut out = Vec::new();
    let mut decoder = zstd::stream::Decoder::new(stored.as_slice()).map_err(|e| e.to_string())?;
    (&mut decoder)
        .take(raw + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("damaged: {e}"))?;
    if out.len() as u64 != raw {
        return Err("damaged: a section has the wrong length".into());
    }
    Ok(out)
}

/// One decoded section.
enum Part {
    Meta(Box<Meta>),
    Strings(StringTable),
    Members(Vec<u32>, Vec<u32>),
    Nodes(Vec<u8>, Vec<u32>, Vec<u32>, Vec<u32>),
    Groups(Vec<u32>, Vec<u8>),
    Edges(Vec<u32>),
    EdgeNames(Vec<u8>, Vec<u32>),
    Retainers(Vec<u32>, Vec<u32>),
    Graph(Vec<u64>, Vec<i32>, Vec<u32>),
}

/// The small parts.
struct Meta {
    info: SnapshotInfo,
    class_names: Vec<Box<str>>,
    property_names: Vec<Box<str>>,
    shapes: Vec<Box<[u32]>>,
    /// Class, location and member count of each group.
    groups: Vec<(ClassRef, Option<Location>, u64)>,
    interfaces: Vec<InterfaceDefinition>,
    identity: IdentitySample,
    retained: HashMap<(String, Option<Location>), u64>,
    group_retained: Vec<u64>,
    scripts: HashMap<u32, String>,
    layout: Layout,
    closure_locations: Vec<(u32, Location)>,
    sample: SampleRate,
    keys: Vec<(String, Option<Location>)>,
    group_key: Vec<u32>,
    root: u64,
}

fn encode(s: &Snapshot, section: usize) -> Vec<u8> {
    let mut e = Enc::default();
    let (summary, heap, graph) = (&s.summary, &s.heap, &s.graph);
    match section {
        0 => {
            let info = &summary.info;
            for v in [
                info.node_count as u64,
                info.edge_count as u64,
                info.counted_nodes as u64,
                info.total_self_size,
                info.js_objects as u64,
                u64::from(info.max_js_id),
                u64::from(info.sizes_folded),
                info.interface_count as u64,
            ] {
                e.u64(v);
            }
            e.strs(summary.class_names.iter().map(|s| &**s));
            e.strs(summary.property_names.iter().map(|s| &**s));
            e.u64(summary.shapes.len() as u64);
            for shape in &summary.shapes {
                e.u32s(shape);
            }
            e.u64(summary.groups.len() as u64);
            for group in &summary.groups {
                match group.class {
                    ClassRef::Named(i) => {
                        e.u8(0);
                        e.u32(i);
                    }
                    ClassRef::Plain(i) => {
                        e.u8(1);
                        e.u32(i);
                    }
                }
                e.location(group.location);
                e.u64(group.members.len() as u64);
            }
            e.u64(summary.interfaces.len() as u64);
            for i in &summary.interfaces {
                e.str(&i.name);
                e.strs(i.properties.iter().map(String::as_str));
            }
            let identity = &summary.identity;
            e.u32(identity.rate.shift());
            e.u8(u8::from(identity.redacted));
            e.u64(identity.entries.len() as u64);
            for (id, f) in &identity.entries {
                e.u32(*id);
                e.u64(f.exact);
                e.u64(f.unnamed_strings);
            }
            // Sorted, so that the same snapshot always gives the same bytes.
            let mut retained: Vec<_> = summary.retained.iter().collect();
            retained.sort();
            e.u64(retained.len() as u64);
            for ((name, location), v) in retained {
                e.str(name);
                e.location(*location);
                e.u64(*v);
            }
            e.u64s(&summary.group_retained);
            let mut scripts: Vec<_> = summary.scripts.iter().collect();
            scripts.sort();
            e.u64(scripts.len() as u64);
            for (id, name) in scripts {
                e.u32(*id);
                e.str(name);
            }
            e.str(&serde_json::to_string(&heap.layout).unwrap_or_default());
            e.u64(heap.closure_locations.len() as u64);
            for (o, l) in &heap.closure_locations {
                e.u32(*o);
                e.location(Some(*l));
            }
            e.u32(heap.sample.shift());
            e.u64(s.keys.len() as u64);
            for (name, location) in &s.keys {
                e.str(name);
                e.location(*location);
            }
            e.u32s(&s.group_key);
            e.u64(s.root as u64);
        }
        1 => {
            e.str(&heap.strings.text);
            e.u32s(&heap.strings.ends);
        }
        2 => {
            let members = summary.groups.iter().flat_map(|g| &g.members);
            let ids: Vec<u32> = members.clone().map(|m| m.id).collect();
            e.u32s_delta(&ids);
            drop(ids);
            let sizes: Vec<u32> = members.map(|m| m.size).collect();
            e.u32s(&sizes);
        }
        3 => {
            e.u8s(&heap.node_type);
            e.u32s(&heap.node_name);
            e.u32s_delta(&heap.node_id);
            e.u32s_delta(&heap.first_edge);
        }
        4 => {
            e.u32s(&s.node_group);
            let detached: Vec<u8> = s.detached.iter().map(|&d| u8::from(d)).collect();
            e.u8s(&detached);
        }
        5 => e.u32s(&heap.edges),
        6 => {
            e.u8s(&heap.edge_type);
            e.u32s(&heap.edge_name);
        }
        7 => {
            e.u32s_delta(&graph.first_retainer);
            e.u32s(&graph.retainer_edge);
        }
        _ => {
            e.u64s(&graph.retained);
            let distance: Vec<u32> = graph.distance.iter().map(|&d| d as u32).collect();
            e.u32s(&distance);
            e.u32s(&graph.dominator);
        }
    }
    e.0
}

fn decode(section: usize, bytes: &[u8]) -> Result<Part, Bad> {
    let mut d = Dec::new(bytes);
    let part = match section {
        0 => {
            let mut v = [0u64; 8];
            for x in &mut v {
                *x = d.u64()?;
            }
            let info = SnapshotInfo {
                node_count: v[0] as usize,
                edge_count: v[1] as usize,
                counted_nodes: v[2] as usize,
                total_self_size: v[3],
                js_objects: v[4] as usize,
                max_js_id: v[5] as u32,
                sizes_folded: v[6] != 0,
                interface_count: v[7] as usize,
            };
            let class_names = d.strs()?.into_iter().map(Into::into).collect();
            let property_names = d.strs()?.into_iter().map(Into::into).collect();
            let n = d.len()?;
            let mut shapes = Vec::with_capacity(n);
            for _ in 0..n {
                shapes.push(d.u32s()?.into_boxed_slice());
            }
            let n = d.len()?;
            let mut groups = Vec::with_capacity(n);
            for _ in 0..n {
                let class = match (d.u8()?, d.u32()?) {
                    (0, i) => ClassRef::Named(i),
                    (1, i) => ClassRef::Plain(i),
                    _ => return Err("bad class".into()),
                };
                groups.push((class, d.location()?, d.u64()?));
            }
            let n = d.len()?;
            let mut interfaces = Vec::with_capacity(n);
            for _ in 0..n {
                interfaces.push(InterfaceDefinition {
                    name: d.str()?,
                    properties: d.strs()?,
                });
            }
            let rate = SampleRate::from_shift(d.u32()?).ok_or("bad sample rate")?;
            let redacted = d.u8()? != 0;
            let n = d.len()?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                entries.push((
                    d.u32()?,
                    Fingerprint {
                        exact: d.u64()?,
                        unnamed_strings: d.u64()?,
                    },
                ));
            }
            let n = d.len()?;
            let mut retained = HashMap::with_capacity(n);
            for _ in 0..n {
                let key = (d.str()?, d.location()?);
                retained.insert(key, d.u64()?);
            }
            let group_retained = d.u64s()?;
            let n = d.len()?;
            let mut scripts = HashMap::with_capacity(n);
            for _ in 0..n {
                let id = d.u32()?;
                scripts.insert(id, d.str()?);
            }
            let layout: Layout =
                serde_json::from_str(&d.str()?).map_err(|e| format!("bad layout: {e}"))?;
            let n = d.len()?;
            let mut closure_locations = Vec::with_capacity(n);
            for _ in 0..n {
                let o = d.u32()?;
                closure_locations.push((o, d.location()?.ok_or("bad location")?));
            }
            let sample = SampleRate::from_shift(d.u32()?).ok_or("bad sample rate")?;
            let n = d.len()?;
            let mut keys = Vec::with_capacity(n);
            for _ in 0..n {
                keys.push((d.str()?, d.location()?));
            }
            let group_key = d.u32s()?;
            let root = d.u64()?;
            Part::Meta(Box::new(Meta {
                info,
                class_names,
                property_names,
                shapes,
                groups,
                interfaces,
                identity: IdentitySample {
                    rate,
                    entries,
                    redacted,
                },
                retained,
                group_retained,
                scripts,
                layout,
                closure_locations,
                sample,
                keys,
                group_key,
                root,
            }))
        }
        1 => Part::Strings(StringTable {
            text: d.str()?,
            ends: d.u32s()?,
        }),
        2 => Part::Members(d.u32s_delta()?, d.u32s()?),
        3 => Part::Nodes(d.u8s()?, d.u32s()?, d.u32s_delta()?, d.u32s_delta()?),
        4 => Part::Groups(d.u32s()?, d.u8s()?),
        5 => Part::Edges(d.u32s()?),
        6 => Part::EdgeNames(d.u8s()?, d.u32s()?),
        7 => Part::Retainers(d.u32s_delta()?, d.u32s()?),
        _ => Part::Graph(
            d.u64s()?,
            d.u32s()?.into_iter().map(|d| d as i32).collect(),
            d.u32s()?,
        ),
    };
    if d.at != bytes.len() {
        return Err("a section has trailing bytes".into());
    }
    Ok(part)
}

/// Checks that the columns agree with each other and makes the snapshot.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn assemble(
    meta: Meta,
    strings: StringTable,
    (ids, sizes): (Vec<u32>, Vec<u32>),
    (node_type, node_name, node_id, first_edge): (Vec<u8>, Vec<u32>, Vec<u32>, Vec<u32>),
    (node_group, detached): (Vec<u32>, Vec<u8>),
    edges: Vec<u32>,
    (edge_type, edge_name): (Vec<u8>, Vec<u32>),
    (first_retainer, retainer_edge): (Vec<u32>, Vec<u32>),
    (retained, distance, dominator): (Vec<u64>, Vec<i32>, Vec<u32>),
) -> Result<Snapshot, Bad> {
    let n = node_id.len();
    let e = edge_type.len();
    if !edges.is_empty() && edges.len() != e {
        return Err("inconsistent: edge targets".into());
    }
    let bad = |what: &str| Err(format!("inconsistent: {what}"));
    // Node columns.
    if n == 0
        || [
            node_name.len(),
            node_group.len(),
            detached.len(),
            node_type.len(),
        ]
        .iter()
        .any(|&l| l != n)
        || [retained.len(), distance.len(), dominator.len()]
            .iter()
            .any(|&l| l != n)
    {
        return bad("node columns");
    }
    if n > EDGE_TARGET_MASK as usize || meta.root as usize >= n {
        return bad("node count");
    }
    let monotone = |v: &[u32], end: usize| {
        v.len() == n + 1
            && v.first() == Some(&0)
            && v.last().map(|&l| l as usize) == Some(end)
            && v.windows(2).all(|w| w[0] <= w[1])
    };
    if edge_type.len() != e || edge_name.len() != e || !monotone(&first_edge, e) {
        return bad("edges");
    }
    if edges.iter().any(|&t| (t & EDGE_TARGET_MASK) as usize >= n) {
        return bad("edge targets");
    }
    let node_types = meta.layout.nodes.type_names.len();
    let edge_types = meta.layout.edges.type_names.len();
    if meta.layout.nodes.kinds.len() != node_types
        || meta.layout.edges.kinds.len() != edge_types
        || node_type.iter().any(|&t| usize::from(t) >= node_types)
        || edge_type.iter().any(|&t| usize::from(t) >= edge_types)
    {
        return bad("types");
    }
    if !monotone(&first_retainer, retainer_edge.len())
        || retainer_edge.iter().any(|&r| r as usize >= e)
        || dominator.iter().any(|&d| d as usize >= n)
    {
        return bad("retainers");
    }
    if strings.ends.windows(2).any(|w| w[0] > w[1])
        || strings
            .ends
            .last()
            .is_some_and(|&l| l as usize > strings.text.len())
    {
        return bad("strings");
    }
    if node_group
        .iter()
        .any(|&g| g != NONE && g as usize >= meta.groups.len())
        || meta.closure_locations.iter().any(|&(o, _)| o as usize >= n)
    {
        return bad("groups");
    }
    let (summary, meta) = summary_of(meta, ids, sizes)?;
    let heap = Heap {
        layout: meta.layout,
        node_type,
        node_name,
        node_id,
        node_size: Vec::new(),
        node_detachedness: Vec::new(),
        first_edge,
        edges,
        edge_type,
        edge_name,
        locations: Vec::new(),
        closure_locations: meta.closure_locations,
        strings,
        name_hashes: Default::default(),
        sample: meta.sample,
    };
    let graph = Graph {
        first_retainer,
        retainer_edge,
        retained,
        distance,
        dominator,
    };
    Ok(Snapshot {
        summary,
        heap,
        graph,
        node_group,
        detached: detached.into_iter().map(|d| d != 0).collect(),
        group_key: meta.group_key,
        keys: meta.keys,
        root: meta.root as usize,
        kept: None,
        origin: Default::default(),
    })
}

/// What of [`Meta`] a snapshot needs beyond its summary.
struct MetaRest {
    layout: Layout,
    closure_locations: Vec<(u32, Location)>,
    sample: SampleRate,
    keys: Vec<(String, Option<Location>)>,
    group_key: Vec<u32>,
    root: u64,
}

/// The summary of `meta` and the members' `ids` and `sizes`, checked.
fn summary_of(meta: Meta, ids: Vec<u32>, sizes: Vec<u32>) -> Result<(Summary, MetaRest), Bad> {
    let bad = |what: &str| Err(format!("inconsistent: {what}"));
    // Groups and classes.
    let groups_n = meta.groups.len();
    if meta.group_retained.len() != groups_n
        || meta.group_key.len() != groups_n
        || meta
            .group_key
            .iter()
            .any(|&k| k as usize >= meta.keys.len())
        || meta
            .shapes
            .iter()
            .any(|s| s.iter().any(|&p| p as usize >= meta.property_names.len()))
    {
        return bad("groups");
    }
    let members_n: u64 = meta.groups.iter().map(|g| g.2).sum();
    if members_n != ids.len() as u64 || sizes.len() != ids.len() {
        return bad("members");
    }
    let mut groups = Vec::with_capacity(groups_n);
    let mut at = 0usize;
    for &(class, location, count) in &meta.groups {
        match class {
            ClassRef::Named(i) if i as usize >= meta.class_names.len() => return bad("class"),
            ClassRef::Plain(i) if i as usize >= meta.shapes.len() => return bad("shape"),
            _ => {}
        }
        let end = at + count as usize;
        let members: Vec<Member> = ids[at..end]
            .iter()
            .zip(&sizes[at..end])
            .map(|(&id, &size)| Member { id, size })
            .collect();
        if members.windows(2).any(|w| w[0].id > w[1].id) {
            return bad("member order");
        }
        groups.push(Group {
            class,
            location,
            members,
        });
        at = end;
    }
    drop((ids, sizes));
    let summary = Summary {
        info: meta.info,
        class_names: meta.class_names,
        property_names: meta.property_names,
        shapes: meta.shapes,
        groups,
        interfaces: meta.interfaces,
        identity: meta.identity,
        retained: meta.retained,
        group_retained: meta.group_retained,
        scripts: meta.scripts,
    };
    Ok((
        summary,
        MetaRest {
            layout: meta.layout,
            closure_locations: meta.closure_locations,
            sample: meta.sample,
            keys: meta.keys,
            group_key: meta.group_key,
            root: meta.root,
        },
    ))
}

/// Little-endian encoder.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, v: &str) {
        self.u64(v.len() as u64);
        self.0.extend_from_slice(v.as_bytes());
    }
    fn strs<'a>(&mut self, v: impl ExactSizeIterator<Item = &'a str>) {
        self.u64(v.len() as u64);
        for s in v {
            self.str(s);
        }
    }
    fn u8s(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.0.extend_from_slice(v);
    }
    fn u32s(&mut self, v: &[u32]) {
        self.u64(v.len() as u64);
        self.0.reserve(v.len() * 4);
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }
    /// Differences from the previous value (wrapping): sorted and near-sorted columns (ids,
    /// offsets) become runs of small numbers, which compress several times better.
    fn u32s_delta(&mut self, v: &[u32]) {
        self.u64(v.len() as u64);
        self.0.reserve(v.len() * 4);
        let mut previous = 0u32;
        for &x in v {
            self.0
                .extend_from_slice(&x.wrapping_sub(previous).to_le_bytes());
            previous = x;
        }
    }
    fn u64s(&mut self, v: &[u64]) {
        self.u64(v.len() as u64);
        self.0.reserve(v.len() * 8);
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }
    fn location(&mut self, l: Option<Location>) {
        match l {
            None => self.u8(0),
            Some(l) => {
                self.u8(1);
                self.u32(l.script_id);
                self.u32(l.line);
                self.u32(l.column);
            }
        }
    }
}

/// Decoder over one section; every read is bounds-checked.
struct Dec<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Dec<'a> {
    fn new(buf: &'a [u8]) -> Dec<'a> {
        Dec { buf, at: 0 }
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| Bad::from("truncated section"))?;
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, Bad> {
        Ok(self.bytes(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, Bad> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, Bad> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// A length, checked against what is left so that it cannot ask for a huge allocation.
    fn len(&mut self) -> Result<usize, Bad> {
        let n = self.u64()?;
        if n > (self.buf.len() - self.at) as u64 {
            return Err("bad length".into());
        }
        Ok(n as usize)
    }
    fn str(&mut self) -> Result<String, Bad> {
        let n = self.len()?;
        String::from_utf8(self.bytes(n)?.to_vec()).map_err(|_| Bad::from("bad string"))
    }
    fn strs(&mut self) -> Result<Vec<String>, Bad> {
        let n = self.len()?;
        (0..n).map(|_| self.str()).collect()
    }
    fn u8s(&mut self) -> Result<Vec<u8>, Bad> {
        let n = self.len()?;
        Ok(self.bytes(n)?.to_vec())
    }
    fn u32s(&mut self) -> Result<Vec<u32>, Bad> {
        let n = self.len()?;
        let b = self.bytes(n.checked_mul(4).ok_or("bad length")?)?;
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    fn u32s_delta(&mut self) -> Result<Vec<u32>, Bad> {
        let mut values = self.u32s()?;
        let mut previous = 0u32;
        for v in &mut values {
            previous = previous.wrapping_add(*v);
            *v = previous;
        }
        Ok(values)
    }
    fn u64s(&mut self) -> Result<Vec<u64>, Bad> {
        let n = self.len()?;
        let b = self.bytes(n.checked_mul(8).ok_or("bad length")?)?;
        Ok(b.chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                u64::from_le_bytes(a)
            })
            .collect())
    }
    fn location(&mut self) -> Result<Option<Location>, Bad> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(Location {
                script_id: self.u32()?,
                line: self.u32()?,
                column: self.u32()?,
            })),
            _ => Err("bad location".into()),
        }
    }
}
