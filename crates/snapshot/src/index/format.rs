//! The index file: a loaded [`Snapshot`] with everything drill-down needs, in flat columns.
//!
//! ```text
//! MAGIC  format:u32
//! column block*      (each one zstd frame of 64 Ki values; a column's blocks in a row)
//! small section*     (each one zstd frame)
//! footer: version:str  identity:str
//!         (offset:u64 raw_len:u64 stored_len:u64 crc:u32)*3                       small sections
//!         (len:u64 delta:u8 crc:u32 blocks:u32 (offset:u64 stored:u32 first:u64 min:u64 max:u64)*)*14
//!         footer_crc:u32
//! footer_len:u64  MAGIC
//! ```
//!
//! The footer comes last so that columns can be written while the snapshot is still being
//! analysed (see `load::build`), as soon as they are final, instead of being held in memory.
//!
//! The small sections (the summary, the strings, the layout) are read whole. The graph's
//! columns stay in the file and are read block by block as a question touches them, so that
//! finding one object reads a few blocks, not the whole index (see `column`).
//!
//! Nothing read back is trusted: the footer must name this heapgate version and the same
//! source and hold its own checksum, every part must lie inside the file, every section's and
//! column's CRC-32 is checked before anything is used, the columns must agree with each other
//! (lengths, offsets rising from 0 to the end of what they index), and each block's values are
//! checked against the tables they index when it is read. Any failure found on opening is a
//! reason to rebuild, never a panic.

use std::{
    collections::HashMap,
    fs::File,
    io::{self, Read, Write},
    os::unix::fs::FileExt,
    path::Path,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use crate::analysis::Snapshot;
use crate::column::{BLOCK, BlockAt, Cell, Check, Column, ColumnWriter, IndexFile, Slot, Stored};
use crate::dominators::{EdgeTypes, Graph};
use crate::identity::{Fingerprint, IdentitySample, SampleRate};
use crate::layout::Layout;
use crate::model::{InterfaceDefinition, Location, SnapshotInfo};
use crate::parse::{EDGE_TARGET_MASK, Heap, StringTable};
use crate::summary::{ClassRef, Group, Member, Summary};
use crate::work::{Stage, Work};

/// The first bytes of every index file.
const MAGIC: &[u8; 8] = b"HGINDEX\n";
/// Bumped whenever the layout below changes.
const FORMAT: u32 = 4;
/// This build's version: an index written by another is rebuilt.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
/// zstd level of the small sections: fast, and still about 3× on these tables.
const LEVEL: i32 = 1;
/// The small sections, each one zstd frame: 0 the summary's tables and the layout, 1 the
/// strings, 2 the summary's members.
const SMALL: usize = 3;
/// The graph's columns: see [`Slot`].
const COLUMNS: usize = Slot::ALL.len();
/// A footer larger than this is damage, not an index.
const MAX_FOOTER: u64 = 256 << 20;
/// `MAGIC format:u32` at the start of the file.
const HEAD: u64 = 12;
/// `footer_len:u64 MAGIC` at the end of the file.
const TAIL: u64 = 16;

/// Why an index was not used (a warning's text; the index is rebuilt).
pub(crate) type Bad = String;

/// Starts an index in `file` (empty, opened for reading and writing; `path` names it in
/// messages): the analysis may put columns into the writer as soon as they are final, and
/// [`finish`] writes the rest.
pub(crate) fn begin(file: File, path: &Path) -> io::Result<ColumnWriter> {
    let mut writer = ColumnWriter::new(file, path.to_owned(), 0);
    let mut head = Enc::default();
    head.0.extend_from_slice(MAGIC);
    head.u32(FORMAT);
    writer.append(&head.0)?;
    Ok(writer)
}

/// Writes what `writer` does not have yet of `snapshot` — the remaining columns, the small
/// sections — and the footer that describes them, for the source named `identity`. Returns the
/// index's size.
pub(crate) fn finish(
    snapshot: &mut Snapshot,
    identity: &str,
    writer: &mut ColumnWriter,
    work: &Work,
) -> io::Result<u64> {
    let cancelled = || io::Error::other("cancelled");
    let steps = (COLUMNS + SMALL) as u64;
    // Largest first, each replaced by its copy in the index as soon as it is written: the
    // snapshot shrinks as the index grows, instead of the two adding up.
    const ORDER: [Slot; COLUMNS] = [
        Slot::RetainerEdge,
        Slot::Edges,
        Slot::EdgeName,
        Slot::Retained,
        Slot::FirstRetainer,
        Slot::Dominator,
        Slot::Distance,
        Slot::NodeId,
        Slot::FirstEdge,
        Slot::NodeGroup,
        Slot::NodeName,
        Slot::EdgeType,
        Slot::NodeType,
        Slot::Detached,
    ];
    for (k, slot) in ORDER.into_iter().enumerate() {
        if work.is_cancelled() {
            return Err(cancelled());
        }
        if !writer.has(slot) {
            put(snapshot, slot, writer)?;
        }
        work.stage(Stage::WritingIndex, k as u64 + 1, Some(steps));
    }
    let jobs: Vec<usize> = (0..SMALL).collect();
    let snapshot = &*snapshot;
    let small = on_workers(work, Stage::WritingIndex, &jobs, |i| {
        if i == 2 {
            return compress_members(&snapshot.summary);
        }
        let raw = encode(snapshot, i);
        compress(&raw).map(|c| (raw.len() as u64, c))
    });
    if work.is_cancelled() {
        return Err(cancelled());
    }
    let mut foot = Enc::default();
    foot.str(VERSION);
    foot.str(identity);
    for part in small {
        let (raw, stored) =
            part.ok_or_else(|| io::Error::other("an index section was not written"))??;
        let at = writer.append(&stored)?;
        foot.u64(at);
        foot.u64(raw);
        foot.u64(stored.len() as u64);
        foot.u32(crc32fast::hash(&stored));
    }
    let (placed, _) = writer.placed();
    for placed in placed {
        let placed = placed
            .as_ref()
            .ok_or_else(|| io::Error::other("a column was not written"))?;
        foot.u64(placed.len as u64);
        foot.u8(u8::from(placed.delta));
        foot.u32(placed.crc);
        foot.u32(placed.blocks.len() as u32);
        for at in &placed.blocks {
            foot.u64(at.offset);
            foot.u32(at.stored);
            foot.u64(at.first);
            foot.u64(at.min);
            foot.u64(at.max);
        }
    }
    let crc = crc32fast::hash(&foot.0);
    foot.u32(crc);
    let len = foot.0.len() as u64;
    foot.u64(len);
    foot.0.extend_from_slice(MAGIC);
    writer.append(&foot.0)?;
    Ok(writer.placed().1)
}

/// Column `slot` of `s` into `writer`, then `s` reads it from there.
fn put(s: &mut Snapshot, slot: Slot, writer: &mut ColumnWriter) -> io::Result<()> {
    fn swap<T: Cell>(column: &mut Column<T>, slot: Slot, w: &mut ColumnWriter) -> io::Result<()> {
        w.put(slot, column)?;
        if let Some(stored) = w.stored(slot) {
            *column = stored;
        }
        Ok(())
    }
    let (heap, graph) = (&mut s.heap, &mut s.graph);
    match slot {
        Slot::NodeType => swap(&mut heap.node_type, slot, writer),
        Slot::NodeName => swap(&mut heap.node_name, slot, writer),
        Slot::NodeId => swap(&mut heap.node_id, slot, writer),
        Slot::FirstEdge => swap(&mut heap.first_edge, slot, writer),
        Slot::NodeGroup => swap(&mut s.node_group, slot, writer),
        Slot::Detached => swap(&mut s.detached, slot, writer),
        Slot::Edges => swap(&mut heap.edges, slot, writer),
        Slot::EdgeType => swap(&mut heap.edge_type, slot, writer),
        Slot::EdgeName => swap(&mut heap.edge_name, slot, writer),
        Slot::FirstRetainer => swap(&mut graph.first_retainer, slot, writer),
        Slot::RetainerEdge => swap(&mut graph.retainer_edge, slot, writer),
        Slot::Retained => swap(&mut graph.retained, slot, writer),
        Slot::Distance => swap(&mut graph.distance, slot, writer),
        Slot::Dominator => swap(&mut graph.dominator, slot, writer),
    }
}

/// The summary's members as section 2 — (id − previous id, size) per member, read back in
/// one pass (`read_members`) — compressed as they are encoded: no raw copy of them in memory.
fn compress_members(summary: &Summary) -> io::Result<(u64, Vec<u8>)> {
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), LEVEL)?;
    encoder.include_checksum(true)?;
    let mut buf = Vec::with_capacity(64 << 10);
    let (mut previous, mut raw) = (0u32, 0u64);
    for m in summary.groups.iter().flat_map(|g| &g.members) {
        buf.extend_from_slice(&m.id.wrapping_sub(previous).to_le_bytes());
        buf.extend_from_slice(&m.size.to_le_bytes());
        previous = m.id;
        if buf.len() >= 64 << 10 {
            encoder.write_all(&buf)?;
            raw += buf.len() as u64;
            buf.clear();
        }
    }
    encoder.write_all(&buf)?;
    raw += buf.len() as u64;
    Ok((raw, encoder.finish()?))
}

/// `job(i)` for every `i` of `jobs`, on a few threads (jobs are independent), in the order of
/// `jobs`; `None` for the jobs not done because `work` was cancelled.
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
    let mut out: Vec<Option<T>> = jobs.iter().map(|_| None).collect();
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
                        let result = job(jobs[k]);
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        work.stage(stage, n as u64, Some(jobs.len() as u64));
                        mine.push((k, result));
                    }
                    mine
                })
            })
            .collect();
        for handle in handles {
            // A worker that panicked leaves its jobs `None`: an error, not a crash.
            for (k, result) in handle.join().unwrap_or_default() {
                out[k] = Some(result);
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

/// An index file's footer, checked: where everything is.
struct Header {
    file: Arc<IndexFile>,
    /// Offset, stored length, raw length and checksum of each small section.
    small: Vec<(u64, u64, u64, u32)>,
    columns: Vec<ColumnAt>,
}

struct ColumnAt {
    len: usize,
    delta: bool,
    crc: u32,
    blocks: Vec<BlockAt>,
}

impl ColumnAt {
    /// Where the column's blocks are in the file (one after the other).
    fn span(&self) -> (u64, u64) {
        let start = self.blocks.first().map_or(HEAD, |b| b.offset);
        let len = self.blocks.iter().map(|b| u64::from(b.stored)).sum();
        (start, len)
    }
}

/// Reads and checks the footer of the index at `path`: this version, this source, a whole
/// file, every part inside it.
fn header(path: &Path, identity: &str) -> Result<Header, Bad> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut head = [0u8; HEAD as usize];
    file.read_exact_at(&mut head, 0)
        .map_err(|_| Bad::from("not a heapgate index"))?;
    let mut dec = Dec::new(&head);
    if dec.bytes(MAGIC.len())? != MAGIC {
        return Err("not a heapgate index".into());
    }
    let format = dec.u32()?;
    if format != FORMAT {
        return Err(format!("written in another format ({format})"));
    }
    let mut tail = [0u8; TAIL as usize];
    if file_len < HEAD + TAIL {
        return Err("truncated".into());
    }
    file.read_exact_at(&mut tail, file_len - TAIL)
        .map_err(|e| e.to_string())?;
    let mut dec = Dec::new(&tail);
    let footer_len = dec.u64()?;
    if dec.bytes(MAGIC.len())? != MAGIC {
        return Err("truncated or padded".into());
    }
    if !(4..=MAX_FOOTER.min(file_len - HEAD - TAIL)).contains(&footer_len) {
        return Err("damaged: the footer's length".into());
    }
    let footer_at = file_len - TAIL - footer_len;
    let mut foot = vec![0u8; footer_len as usize];
    file.read_exact_at(&mut foot, footer_at)
        .map_err(|e| e.to_string())?;
    let (body, crc) = foot.split_at(foot.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err("damaged: the footer's checksum".into());
    }
    let inside =
        |at: u64, len: u64| at >= HEAD && at.checked_add(len).is_some_and(|e| e <= footer_at);
    let mut dec = Dec::new(body);
    let version = dec.str()?;
    if version != VERSION {
        return Err(format!("written by heapgate {version}"));
    }
    if dec.str()? != identity {
        return Err("written for another file".into());
    }
    let mut small = Vec::with_capacity(SMALL);
    for _ in 0..SMALL {
        let (at, raw, stored, crc) = (dec.u64()?, dec.u64()?, dec.u64()?, dec.u32()?);
        if !inside(at, stored) {
            return Err("damaged: a section's place".into());
        }
        small.push((at, stored, raw, crc));
    }
    let mut columns = Vec::with_capacity(COLUMNS);
    for _ in 0..COLUMNS {
        let len = dec.u64()?;
        let delta = dec.u8()? != 0;
        let crc = dec.u32()?;
        let n = dec.u32()? as usize;
        if len.div_ceil(BLOCK as u64) != n as u64 {
            return Err("damaged: a column's blocks".into());
        }
        let mut blocks: Vec<BlockAt> = Vec::with_capacity(n.min(body.len() / 36));
        for _ in 0..n {
            let at = BlockAt {
                offset: dec.u64()?,
                stored: dec.u32()?,
                first: dec.u64()?,
                min: dec.u64()?,
                max: dec.u64()?,
            };
            let follows = blocks
                .last()
                .is_none_or(|b| b.offset + u64::from(b.stored) == at.offset);
            if !follows || !inside(at.offset, u64::from(at.stored)) {
                return Err("damaged: a block's place".into());
            }
            blocks.push(at);
        }
        columns.push(ColumnAt {
            len: len as usize,
            delta,
            crc,
            blocks,
        });
    }
    if dec.at != body.len() {
        return Err("damaged: the footer's length".into());
    }
    Ok(Header {
        file: Arc::new(IndexFile {
            file,
            path: path.to_owned(),
        }),
        small,
        columns,
    })
}

/// Checks the checksums of the regions `(offset, len, crc)` of `file`, on a few threads.
fn verify(file: &IndexFile, regions: &[(u64, u64, u32)], work: &Work) -> Result<(), Bad> {
    let jobs: Vec<usize> = (0..regions.len()).collect();
    let results = on_workers(work, Stage::ReadingIndex, &jobs, |i| {
        let (offset, len, crc) = regions[i];
        let mut hasher = crc32fast::Hasher::new();
        let mut buf = vec![0u8; (4 << 20).min(len as usize)];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            file.file
                .read_exact_at(&mut buf[..n], offset + done)
                .map_err(|e| e.to_string())?;
            hasher.update(&buf[..n]);
            done += n as u64;
        }
        if hasher.finalize() == crc {
            Ok(())
        } else {
            Err(Bad::from("damaged: a checksum does not match"))
        }
    });
    if work.is_cancelled() {
        return Err("cancelled".into());
    }
    for result in results {
        result.ok_or_else(|| Bad::from("a section was not read"))??;
    }
    Ok(())
}

/// Small section `i` as stored, and its raw length.
fn small_bytes(header: &Header, i: usize) -> Result<(Vec<u8>, u64), Bad> {
    let (offset, len, raw, _) = header.small[i];
    let mut stored = vec![0u8; len as usize];
    header
        .file
        .file
        .read_exact_at(&mut stored, offset)
        .map_err(|e| e.to_string())?;
    Ok((stored, raw))
}

/// Small section `i`, checked and decoded.
fn small_part(header: &Header, i: usize) -> Result<Part, Bad> {
    let (stored, raw) = small_bytes(header, i)?;
    // Grows as it goes: a wrong `raw` allocates nothing up front.
    let mut out = Vec::new();
    let mut decoder = zstd::stream::Decoder::new(stored.as_slice()).map_err(|e| e.to_string())?;
    (&mut decoder)
        .take(raw + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("damaged: {e}"))?;
    if out.len() as u64 != raw {
        return Err("damaged: a section has the wrong length".into());
    }
    decode(i, &out)
}

/// Reads the index at `path` if it was written by this version for `identity`. The small
/// sections are read whole; the graph's columns stay in the file, read block by block as
/// questions need them (every byte's checksum is checked first).
pub(crate) fn read(path: &Path, identity: &str, work: &Work) -> Result<Snapshot, Bad> {
    let header = header(path, identity)?;
    let mut regions: Vec<(u64, u64, u32)> = header
        .small
        .iter()
        .map(|&(offset, len, _, crc)| (offset, len, crc))
        .collect();
    regions.extend(header.columns.iter().map(|c| {
        let (offset, len) = c.span();
        (offset, len, c.crc)
    }));
    verify(&header.file, &regions, work)?;
    let Part::Meta(meta) = small_part(&header, 0)? else {
        return Err("sections out of order".into());
    };
    let (strings, members) = std::thread::scope(|scope| {
        let strings = scope.spawn(|| small_part(&header, 1));
        let members = read_members(&header, &meta);
        (
            strings
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            members,
        )
    });
    let Part::Strings(strings) = strings? else {
        return Err("sections out of order".into());
    };
    assemble(header, *meta, strings, members?)
}

/// The summary's members, group by group, decoded as they are decompressed (one copy of them
/// in memory, each group's list allocated once).
fn read_members(header: &Header, meta: &Meta) -> Result<Vec<Vec<Member>>, Bad> {
    let total: u64 = meta.groups.iter().map(|g| g.2).sum();
    if total.checked_mul(8) != Some(header.small[2].2) {
        return Err("inconsistent: members".into());
    }
    let (stored, _) = small_bytes(header, 2)?;
    let mut decoder = zstd::stream::Decoder::new(stored.as_slice()).map_err(|e| e.to_string())?;
    let damaged = |e: io::Error| format!("damaged: {e}");
    let mut buf = vec![0u8; 64 << 10];
    let mut previous = 0u32;
    let mut groups = Vec::with_capacity(meta.groups.len());
    for &(_, _, count) in &meta.groups {
        let mut members = Vec::with_capacity(count as usize);
        let mut left = count as usize;
        while left > 0 {
            let n = left.min(buf.len() / 8);
            decoder.read_exact(&mut buf[..n * 8]).map_err(damaged)?;
            for m in buf[..n * 8].chunks_exact(8) {
                previous = previous.wrapping_add(u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
                let size = u32::from_le_bytes([m[4], m[5], m[6], m[7]]);
                members.push(Member { id: previous, size });
            }
            left -= n;
        }
        groups.push(members);
    }
    if decoder.read(&mut buf).map_err(damaged)? != 0 {
        return Err("damaged: a section has the wrong length".into());
    }
    Ok(groups)
}

/// Only the [`Summary`] of the index at `path` (what `summary` and the files of a comparison
/// but the last need): two small sections.
pub(crate) fn read_summary(path: &Path, identity: &str, work: &Work) -> Result<Summary, Bad> {
    let header = header(path, identity)?;
    let regions: Vec<(u64, u64, u32)> = [0, 2]
        .iter()
        .map(|&i| {
            let (offset, len, _, crc) = header.small[i];
            (offset, len, crc)
        })
        .collect();
    verify(&header.file, &regions, work)?;
    let Part::Meta(meta) = small_part(&header, 0)? else {
        return Err("sections out of order".into());
    };
    let members = read_members(&header, &meta)?;
    let (summary, _) = summary_of(*meta, members)?;
    Ok(summary)
}

/// One decoded small section.
enum Part {
    Meta(Box<Meta>),
    Strings(StringTable),
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
    rest: MetaRest,
}

fn encode(s: &Snapshot, section: usize) -> Vec<u8> {
    let mut e = Enc::default();
    let (summary, heap) = (&s.summary, &s.heap);
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
        _ => {
            e.str(&heap.strings.text);
            e.u32s(&heap.strings.ends);
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
                rest: MetaRest {
                    layout,
                    closure_locations,
                    sample,
                    keys,
                    group_key,
                    root,
                },
            }))
        }
        1 => Part::Strings(StringTable {
            text: d.str()?,
            ends: d.u32s()?,
        }),
        _ => return Err("not a section to decode whole".into()),
    };
    if d.at != bytes.len() {
        return Err("a section has trailing bytes".into());
    }
    Ok(part)
}

/// Checks that the columns agree with each other and with the small sections, and makes the
/// snapshot. What the header declares is checked here; each block's values are checked against
/// it when the block is read (see [`Check`]).
fn assemble(
    header: Header,
    meta: Meta,
    strings: StringTable,
    members: Vec<Vec<Member>>,
) -> Result<Snapshot, Bad> {
    let bad = |what: &str| Err(format!("inconsistent: {what}"));
    let lens: Vec<usize> = header.columns.iter().map(|c| c.len).collect();
    let (n, e, r) = (lens[2], lens[7], lens[10]);
    if n == 0 || n > EDGE_TARGET_MASK as usize || meta.rest.root as usize >= n {
        return bad("node count");
    }
    let node_columns = [0, 1, 2, 4, 5, 11, 12, 13];
    if node_columns.iter().any(|&c| lens[c] != n)
        || [6, 7, 8].iter().any(|&c| lens[c] != e)
        || lens[3] != n + 1
        || lens[9] != n + 1
    {
        return bad("column lengths");
    }
    // Offsets rise from 0 to the end of what they index, block after block.
    let rising = |c: &ColumnAt, end: usize| {
        c.blocks.first().is_some_and(|b| b.first == 0)
            && c.blocks.last().is_some_and(|b| b.max == end as u64)
            && c.blocks
                .iter()
                .all(|b| b.min == b.first && b.first <= b.max)
            && c.blocks.windows(2).all(|w| w[0].max <= w[1].first)
    };
    if !rising(&header.columns[3], e) || !rising(&header.columns[9], r) {
        return bad("offsets");
    }
    let node_types = meta.rest.layout.nodes.type_names.len();
    let edge_types = meta.rest.layout.edges.type_names.len();
    if meta.rest.layout.nodes.kinds.len() != node_types
        || meta.rest.layout.edges.kinds.len() != edge_types
    {
        return bad("types");
    }
    if strings.ends.windows(2).any(|w| w[0] > w[1])
        || strings
            .ends
            .last()
            .is_some_and(|&l| l as usize > strings.text.len())
    {
        return bad("strings");
    }
    if meta
        .rest
        .closure_locations
        .iter()
        .any(|&(o, _)| o as usize >= n)
    {
        return bad("groups");
    }
    let groups = meta.groups.len() as u64;
    let (summary, meta) = summary_of(meta, members)?;
    let file = header.file;
    let mut columns = header.columns.into_iter();
    let mut next = || {
        columns
            .next()
            .unwrap_or_else(|| unreachable!("{COLUMNS} columns read"))
    };
    let (n, e, r) = (n as u64, e as u64, r as u64);
    let heap_columns = (
        stored(&file, next(), Check::Below(node_types as u64)),
        stored(&file, next(), Check::Any),
        stored(&file, next(), Check::Any),
        stored(&file, next(), Check::Rising(e)),
    );
    let node_group = stored(&file, next(), Check::BelowOrNone(groups));
    let detached = stored(&file, next(), Check::Any);
    let edge_columns = (
        stored(&file, next(), Check::Masked(EDGE_TARGET_MASK.into(), n)),
        stored(&file, next(), Check::Below(edge_types as u64)),
        stored(&file, next(), Check::Any),
    );
    let graph = Graph {
        first_retainer: stored(&file, next(), Check::Rising(r)),
        retainer_edge: stored(&file, next(), Check::Below(e)),
        retained: stored(&file, next(), Check::Any),
        distance: stored(&file, next(), Check::Any),
        dominator: stored(&file, next(), Check::Below(n)),
    };
    let heap = Heap {
        layout: meta.layout,
        node_type: heap_columns.0,
        node_name: heap_columns.1,
        node_id: heap_columns.2,
        node_size: Column::default(),
        node_detachedness: Column::default(),
        first_edge: heap_columns.3,
        edges: edge_columns.0,
        edge_type: edge_columns.1,
        edge_name: edge_columns.2,
        locations: Vec::new(),
        closure_locations: meta.closure_locations,
        strings,
        name_hashes: Default::default(),
        sample: meta.sample,
    };
    Ok(Snapshot {
        summary,
        types: EdgeTypes::of(&heap),
        heap,
        graph,
        node_group,
        detached,
        group_key: meta.group_key,
        keys: meta.keys,
        root: meta.root as usize,
        kept: None,
        origin: Default::default(),
    })
}

/// A column left in the index file `file`, its values checked by `check` as they are read.
fn stored<T: Cell>(file: &Arc<IndexFile>, at: ColumnAt, check: Check) -> Column<T> {
    let loaded = at.blocks.iter().map(|_| OnceLock::new()).collect();
    Column::Stored(Stored {
        len: at.len,
        file: Arc::clone(file),
        blocks: at.blocks.into_boxed_slice(),
        delta: at.delta,
        check,
        loaded,
        all: OnceLock::new(),
    })
}

/// What of [`Meta`] a snapshot needs beyond its summary (the layout, the class keys, the root).
struct MetaRest {
    layout: Layout,
    closure_locations: Vec<(u32, Location)>,
    sample: SampleRate,
    keys: Vec<(String, Option<Location>)>,
    group_key: Vec<u32>,
    root: u64,
}

/// The summary of `meta` and its groups' `members`, checked.
fn summary_of(meta: Meta, members: Vec<Vec<Member>>) -> Result<(Summary, MetaRest), Bad> {
    let bad = |what: &str| Err(format!("inconsistent: {what}"));
    // Groups and classes.
    let groups_n = meta.groups.len();
    if meta.group_retained.len() != groups_n
        || meta.rest.group_key.len() != groups_n
        || meta
            .rest
            .group_key
            .iter()
            .any(|&k| k as usize >= meta.rest.keys.len())
        || meta
            .shapes
            .iter()
            .any(|s| s.iter().any(|&p| p as usize >= meta.property_names.len()))
    {
        return bad("groups");
    }
    if members.len() != groups_n
        || members
            .iter()
            .zip(&meta.groups)
            .any(|(m, g)| m.len() as u64 != g.2)
    {
        return bad("members");
    }
    let mut groups = Vec::with_capacity(groups_n);
    for (&(class, location, _), members) in meta.groups.iter().zip(members) {
        match class {
            ClassRef::Named(i) if i as usize >= meta.class_names.len() => return bad("class"),
            ClassRef::Plain(i) if i as usize >= meta.shapes.len() => return bad("shape"),
            _ => {}
        }
        if members.windows(2).any(|w| w[0].id > w[1].id) {
            return bad("member order");
        }
        groups.push(Group {
            class,
            location,
            members,
        });
    }
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
    Ok((summary, meta.rest))
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
    fn u32s(&mut self, v: &[u32]) {
        self.u64(v.len() as u64);
        self.0.reserve(v.len() * 4);
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
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
    fn u32s(&mut self) -> Result<Vec<u32>, Bad> {
        let n = self.len()?;
        let b = self.bytes(n.checked_mul(4).ok_or("bad length")?)?;
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
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
