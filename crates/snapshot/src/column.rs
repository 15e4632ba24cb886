//! A column of the graph — one value per node, edge or retainer entry — either in memory (a
//! snapshot just read) or in an index file, read block by block as questions touch it.
//!
//! A stored column is what makes a later question about a large file cheap: finding one object
//! and walking its edges and retainers reads a few blocks of a few columns, not the whole index.
//! Code that needs the whole column (a scan, a sort) derefs it to a `Vec`, which reads every
//! block once. The blocks' bytes were checked against the index's checksums when it was opened
//! (see `index::format`), and their values are checked against the bounds the index declared
//! when each block is decoded.

use std::{
    fs::File,
    io,
    ops::{Deref, DerefMut, Index, Range},
    os::unix::fs::FileExt,
    path::PathBuf,
    sync::{Arc, OnceLock},
};

/// Values per block: 256 KiB of `u32`, a fraction of a millisecond to decompress.
pub(crate) const BLOCK: usize = 1 << 16;

/// zstd level of the blocks: a fast negative level (no entropy coding of literals) — writing
/// the index is part of a file's first question, and these columns still shrink about 5×.
pub(crate) const LEVEL: i32 = -3;

/// A value a column can hold, stored little-endian.
pub(crate) trait Cell: Copy + Default + Send + Sync + 'static {
    /// Bytes per value.
    const BYTES: usize;
    /// Writes the value into `out` (exactly [`Cell::BYTES`] long).
    fn put(self, out: &mut [u8]);
    fn take(bytes: &[u8]) -> Self;
    /// The value as a number, for the blocks' minimum and maximum, and back.
    fn number(self) -> u64;
    fn from_number(n: u64) -> Self;
    /// `self - previous` and its inverse, for delta-coded columns (ids, offsets).
    fn minus(self, previous: Self) -> Self;
    fn plus(self, previous: Self) -> Self;
}

macro_rules! cell {
    ($t:ty, $n:expr, $number:expr) => {
        impl Cell for $t {
            const BYTES: usize = $n;
            fn put(self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
            fn take(bytes: &[u8]) -> Self {
                let mut a = [0u8; $n];
                a.copy_from_slice(bytes);
                <$t>::from_le_bytes(a)
            }
            fn number(self) -> u64 {
                $number(self)
            }
            #[allow(clippy::cast_possible_truncation)]
            fn from_number(n: u64) -> Self {
                n as $t
            }
            fn minus(self, previous: Self) -> Self {
                self.wrapping_sub(previous)
            }
            fn plus(self, previous: Self) -> Self {
                self.wrapping_add(previous)
            }
        }
    };
}
cell!(u8, 1, u64::from);
cell!(u32, 4, u64::from);
cell!(u64, 8, std::convert::identity);
// Distances: the bits, so that a value read back is the value written.
cell!(i32, 4, |v: i32| u64::from(v as u32));

impl Cell for bool {
    const BYTES: usize = 1;
    fn put(self, out: &mut [u8]) {
        out[0] = u8::from(self);
    }
    fn take(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
    fn number(self) -> u64 {
        u64::from(self)
    }
    fn from_number(n: u64) -> Self {
        n != 0
    }
    fn minus(self, _: Self) -> Self {
        self
    }
    fn plus(self, _: Self) -> Self {
        self
    }
}

/// A column: see the module documentation.
pub(crate) enum Column<T: Cell> {
    Memory(Vec<T>),
    Stored(Stored<T>),
}

impl<T: Cell> Default for Column<T> {
    fn default() -> Self {
        Column::Memory(Vec::new())
    }
}

impl<T: Cell> From<Vec<T>> for Column<T> {
    fn from(v: Vec<T>) -> Self {
        Column::Memory(v)
    }
}

impl<T: Cell> FromIterator<T> for Column<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Column::Memory(iter.into_iter().collect())
    }
}

impl<T: Cell> Column<T> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Column::Memory(v) => v.len(),
            Column::Stored(s) => s.len,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at `i`, if there is one (reads only its block).
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        (i < self.len()).then(|| &self[i])
    }

    /// The index ranges of the blocks that may hold a value `>= at_least` (the column's blocks
    /// whose maximum is that high; one range for a column in memory).
    pub(crate) fn ranges_reaching(&self, at_least: u64) -> Vec<Range<usize>> {
        match self {
            Column::Memory(v) => std::iter::once(0..v.len()).collect(),
            Column::Stored(s) => (0..s.blocks.len())
                .filter(|&b| s.blocks[b].max >= at_least)
                .map(|b| s.range(b))
                .collect(),
        }
    }

    /// The first index holding `value` (reads only the blocks whose range can hold it).
    pub(crate) fn position(&self, value: T) -> Option<usize>
    where
        T: PartialEq,
    {
        match self {
            Column::Memory(v) => v.iter().position(|&x| x == value),
            Column::Stored(s) => {
                let n = value.number();
                (0..s.blocks.len())
                    .filter(|&b| (s.blocks[b].min..=s.blocks[b].max).contains(&n))
                    .find_map(|b| {
                        let range = s.range(b);
                        s.block(b)
                            .iter()
                            .position(|&x| x == value)
                            .map(|i| range.start + i)
                    })
            }
        }
    }

    /// For a column sorted ascending, the number of leading values for which `pred` holds (as
    /// [`slice::partition_point`]), reading one block.
    pub(crate) fn partition_point(&self, pred: impl Fn(T) -> bool) -> usize {
        match self {
            Column::Memory(v) => v.partition_point(|&x| pred(x)),
            Column::Stored(s) => {
                // Blocks whose first value satisfies `pred` come first; the point is in the last
                // of them (or at 0).
                let blocks = s.blocks.partition_point(|b| pred(T::from_number(b.first)));
                if blocks == 0 {
                    return 0;
                }
                let b = blocks - 1;
                s.range(b).start + s.block(b).partition_point(|&x| pred(x))
            }
        }
    }
}

impl<T: Cell> Index<usize> for Column<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        match self {
            Column::Memory(v) => &v[i],
            Column::Stored(s) => match s.all.get() {
                Some(all) => &all[i],
                None => {
                    assert!(i < s.len, "index {i} out of a column of {}", s.len);
                    &s.block(i / BLOCK)[i % BLOCK]
                }
            },
        }
    }
}

impl<T: Cell> Index<Range<usize>> for Column<T> {
    type Output = [T];
    /// A range inside one block reads that block only (one node's edges or retainers); a
    /// range across blocks reads the whole column (index by index to avoid that).
    fn index(&self, range: Range<usize>) -> &[T] {
        match self {
            Column::Stored(s) if s.all.get().is_none() && range.start < range.end => {
                let b = range.start / BLOCK;
                if (range.end - 1) / BLOCK == b && range.end <= s.len {
                    let at = b * BLOCK;
                    &s.block(b)[range.start - at..range.end - at]
                } else {
                    &self.deref()[range]
                }
            }
            _ => &self.deref()[range],
        }
    }
}

macro_rules! whole_range {
    ($r:ty) => {
        impl<T: Cell> Index<$r> for Column<T> {
            type Output = [T];
            fn index(&self, range: $r) -> &[T] {
                &self.deref()[range]
            }
        }
    };
}
whole_range!(std::ops::RangeTo<usize>);
whole_range!(std::ops::RangeFrom<usize>);
whole_range!(std::ops::RangeFull);
whole_range!(std::ops::RangeInclusive<usize>);

impl<'a, T: Cell> IntoIterator for &'a Column<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.deref().iter()
    }
}

impl<T: Cell> Deref for Column<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        match self {
            Column::Memory(v) => v,
            Column::Stored(s) => s.all.get_or_init(|| s.read_all()),
        }
    }
}

impl<T: Cell> DerefMut for Column<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        if let Column::Stored(s) = self {
            let all = s.all.take().unwrap_or_else(|| s.read_all());
            *self = Column::Memory(all);
        }
        match self {
            Column::Memory(v) => v,
            Column::Stored(_) => unreachable!("made a memory column above"),
        }
    }
}

/// What every value of a stored column must satisfy: an index into a table must be inside it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Check {
    Any,
    Below(u64),
    /// Below, or `u32::MAX` (none).
    BelowOrNone(u64),
    /// Below, once masked (an edge's target without its flags).
    Masked(u64, u64),
    /// Offsets: never falling, at most this.
    Rising(u64),
}

impl Check {
    fn holds<T: Cell>(self, values: &[T]) -> bool {
        let n = |v: &T| v.number();
        match self {
            Check::Any => true,
            Check::Below(end) => values.iter().all(|v| n(v) < end),
            Check::BelowOrNone(end) => values
                .iter()
                .all(|v| n(v) < end || n(v) == u64::from(u32::MAX)),
            Check::Masked(mask, end) => values.iter().all(|v| n(v) & mask < end),
            Check::Rising(end) => {
                values.windows(2).all(|w| n(&w[0]) <= n(&w[1]))
                    && values.last().is_none_or(|v| n(v) <= end)
            }
        }
    }
}

/// A block's first, smallest and largest value.
fn facts<T: Cell>(values: &[T]) -> (u64, u64, u64) {
    let (mut min, mut max) = (u64::MAX, 0u64);
    for v in values {
        min = min.min(v.number());
        max = max.max(v.number());
    }
    (values.first().map_or(0, |v| v.number()), min, max)
}

/// Where a stored column's blocks are, and what the index declared about them.
#[derive(Clone, Debug)]
pub(crate) struct BlockAt {
    /// Offset of the compressed block in the index file, and its length.
    pub(crate) offset: u64,
    pub(crate) stored: u32,
    /// The block's first, smallest and largest value, as numbers whatever the column's type.
    pub(crate) first: u64,
    pub(crate) min: u64,
    pub(crate) max: u64,
}

/// An index file, shared by its columns.
pub(crate) struct IndexFile {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
}

/// A column in an index file.
pub(crate) struct Stored<T: Cell> {
    pub(crate) len: usize,
    pub(crate) file: Arc<IndexFile>,
    pub(crate) blocks: Box<[BlockAt]>,
    /// Stored as differences from the previous value (within a block).
    pub(crate) delta: bool,
    /// What every value must satisfy.
    pub(crate) check: Check,
    pub(crate) loaded: Box<[OnceLock<Box<[T]>>]>,
    pub(crate) all: OnceLock<Vec<T>>,
}

impl<T: Cell> Stored<T> {
    fn range(&self, b: usize) -> Range<usize> {
        b * BLOCK..((b + 1) * BLOCK).min(self.len)
    }

    fn block(&self, b: usize) -> &[T] {
        self.loaded[b].get_or_init(|| {
            self.decode(b).unwrap_or_else(|why| {
                // The bytes passed their checksum when the index was opened: only a damaged
                // disk or a forged index gets here.
                panic!(
                    "heapgate: the index {} is damaged ({why}); delete it and ask again",
                    self.file.path.display()
                )
            })
        })
    }

    fn decode(&self, b: usize) -> Result<Box<[T]>, String> {
        let at = &self.blocks[b];
        let mut stored = vec![0u8; at.stored as usize];
        self.file
            .file
            .read_exact_at(&mut stored, at.offset)
            .map_err(|e| e.to_string())?;
        let range = self.range(b);
        let raw_len = range.len() * T::BYTES;
        // A block that did not compress is stored as it is: as long as its raw bytes.
        let raw = if stored.len() == raw_len {
            stored
        } else {
            zstd::bulk::decompress(&stored, raw_len).map_err(|e| e.to_string())?
        };
        if raw.len() != raw_len {
            return Err("a block has the wrong length".into());
        }
        let mut out: Vec<T> = raw.chunks_exact(T::BYTES).map(T::take).collect();
        if self.delta {
            let mut previous = T::default();
            for v in &mut out {
                previous = v.plus(previous);
                *v = previous;
            }
        }
        let (first, min, max) = facts(&out);
        if (first, min, max) != (at.first, at.min, at.max) {
            return Err("a block differs from the header".into());
        }
        if !self.check.holds(&out) {
            return Err("a value out of range".into());
        }
        Ok(out.into_boxed_slice())
    }

    /// Every value, in order (blocks decoded on two threads).
    fn read_all(&self) -> Vec<T> {
        let blocks = self.blocks.len();
        let workers = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .clamp(1, 4);
        let mut parts: Vec<Vec<T>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    scope.spawn(move || {
                        let per = blocks.div_ceil(workers);
                        let mut out = Vec::new();
                        for b in (w * per)..((w + 1) * per).min(blocks) {
                            match self.loaded[b].get() {
                                Some(done) => out.extend_from_slice(done),
                                None => out.extend_from_slice(&self.decoded(b)),
                            }
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        let mut all = Vec::with_capacity(self.len);
        for part in &mut parts {
            all.append(part);
        }
        all
    }

    /// A block decoded without keeping it.
    fn decoded(&self, b: usize) -> Box<[T]> {
        self.decode(b).unwrap_or_else(|why| {
            panic!(
                "heapgate: the index {} is damaged ({why}); delete it and ask again",
                self.file.path.display()
            )
        })
    }
}

/// Compressed blocks and their facts.
#[cfg(test)]
type Blocks = Vec<(Vec<u8>, BlockAt)>;

/// Compresses `values` into blocks for [`Stored`]: each block's bytes and its facts (offsets
/// are filled in by the writer).
#[cfg(test)]
pub(crate) fn blocks_of<T: Cell>(values: &[T], delta: bool) -> io::Result<Blocks> {
    let mut encoder = BlockEncoder::new(delta)?;
    values.chunks(BLOCK).map(|c| encoder.encode(c)).collect()
}

/// Turns blocks of values into stored blocks, through one raw and one output buffer (fresh
/// pages for each block cost more than compressing it).
struct BlockEncoder {
    compressor: zstd::bulk::Compressor<'static>,
    raw: Vec<u8>,
    out: Vec<u8>,
    delta: bool,
    /// Columns that barely compress (an edge list's targets, in an order of their own) are
    /// stored as they are: compressing them costs more than it saves. Judged by the last block
    /// tried; while blocks are stored as they are, every `PROBE`th is tried again.
    as_is: bool,
    /// Blocks encoded.
    seen: usize,
}

/// See [`BlockEncoder::as_is`].
const PROBE: usize = 16;

impl BlockEncoder {
    fn new(delta: bool) -> io::Result<BlockEncoder> {
        Ok(BlockEncoder {
            compressor: zstd::bulk::Compressor::new(LEVEL)?,
            raw: Vec::new(),
            out: Vec::new(),
            delta,
            as_is: false,
            seen: 0,
        })
    }

    fn encode<T: Cell>(&mut self, chunk: &[T]) -> io::Result<(Vec<u8>, BlockAt)> {
        let raw = &mut self.raw;
        raw.clear();
        raw.resize(chunk.len() * T::BYTES, 0);
        let cells = raw.chunks_exact_mut(T::BYTES).zip(chunk);
        if self.delta {
            let mut previous = T::default();
            for (out, &v) in cells {
                v.minus(previous).put(out);
                previous = v;
            }
        } else {
            for (out, &v) in cells {
                v.put(out);
            }
        }
        let try_it = !self.as_is || self.seen.is_multiple_of(PROBE);
        self.seen += 1;
        let stored = if try_it {
            self.out.clear();
            self.out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
            self.compressor.compress_to_buffer(raw, &mut self.out)?;
            // Under 1/5 saved: not worth reading through zstd.
            self.as_is = self.out.len() * 5 >= raw.len() * 4;
            if self.as_is {
                raw.clone()
            } else {
                self.out.clone()
            }
        } else {
            raw.clone()
        };
        let (first, min, max) = facts(chunk);
        let at = BlockAt {
            offset: 0,
            stored: stored.len() as u32,
            first,
            min,
            max,
        };
        Ok((stored, at))
    }
}

/// The graph's columns in an index, in the index's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    NodeType,
    NodeName,
    NodeId,
    FirstEdge,
    NodeGroup,
    Detached,
    Edges,
    EdgeType,
    EdgeName,
    FirstRetainer,
    RetainerEdge,
    Retained,
    Distance,
    Dominator,
}

impl Slot {
    pub(crate) const ALL: [Slot; 14] = [
        Slot::NodeType,
        Slot::NodeName,
        Slot::NodeId,
        Slot::FirstEdge,
        Slot::NodeGroup,
        Slot::Detached,
        Slot::Edges,
        Slot::EdgeType,
        Slot::EdgeName,
        Slot::FirstRetainer,
        Slot::RetainerEdge,
        Slot::Retained,
        Slot::Distance,
        Slot::Dominator,
    ];

    /// Ids and offsets are stored as differences (near-sorted: runs of small numbers compress
    /// several times better).
    pub(crate) fn delta(self) -> bool {
        matches!(self, Slot::NodeId | Slot::FirstEdge | Slot::FirstRetainer)
    }
}

/// A column as written: its length, blocks and checksum.
pub(crate) struct Placed {
    pub(crate) len: usize,
    pub(crate) delta: bool,
    pub(crate) crc: u32,
    pub(crate) blocks: Vec<BlockAt>,
}

/// An index file being written: the graph's columns are appended as they become final (some
/// while the snapshot is still being analysed, instead of holding them in memory), then what
/// describes them. A column written can be read back at once ([`ColumnWriter::stored`]).
pub(crate) struct ColumnWriter {
    file: Arc<IndexFile>,
    end: u64,
    placed: Vec<Option<Placed>>,
}

impl ColumnWriter {
    /// Writes into `file` (opened for reading and writing) from offset `start`.
    pub(crate) fn new(file: File, path: PathBuf, start: u64) -> ColumnWriter {
        ColumnWriter {
            file: Arc::new(IndexFile { file, path }),
            end: start,
            placed: Slot::ALL.iter().map(|_| None).collect(),
        }
    }

    /// Appends `bytes`; returns where they start.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> io::Result<u64> {
        let at = self.end;
        self.file.file.write_all_at(bytes, at)?;
        self.end += bytes.len() as u64;
        Ok(at)
    }

    /// Whether column `slot` is written.
    pub(crate) fn has(&self, slot: Slot) -> bool {
        self.placed[slot as usize].is_some()
    }

    /// Compresses `values` in blocks (on a few threads) and appends them as column `slot`.
    pub(crate) fn put<T: Cell>(&mut self, slot: Slot, values: &[T]) -> io::Result<()> {
        let delta = slot.delta();
        let n = values.len().div_ceil(BLOCK);
        let workers = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .clamp(1, 4)
            .min(n.max(1));
        let mut crc = crc32fast::Hasher::new();
        let mut blocks = Vec::with_capacity(n);
        // Worker `w` compresses blocks w, w + workers, …; they are written in order as they
        // come, a couple in flight per worker: the column is never held compressed.
        std::thread::scope(|scope| -> io::Result<()> {
            let mut from = Vec::with_capacity(workers);
            for w in 0..workers {
                let (send, receive) = std::sync::mpsc::sync_channel(2);
                from.push(receive);
                scope.spawn(move || {
                    let mut encoder = match BlockEncoder::new(delta) {
                        Ok(encoder) => encoder,
                        Err(e) => return drop(send.send(Err(e))),
                    };
                    for b in (w..n).step_by(workers) {
                        let chunk = &values[b * BLOCK..((b + 1) * BLOCK).min(values.len())];
                        // The writer stopped (an error): so do we.
                        if send.send(encoder.encode(chunk)).is_err() {
                            return;
                        }
                    }
                });
            }
            for b in 0..n {
                let (bytes, mut at) = from[b % workers]
                    .recv()
                    .map_err(|_| io::Error::other("a compressing thread stopped"))??;
                at.offset = self.append(&bytes)?;
                crc.update(&bytes);
                blocks.push(at);
            }
            Ok(())
        })?;
        self.placed[slot as usize] = Some(Placed {
            len: values.len(),
            delta,
            crc: crc.finalize(),
            blocks,
        });
        Ok(())
    }

    /// Column `slot` as written, read back from the file block by block (`None` if not
    /// written). Its values were checked when they were computed.
    pub(crate) fn stored<T: Cell>(&self, slot: Slot) -> Option<Column<T>> {
        let placed = self.placed[slot as usize].as_ref()?;
        Some(Column::Stored(Stored {
            len: placed.len,
            file: Arc::clone(&self.file),
            blocks: placed.blocks.iter().map(BlockAt::clone).collect(),
            delta: placed.delta,
            check: Check::Any,
            loaded: placed.blocks.iter().map(|_| OnceLock::new()).collect(),
            all: OnceLock::new(),
        }))
    }

    /// The columns' places (by slot) and where the file ends.
    pub(crate) fn placed(&self) -> (&[Option<Placed>], u64) {
        (&self.placed, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `values` written as one column (delta-coded if `delta`) and opened as a stored column.
    fn stored(values: &[u32], delta: bool, dir: &std::path::Path) -> Column<u32> {
        let path = dir.join("c");
        let blocks = blocks_of(values, delta).unwrap();
        let mut bytes = Vec::new();
        let mut at = Vec::new();
        for (stored, mut facts) in blocks {
            facts.offset = bytes.len() as u64;
            bytes.extend_from_slice(&stored);
            at.push(facts);
        }
        std::fs::write(&path, &bytes).unwrap();
        let n = at.len();
        Column::Stored(Stored {
            len: values.len(),
            file: Arc::new(IndexFile {
                file: File::open(&path).unwrap(),
                path,
            }),
            blocks: at.into(),
            delta,
            check: Check::Any,
            loaded: (0..n).map(|_| OnceLock::new()).collect(),
            all: OnceLock::new(),
        })
    }

    #[test]
    fn a_stored_column_reads_what_was_written_block_by_block() {
        let values: Vec<u32> = (0..(BLOCK as u32 * 2 + 77)).map(|i| i * 3 + 1).collect();
        let dir = tempfile::tempdir().unwrap();
        let column = stored(&values, true, dir.path());
        assert_eq!(column.len(), values.len());
        assert_eq!(column[BLOCK + 5], values[BLOCK + 5]);
        assert_eq!(column.get(values.len()), None);
        assert_eq!(column.position(values[2 * BLOCK + 3]), Some(2 * BLOCK + 3));
        assert_eq!(column.position(2), None);
        for probe in [0, 1, 4, 5, 3 * BLOCK as u32, u32::MAX] {
            assert_eq!(
                column.partition_point(|v| v <= probe),
                values.partition_point(|&v| v <= probe),
                "{probe}"
            );
        }
        assert_eq!(
            column.ranges_reaching(u64::from(values[BLOCK * 2])),
            vec![2 * BLOCK..values.len()]
        );
        assert_eq!(*column, values);
    }

    #[test]
    fn a_column_that_does_not_compress_is_stored_as_it_is() {
        // xorshift: no two values alike, nothing for zstd to find.
        let mut x = 0x9E37_79B9u32;
        let values: Vec<u32> = (0..BLOCK + 100)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x
            })
            .collect();
        let blocks = blocks_of(&values, false).unwrap();
        assert!(
            blocks
                .iter()
                .all(|(bytes, at)| bytes.len() == at.stored as usize)
        );
        assert_eq!(blocks[0].0.len(), BLOCK * 4, "stored as it is");
        let dir = tempfile::tempdir().unwrap();
        let column = stored(&values, false, dir.path());
        assert_eq!(column[BLOCK + 99], values[BLOCK + 99]);
        assert_eq!(*column, values);
    }
}
