//! The sinks a walk of the graph feeds: one counts, the others write one section of the file.
//!
//! A `.heapsnapshot` lists all nodes (each with its edge count), then all edges, then the
//! locations, then the strings; the graph is walked once per section, so nothing but the current
//! node is ever held.

use std::io::{self, Write};

/// V8 11.3's node types, in `meta.node_types[0]` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeType {
    Hidden = 0,
    Array = 1,
    String = 2,
    Object = 3,
    Code = 4,
    Closure = 5,
    Number = 7,
    Native = 8,
    Synthetic = 9,
    ConsString = 10,
}

pub(crate) const NODE_TYPES: &[&str] = &[
    "hidden",
    "array",
    "string",
    "object",
    "code",
    "closure",
    "regexp",
    "number",
    "native",
    "synthetic",
    "concatenated string",
    "sliced string",
    "symbol",
    "bigint",
    "object shape",
    "wasm object",
];

/// The object-shape type (`system / Map` nodes); not in the enum to keep it small.
pub(crate) const OBJECT_SHAPE: u8 = 14;

/// V8 11.3's edge types, in `meta.edge_types[0]` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EdgeType {
    Context = 0,
    Element = 1,
    Property = 2,
    Internal = 3,
    Hidden = 4,
    Shortcut = 5,
    Weak = 6,
}

pub(crate) const EDGE_TYPES: &[&str] = &[
    "context", "element", "property", "internal", "hidden", "shortcut", "weak",
];

/// Fields per node record and per edge record, as in `meta`.
pub(crate) const NODE_FIELDS: u64 = 7;
pub(crate) const EDGE_FIELDS: u64 = 3;

/// What a walk of the graph reports, node by node: a node, then its edges, then (optionally) its
/// source location.
pub(crate) trait Sink {
    fn node(&mut self, ty: u8, name: u32, id: u64, size: u64) -> io::Result<()>;
    fn edge(&mut self, ty: EdgeType, name_or_index: u64, to: u32) -> io::Result<()>;
    fn location(&mut self, script_id: u32, line: u32, column: u32) -> io::Result<()>;
}

/// Counts nodes, edges and locations (for the header) without writing.
#[derive(Default)]
pub(crate) struct Count {
    pub(crate) nodes: u64,
    pub(crate) edges: u64,
    pub(crate) locations: u64,
    /// Largest edge target seen, checked against the node count afterwards.
    pub(crate) max_target: u32,
}

impl Sink for Count {
    fn node(&mut self, _: u8, _: u32, _: u64, _: u64) -> io::Result<()> {
        self.nodes += 1;
        Ok(())
    }
    fn edge(&mut self, _: EdgeType, _: u64, to: u32) -> io::Result<()> {
        if self.nodes == 0 {
            return Err(io::Error::other("an edge before any node"));
        }
        self.edges += 1;
        self.max_target = self.max_target.max(to);
        Ok(())
    }
    fn location(&mut self, _: u32, _: u32, _: u32) -> io::Result<()> {
        self.locations += 1;
        Ok(())
    }
}

/// Writes integers the way V8 does, with a separator before every one but the first.
pub(crate) struct Numbers<W> {
    pub(crate) out: W,
    buf: itoa::Buffer,
    first: bool,
}

impl<W: Write> Numbers<W> {
    pub(crate) fn new(out: W) -> Numbers<W> {
        Numbers {
            out,
            buf: itoa::Buffer::new(),
            first: true,
        }
    }

    /// One record: V8 starts each record on a new line (`\n,` between records).
    fn record(&mut self, values: &[u64]) -> io::Result<()> {
        if self.first {
            self.first = false;
        } else {
            self.out.write_all(b"\n,")?;
        }
        for (i, &v) in values.iter().enumerate() {
            if i > 0 {
                self.out.write_all(b",")?;
            }
            self.out.write_all(self.buf.format(v).as_bytes())?;
        }
        Ok(())
    }
}

/// Writes the `nodes` array; a node's record waits until its edges have been counted.
pub(crate) struct Nodes<W> {
    pub(crate) numbers: Numbers<W>,
    pending: Option<[u64; 7]>,
}

impl<W: Write> Nodes<W> {
    pub(crate) fn new(out: W) -> Nodes<W> {
        Nodes {
            numbers: Numbers::new(out),
            pending: None,
        }
    }

    pub(crate) fn finish(&mut self) -> io::Result<()> {
        if let Some(record) = self.pending.take() {
            self.numbers.record(&record)?;
        }
        Ok(())
    }
}

impl<W: Write> Sink for Nodes<W> {
    fn node(&mut self, ty: u8, name: u32, id: u64, size: u64) -> io::Result<()> {
        self.finish()?;
        // type, name, id, self_size, edge_count, trace_node_id, detachedness
        self.pending = Some([u64::from(ty), u64::from(name), id, size, 0, 0, 0]);
        Ok(())
    }
    fn edge(&mut self, _: EdgeType, _: u64, _: u32) -> io::Result<()> {
        if let Some(record) = &mut self.pending {
            record[4] += 1;
        }
        Ok(())
    }
    fn location(&mut self, _: u32, _: u32, _: u32) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the `edges` array (`to_node` is the target's index in `nodes`).
pub(crate) struct Edges<W> {
    pub(crate) numbers: Numbers<W>,
}

impl<W: Write> Sink for Edges<W> {
    fn node(&mut self, _: u8, _: u32, _: u64, _: u64) -> io::Result<()> {
        Ok(())
    }
    fn edge(&mut self, ty: EdgeType, name_or_index: u64, to: u32) -> io::Result<()> {
        self.numbers
            .record(&[ty as u64, name_or_index, u64::from(to) * NODE_FIELDS])
    }
    fn location(&mut self, _: u32, _: u32, _: u32) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the `locations` array (`object_index` is the node's index in `nodes`).
pub(crate) struct Locations<W> {
    pub(crate) numbers: Numbers<W>,
    /// Ordinal of the node being walked.
    current: Option<u64>,
}

impl<W: Write> Locations<W> {
    pub(crate) fn new(out: W) -> Locations<W> {
        Locations {
            numbers: Numbers::new(out),
            current: None,
        }
    }
}

impl<W: Write> Sink for Locations<W> {
    fn node(&mut self, _: u8, _: u32, _: u64, _: u64) -> io::Result<()> {
        self.current = Some(self.current.map_or(0, |c| c + 1));
        Ok(())
    }
    fn edge(&mut self, _: EdgeType, _: u64, _: u32) -> io::Result<()> {
        Ok(())
    }
    fn location(&mut self, script_id: u32, line: u32, column: u32) -> io::Result<()> {
        let ordinal = self.current.unwrap_or(0);
        self.numbers.record(&[
            ordinal * NODE_FIELDS,
            u64::from(script_id),
            u64::from(line),
            u64::from(column),
        ])
    }
}

/// An `io::Write` that only counts bytes (to size a file before writing it).
#[derive(Default)]
pub(crate) struct ByteCount(pub(crate) u64);

impl Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
