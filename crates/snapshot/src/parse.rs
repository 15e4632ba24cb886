//! Streaming reader for the `.heapsnapshot` JSON, with bounded memory.
//!
//! A snapshot is one JSON object whose arrays (`nodes`, `edges`, `strings`) hold nearly all of
//! its bytes. Reading it into a `serde_json::Value` would cost many times the file size, so the
//! top-level object is walked key by key and each array is fed straight into compact columns:
//!
//! - `nodes` (7 numbers a node in today's V8) becomes one column per field the comparison uses;
//!   `trace_node_id` is dropped on the way.
//! - `edges` keeps 4 bytes an edge: the target node and whether the edge is weak or hidden. Names
//!   are kept only for `property` edges of `object` nodes, which is all the classification reads.
//! - `strings` comes last in V8's output, so by then it is known which strings are needed (class
//!   names, property names, and a sample of names for the comparability check); the rest are
//!   skipped without being allocated. That matters: string contents are often most of the file.
//! - `trace_function_infos`, `trace_tree`, `samples` and anything unknown are skipped with
//!   [`IgnoredAny`].
//!
//! The flat integer arrays go through the fast scanner of [`Input`]; the `snapshot` header,
//! `strings` (through [`DeserializeSeed`]s that decide per element whether to keep it) and
//! unknown values through `serde_json`.
//!
//! Like DevTools' own loader, this expects V8's key order: `snapshot` before `nodes`, `nodes`
//! before `edges`, and both before `strings`. Leading whitespace is fine (heapgate-proxy sends
//! keep-alive spaces before the body).

use std::{
    fmt,
    io::{self, BufRead},
};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};

use crate::column::Column;
use crate::fxhash::FastMap;
use crate::input::{Input, InputError};
use crate::layout::{EdgeKind, Header, Layout, NodeKind};
use crate::model::Location;

/// Edge target ordinals use the low 30 bits of a packed edge.
pub(crate) const EDGE_TARGET_MASK: u32 = (1 << 30) - 1;
/// Packed edge flag: a weak edge.
pub(crate) const EDGE_WEAK: u32 = 1 << 30;
/// Packed edge flag: a hidden or invisible edge.
pub(crate) const EDGE_HIDDEN: u32 = 2 << 30;

/// A snapshot's graph, in the columns the comparison needs.
pub(crate) struct Heap {
    pub(crate) layout: Layout,
    /// Node type, an index into `layout.nodes.type_names`.
    pub(crate) node_type: Column<u8>,
    /// Node name, an index into `strings`.
    pub(crate) node_name: Column<u32>,
    pub(crate) node_id: Column<u32>,
    /// Self size in bytes (saturated at `u32::MAX`, as DevTools keeps 32 bits too).
    pub(crate) node_size: Column<u32>,
    /// `detachedness` (0 unknown, 1 attached, 2 detached); empty if the snapshot has no such field.
    pub(crate) node_detachedness: Column<u8>,
    /// Edge ordinal of each node's first edge; one more entry than nodes.
    pub(crate) first_edge: Column<u32>,
    /// Target ordinal | [`EDGE_WEAK`] or [`EDGE_HIDDEN`].
    pub(crate) edges: Column<u32>,
    /// Each edge's type, an index into `layout.edges.type_names`.
    pub(crate) edge_type: Column<u8>,
    /// Each edge's `name_or_index`: a string index for named types, else an index.
    pub(crate) edge_name: Column<u32>,
    /// Source locations of `object` nodes: `(ordinal, location)`, sorted by ordinal.
    pub(crate) locations: Vec<(u32, Location)>,
    /// Source locations of `closure` nodes, sorted by ordinal.
    pub(crate) closure_locations: Vec<(u32, Location)>,
    /// The strings that were needed, by index.
    pub(crate) strings: StringTable,
    /// Hashes of the sampled nodes' names, by string index.
    pub(crate) name_hashes: FastMap<u32, u64>,
    /// Which odd ids are sampled for the comparability check.
    pub(crate) sample: crate::identity::SampleRate,
}

impl Heap {
    pub(crate) fn node_count(&self) -> usize {
        self.node_id.len()
    }

    pub(crate) fn kind(&self, ordinal: usize) -> NodeKind {
        self.layout.nodes.kinds[usize::from(self.node_type[ordinal])]
    }

    /// The node's name as written in the snapshot, if it was kept.
    pub(crate) fn raw_name(&self, ordinal: usize) -> &str {
        self.strings.get(self.node_name[ordinal])
    }

    /// The packed edges of a node.
    pub(crate) fn edges_of(&self, ordinal: usize) -> &[u32] {
        let start = self.first_edge[ordinal] as usize;
        let end = self.first_edge[ordinal + 1] as usize;
        &self.edges[start..end]
    }

    /// The name string indexes of a node's `property` edges, in edge order (what plain
    /// objects are classified by).
    pub(crate) fn property_names(&self, ordinal: usize) -> impl Iterator<Item = u32> + Clone + '_ {
        let range = self.first_edge[ordinal] as usize..self.first_edge[ordinal + 1] as usize;
        let kinds = &self.layout.edges.kinds;
        // By index, not by slice: from an index, a range across two blocks reads those two.
        range
            .filter(move |&e| kinds[usize::from(self.edge_type[e])] == EdgeKind::Property)
            .map(|e| self.edge_name[e])
    }

    pub(crate) fn string(&self, index: u32) -> &str {
        self.strings.get(index)
    }
}

/// The kept strings in one buffer: string `i` is `text[ends[i - 1]..ends[i]]`, empty when it
/// was not kept (a map of boxed strings cost ~60 bytes a string; snapshots name millions of
/// edges `0`, `1`, … as strings).
#[derive(Default)]
pub(crate) struct StringTable {
    pub(crate) text: String,
    pub(crate) ends: Vec<u32>,
}

impl StringTable {
    pub(crate) fn get(&self, index: u32) -> &str {
        let i = index as usize;
        match self.ends.get(i) {
            Some(&end) => {
                let start = if i == 0 { 0 } else { self.ends[i - 1] };
                self.text.get(start as usize..end as usize).unwrap_or("")
            }
            None => "",
        }
    }

    /// Appends string number `len()`: kept when `text` is given (and the table has room).
    fn push(&mut self, text: Option<&str>) {
        if let Some(text) = text
            && self.text.len() + text.len() <= u32::MAX as usize
        {
            self.text.push_str(text);
        }
        self.ends.push(self.text.len() as u32);
    }
}

/// Why reading failed, before the file name is attached.
pub(crate) enum ReadError {
    Io(io::Error),
    Syntax { line: usize, column: usize },
    Eof { line: usize, column: usize },
    Shape(String),
}

impl From<InputError> for ReadError {
    fn from(e: InputError) -> ReadError {
        match e {
            InputError::Io(e) => ReadError::Io(e),
            InputError::Syntax(line, column) => ReadError::Syntax { line, column },
            InputError::Eof(line, column) => ReadError::Eof { line, column },
            InputError::Shape(reason) => ReadError::Shape(reason),
        }
    }
}

/// Reads a whole snapshot from `reader`.
pub(crate) fn read<R: BufRead>(reader: R) -> Result<Heap, ReadError> {
    let mut input = Input::new(reader);
    let mut state = State::default();
    match input.skip_whitespace()? {
        None if input.consumed() == 0 => {
            return Err(ReadError::Shape("the file is empty".to_owned()));
        }
        None => return Err(input.eof().into()),
        Some(b'{') => input.bump(b'{'),
        Some(b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
            return Err(ReadError::Shape(
                "the file is JSON, but not an object as a snapshot is".to_owned(),
            ));
        }
        Some(_) => return Err(input.syntax().into()),
    }
    let mut first = true;
    loop {
        match input.skip_whitespace()? {
            Some(b'}') => {
                input.bump(b'}');
                break;
            }
            Some(b',') if !first => input.bump(b','),
            Some(b'"') if first => {}
            Some(_) => return Err(input.syntax().into()),
            None => return Err(input.eof().into()),
        }
        first = false;
        if input.skip_whitespace()? != Some(b'"') {
            return Err(match input.peek()? {
                Some(_) => input.syntax(),
                None => input.eof(),
            }
            .into());
        }
        let key = with_serde::<_, String>(&mut input)?;
        input.expect(b':')?;
        state.value(&key, &mut input)?;
    }
    match input.skip_whitespace()? {
        None => state.finish(),
        Some(_) => Err(input.syntax().into()),
    }
}

/// Deserializes one value with `serde_json`, reading from the input at its position.
fn with_serde<R: BufRead, T: de::DeserializeOwned>(input: &mut Input<R>) -> Result<T, ReadError> {
    let result = T::deserialize(&mut serde_json::Deserializer::from_reader(&mut *input));
    result.map_err(|e| input.serde_error(e, None).into())
}

/// Skips one value of any kind.
///
/// `serde_json` cannot end a number (or `true`…) without looking at the byte after it, which
/// it would take from the input and drop; so bare scalars are cut out here and checked alone.
fn skip_value<R: BufRead>(input: &mut Input<R>) -> Result<(), ReadError> {
    match input.skip_whitespace()? {
        Some(b'{' | b'[' | b'"') => with_serde::<_, IgnoredAny>(input).map(|_| ()),
        Some(_) => {
            let mut token = Vec::new();
            while let Some(b) = input.peek()? {
                if matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                    break;
                }
                token.push(b);
                input.bump(b);
            }
            match serde_json::from_slice::<IgnoredAny>(&token) {
                Ok(_) => Ok(()),
                Err(_) => Err(input.syntax().into()),
            }
        }
        None => Err(input.eof().into()),
    }
}

/// What has been read so far.
#[derive(Default)]
struct State {
    layout: Option<Layout>,
    nodes: Option<Nodes>,
    edges: Option<Edges>,
    locations: Option<(Located, Located)>,
    strings: Option<Strings>,
}

struct Nodes {
    node_type: Vec<u8>,
    node_name: Vec<u32>,
    node_id: Vec<u32>,
    node_size: Vec<u32>,
    node_detachedness: Vec<u8>,
    first_edge: Vec<u32>,
}

struct Edges {
    edges: Vec<u32>,
    edge_type: Vec<u8>,
    edge_name: Vec<u32>,
}

struct Strings {
    kept: StringTable,
    hashes: FastMap<u32, u64>,
    count: u32,
}

fn shape<T>(reason: impl Into<String>) -> Result<T, ReadError> {
    Err(ReadError::Shape(reason.into()))
}

impl State {
    /// Reads the value of the top-level key `key`.
    fn value<R: BufRead>(&mut self, key: &str, input: &mut Input<R>) -> Result<(), ReadError> {
        match key {
            "snapshot" => {
                if self.layout.is_some() {
                    return shape("\"snapshot\" appears twice");
                }
                let header = with_serde::<_, Header>(input)?;
                self.layout = Some(Layout::new(header).map_err(ReadError::Shape)?);
            }
            "nodes" => {
                let Some(layout) = &self.layout else {
                    return shape("\"nodes\" comes before \"snapshot\"");
                };
                if self.nodes.is_some() {
                    return shape("\"nodes\" appears twice");
                }
                self.nodes = Some(read_nodes(layout, input)?);
            }
            "edges" => {
                let (Some(layout), Some(nodes)) = (&self.layout, &self.nodes) else {
                    return shape("\"edges\" comes before \"nodes\"");
                };
                if self.edges.is_some() {
                    return shape("\"edges\" appears twice");
                }
                self.edges = Some(read_edges(layout, nodes, input)?);
            }
            "locations" => {
                let (Some(layout), Some(nodes)) = (&self.layout, &self.nodes) else {
                    return shape("\"locations\" comes before \"nodes\"");
                };
                self.locations = Some(read_locations(layout, nodes, input)?);
            }
            "strings" => {
                if self.nodes.is_none() || self.edges.is_none() {
                    return shape("\"strings\" comes before \"nodes\" and \"edges\"");
                }
                if self.strings.is_some() {
                    return shape("\"strings\" appears twice");
                }
                let needs = Needs::of(self);
                let mut failure = None;
                let seed = StringsSeed {
                    needs,
                    failure: &mut failure,
                };
                let strings = {
                    let mut de = serde_json::Deserializer::from_reader(&mut *input);
                    seed.deserialize(&mut de)
                };
                self.strings =
                    Some(strings.map_err(|e| ReadError::from(input.serde_error(e, failure)))?);
            }
            _ => skip_value(input)?,
        }
        Ok(())
    }

    fn finish(self) -> Result<Heap, ReadError> {
        let missing = |what: &str| ReadError::Shape(format!("no \"{what}\" in the file"));
        let layout = self.layout.ok_or_else(|| missing("snapshot"))?;
        let nodes = self.nodes.ok_or_else(|| missing("nodes"))?;
        let edges = self.edges.ok_or_else(|| missing("edges"))?;
        let strings = self.strings.ok_or_else(|| missing("strings"))?;
        let n = nodes.node_id.len();
        let root = layout.root_index / layout.nodes.field_count as u64;
        if layout.root_index % layout.nodes.field_count as u64 != 0 || root >= n as u64 {
            return shape(format!(
                "snapshot.root_index {} is not the start of a node",
                layout.root_index
            ));
        }
        if let Some(&bad) = nodes.node_name.iter().find(|&&s| s >= strings.count) {
            return shape(format!(
                "a node is named by string {bad}, but \"strings\" has only {} entries",
                strings.count
            ));
        }
        let is_property = |ty: u8| layout.edges.kinds[usize::from(ty)] == EdgeKind::Property;
        if let Some((_, &bad)) = edges
            .edge_type
            .iter()
            .zip(&edges.edge_name)
            .find(|&(&ty, &name)| is_property(ty) && name >= strings.count)
        {
            return shape(format!(
                "an edge is named by string {bad}, but \"strings\" has only {} entries",
                strings.count
            ));
        }
        let sample = crate::identity::SampleRate::for_node_count(n);
        let (object_locations, closure_locations) = self.locations.unwrap_or_default();
        Ok(Heap {
            layout,
            node_type: nodes.node_type.into(),
            node_name: nodes.node_name.into(),
            node_id: nodes.node_id.into(),
            node_size: nodes.node_size.into(),
            node_detachedness: nodes.node_detachedness.into(),
            first_edge: nodes.first_edge.into(),
            edges: edges.edges.into(),
            edge_type: edges.edge_type.into(),
            edge_name: edges.edge_name.into(),
            locations: object_locations,
            closure_locations,
            strings: strings.kept,
            name_hashes: strings.hashes,
            sample,
        })
    }
}

/// Collects whole records of `field_count` numbers from a flat array.
struct Records {
    row: Vec<u64>,
    at: usize,
}

impl Records {
    fn new(field_count: usize) -> Records {
        Records {
            row: vec![0; field_count],
            at: 0,
        }
    }

    /// Hands every record completed by `values` to `on_record`, keeping a partial one.
    fn feed(
        &mut self,
        mut values: &[u64],
        mut on_record: impl FnMut(&[u64]) -> Result<(), String>,
    ) -> Result<(), String> {
        let n = self.row.len();
        if self.at > 0 {
            let take = (n - self.at).min(values.len());
            self.row[self.at..self.at + take].copy_from_slice(&values[..take]);
            self.at += take;
            values = &values[take..];
            if self.at < n {
                return Ok(());
            }
            self.at = 0;
            on_record(&self.row)?;
        }
        let mut records = values.chunks_exact(n);
        for record in &mut records {
            on_record(record)?;
        }
        let rest = records.remainder();
        self.row[..rest.len()].copy_from_slice(rest);
        self.at = rest.len();
        Ok(())
    }

    fn partial(&self) -> bool {
        self.at != 0
    }
}

/// Reads `nodes` into columns.
fn read_nodes<R: BufRead>(layout: &Layout, input: &mut Input<R>) -> Result<Nodes, ReadError> {
    let l = &layout.nodes;
    let type_count = l.type_names.len() as u64;
    // Trust the announced count only for a first allocation, and only up to a bound.
    let capacity = layout.announced_nodes.min(1 << 26) as usize;
    let mut out = Nodes {
        node_type: Vec::with_capacity(capacity),
        node_name: Vec::with_capacity(capacity),
        node_id: Vec::with_capacity(capacity),
        node_size: Vec::with_capacity(capacity),
        node_detachedness: Vec::with_capacity(if l.detachedness_offset.is_some() {
            capacity
        } else {
            0
        }),
        first_edge: Vec::with_capacity(capacity + 1),
    };
    let mut records = Records::new(l.field_count);
    let mut edge_total: u64 = 0;
    input.integers("nodes", |values| {
        records.feed(values, |row| {
        let ordinal = out.node_id.len();
        if row[l.type_offset] >= type_count {
            return Err(format!(
                "node {ordinal} has type {}, but snapshot.meta.node_types lists {type_count} types",
                row[l.type_offset]
            ));
        }
        let (Ok(name), Ok(id)) = (
            u32::try_from(row[l.name_offset]),
            u32::try_from(row[l.id_offset]),
        ) else {
            return Err(format!(
                "node {ordinal} has a name index or id ({} / {}) beyond 32 bits",
                row[l.name_offset], row[l.id_offset]
            ));
        };
        let first = u32::try_from(edge_total).map_err(|_| "more than 2^32 edges".to_owned())?;
        out.node_type.push(row[l.type_offset] as u8);
        out.node_name.push(name);
        out.node_id.push(id);
        out.node_size
            .push(u32::try_from(row[l.self_size_offset]).unwrap_or(u32::MAX));
        if let Some(d) = l.detachedness_offset {
            out.node_detachedness.push((row[d] & 3) as u8);
        }
        out.first_edge.push(first);
        edge_total = edge_total.saturating_add(row[l.edge_count_offset]);
        if out.node_id.len() > EDGE_TARGET_MASK as usize {
            return Err("more than 2^30 nodes".to_owned());
        }
        Ok(())
      })
    })?;
    if records.partial() {
        return shape(format!(
            "\"nodes\" does not hold whole nodes of {} fields",
            l.field_count
        ));
    }
    if out.node_id.is_empty() {
        return shape("\"nodes\" is empty");
    }
    let Ok(total) = u32::try_from(edge_total) else {
        return shape("more than 2^32 edges");
    };
    out.first_edge.push(total);
    Ok(out)
}

/// Reads `edges`, packed, checking each against the nodes read before.
fn read_edges<R: BufRead>(
    layout: &Layout,
    nodes: &Nodes,
    input: &mut Input<R>,
) -> Result<Edges, ReadError> {
    let l = &layout.edges;
    let node_fields = layout.nodes.field_count as u64;
    let node_count = nodes.node_id.len() as u64;
    let expected = *nodes.first_edge.last().unwrap_or(&0);
    let mut out = Edges {
        // Bounded: the counts come from the file.
        edges: Vec::with_capacity((expected as usize).min(1 << 27)),
        edge_type: Vec::with_capacity((expected as usize).min(1 << 27)),
        edge_name: Vec::with_capacity((expected as usize).min(1 << 27)),
    };
    let mut records = Records::new(l.field_count);
    input.integers("edges", |values| {
        records.feed(values, |row| {
            let ordinal = out.edges.len() as u32;
            if ordinal >= expected {
                return Err(format!(
                    "\"edges\" holds more edges than the nodes' edge counts add up to ({expected})"
                ));
            }
            let Some(&kind) = usize::try_from(row[l.type_offset])
                .ok()
                .and_then(|t| l.kinds.get(t))
            else {
                return Err(format!(
                    "edge {ordinal} has type {}, not one of snapshot.meta.edge_types",
                    row[l.type_offset]
                ));
            };
            let to = row[l.to_offset];
            let Some(target) = exact_div(to, node_fields).filter(|&t| t < node_count) else {
                return Err(format!(
                    "edge {ordinal} points to {to}, which is not the start of a node"
                ));
            };
            let target = target as u32;
            out.edges.push(match kind {
                EdgeKind::Weak => target | EDGE_WEAK,
                EdgeKind::Hidden => target | EDGE_HIDDEN,
                EdgeKind::Property | EdgeKind::Other => target,
            });
            let name = u32::try_from(row[l.name_offset])
                .map_err(|_| format!("edge {ordinal} has a name index beyond 32 bits"))?;
            out.edge_type.push(row[l.type_offset] as u8);
            out.edge_name.push(name);
            Ok(())
        })
    })?;
    if records.partial() {
        return shape(format!(
            "\"edges\" does not hold whole edges of {} fields",
            l.field_count
        ));
    }
    if out.edges.len() as u64 != u64::from(expected) {
        return shape(format!(
            "\"edges\" holds {} edges, but the nodes' edge counts add up to {expected}",
            out.edges.len()
        ));
    }
    Ok(out)
}

/// Reads `locations`: those of `object` nodes (the only ones DevTools groups by), and those of
/// closures (which lead to script names).
type Located = Vec<(u32, Location)>;
fn read_locations<R: BufRead>(
    layout: &Layout,
    nodes: &Nodes,
    input: &mut Input<R>,
) -> Result<(Located, Located), ReadError> {
    let mut out = Vec::new();
    let mut closures = Vec::new();
    let Some(l) = layout.locations.as_ref() else {
        // No location_fields in meta: nothing to interpret them with.
        skip_value(input)?;
        return Ok((out, closures));
    };
    let node_fields = layout.nodes.field_count as u64;
    let mut records = Records::new(l.field_count);
    input.integers("locations", |values| {
        records.feed(values, |row| {
            let index = row[l.object_index];
            let Some(ordinal) =
                exact_div(index, node_fields).filter(|&o| o < nodes.node_id.len() as u64)
            else {
                return Err(format!(
                    "a location refers to {index}, which is not the start of a node"
                ));
            };
            let ordinal = ordinal as usize;
            let kind = layout.nodes.kinds[usize::from(nodes.node_type[ordinal])];
            if matches!(kind, NodeKind::Object | NodeKind::Closure) {
                let [script_id, line, column] = [l.script_id, l.line, l.column]
                    .map(|f| u32::try_from(row[f]).unwrap_or(u32::MAX));
                let located = (
                    ordinal as u32,
                    Location {
                        script_id,
                        line,
                        column,
                    },
                );
                if kind == NodeKind::Object {
                    out.push(located);
                } else {
                    closures.push(located);
                }
            }
            Ok(())
        })
    })?;
    Ok((last_per_node(out), last_per_node(closures)))
}

/// Sorted by ordinal, keeping the last location given for a node as DevTools does.
fn last_per_node(mut out: Located) -> Located {
    // Stable, so a node's locations keep their order; compacted in place (no second copy).
    out.sort_by_key(|&(ordinal, _)| ordinal);
    let mut kept = 0;
    for read in 0..out.len() {
        if kept > 0 && out[kept - 1].0 == out[read].0 {
            out[kept - 1] = out[read];
        } else {
            out[kept] = out[read];
            kept += 1;
        }
    }
    out.truncate(kept);
    out
}

/// `index / by` when `by` divides it; constant divisors for the usual field counts.
#[inline]
fn exact_div(index: u64, by: u64) -> Option<u64> {
    let (quotient, rest) = match by {
        7 => (index / 7, index % 7),
        6 => (index / 6, index % 6),
        3 => (index / 3, index % 3),
        _ => (index / by, index % by),
    };
    (rest == 0).then_some(quotient)
}

/// Which strings to keep, and which to hash, as bit sets over string indexes.
struct Needs {
    keep: Vec<u64>,
    hash: Vec<u64>,
}

impl Needs {
    fn of(state: &State) -> Needs {
        let mut needs = Needs {
            keep: Vec::new(),
            hash: Vec::new(),
        };
        let (Some(layout), Some(nodes), Some(edges)) = (&state.layout, &state.nodes, &state.edges)
        else {
            return needs;
        };
        let sample = crate::identity::SampleRate::for_node_count(nodes.node_id.len());
        // Every node's name but those that are contents (strings, numbers): the retainer rules
        // and the Retainers pane's order read them, and they are few.
        let content: Vec<bool> = layout
            .nodes
            .type_names
            .iter()
            .map(|t| {
                matches!(
                    t.as_str(),
                    "string" | "concatenated string" | "sliced string" | "number" | "bigint"
                )
            })
            .collect();
        for (ordinal, &name) in nodes.node_name.iter().enumerate() {
            if !content[usize::from(nodes.node_type[ordinal])] {
                set(&mut needs.keep, name);
            }
            if sample.includes(nodes.node_id[ordinal]) {
                set(&mut needs.hash, name);
            }
        }
        // Names of edges that have one (property names classify plain objects) (retainer paths, WeakMap rules), weak ones aside.
        let edge_types = &layout.edges.type_names;
        let named: Vec<bool> = edge_types
            .iter()
            .map(|t| !matches!(t.as_str(), "element" | "hidden" | "weak" | "invisible"))
            .collect();
        for (&ty, &name) in edges.edge_type.iter().zip(&edges.edge_name) {
            if named.get(usize::from(ty)).copied().unwrap_or(false) {
                set(&mut needs.keep, name);
            }
        }
        // Script names: a located closure's code nodes (its SharedFunctionInfo) point to code
        // nodes named by the script; keep those names, for one closure per script.
        if let Some((_, closures)) = &state.locations {
            let is_code = |o: u32| {
                layout.nodes.kinds[usize::from(nodes.node_type[o as usize])] == NodeKind::Code
            };
            let targets = |o: u32| {
                let range = nodes.first_edge[o as usize] as usize
                    ..nodes.first_edge[o as usize + 1] as usize;
                edges.edges[range].iter().map(|&e| e & EDGE_TARGET_MASK)
            };
            let mut seen = crate::fxhash::FastSet::default();
            for &(closure, location) in closures {
                if !seen.insert(location.script_id) {
                    continue;
                }
                for shared in targets(closure).filter(|&t| is_code(t)) {
                    for script in targets(shared).filter(|&t| is_code(t)) {
                        set(&mut needs.keep, nodes.node_name[script as usize]);
                    }
                }
            }
        }
        needs
    }
}

fn set(bits: &mut Vec<u64>, index: u32) {
    let word = (index / 64) as usize;
    if word >= bits.len() {
        bits.resize(word + 1, 0);
    }
    bits[word] |= 1 << (index % 64);
}

fn get(bits: &[u64], index: u32) -> bool {
    bits.get((index / 64) as usize)
        .is_some_and(|w| w & (1 << (index % 64)) != 0)
}

/// Reads `strings`, keeping or hashing only the needed ones.
struct StringsSeed<'a> {
    needs: Needs,
    /// Set when the strings themselves are wrong, so the reason survives serde's error type.
    failure: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for StringsSeed<'_> {
    type Value = Strings;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Strings, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for StringsSeed<'_> {
    type Value = Strings;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"strings\" as an array of strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
        let mut out = Strings {
            kept: StringTable::default(),
            hashes: FastMap::default(),
            count: 0,
        };
        loop {
            let index = out.count;
            let slot = StringSlot {
                keep: get(&self.needs.keep, index),
                hash: get(&self.needs.hash, index),
            };
            let Some((kept, hash)) = seq.next_element_seed(slot)? else {
                break;
            };
            out.kept.push(kept.as_deref());
            if let Some(h) = hash {
                out.hashes.insert(index, h);
            }
            out.count = match index.checked_add(1) {
                Some(c) => c,
                None => {
                    let reason = "more than 2^32 strings";
                    *self.failure = Some(reason.to_owned());
                    return Err(de::Error::custom(reason));
                }
            };
        }
        Ok(out)
    }
}

/// One element of `strings`: skipped, or read as bytes (so lone surrogates, which V8 writes as
/// `\uD8xx` escapes and `String` would reject, still load) and kept and/or hashed.
struct StringSlot {
    keep: bool,
    hash: bool,
}

impl<'de> DeserializeSeed<'de> for StringSlot {
    type Value = (Option<Box<str>>, Option<u64>);
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        if self.keep || self.hash {
            deserializer.deserialize_bytes(self)
        } else {
            deserializer.deserialize_ignored_any(IgnoredAny)?;
            Ok((None, None))
        }
    }
}

impl Visitor<'_> for StringSlot {
    type Value = (Option<Box<str>>, Option<u64>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Self::Value, E> {
        let kept = self
            .keep
            .then(|| String::from_utf8_lossy(bytes).into_owned().into_boxed_str());
        let hash = self.hash.then(|| crate::identity::hash_bytes(bytes));
        Ok((kept, hash))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        self.visit_bytes(s.as_bytes())
    }
}
