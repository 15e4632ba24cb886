//! The self-description at the top of every snapshot (`snapshot.meta`), turned into offsets.
//!
//! V8 lists the fields of each node and edge and the names of the node and edge types instead of
//! fixing them, and has changed them over the years (`detachedness` arrived in 2021, `object
//! shape` and `wasm object` later). So nothing here hard-codes a position: like DevTools, every
//! offset is looked up by field name, and node and edge types are recognised by their names.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `snapshot` as written by V8; only what the comparison needs.
#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    meta: Meta,
    #[serde(default)]
    node_count: Option<u64>,
    #[serde(default)]
    root_index: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Meta {
    node_fields: Vec<String>,
    node_types: Vec<Value>,
    edge_fields: Vec<String>,
    edge_types: Vec<Value>,
    #[serde(default)]
    location_fields: Vec<String>,
}

/// What a node type means to the classification rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum NodeKind {
    Hidden,
    Array,
    Object,
    Native,
    Code,
    Closure,
    RegExp,
    Synthetic,
    /// Any other type: its class is the type name in parentheses.
    Other,
}

/// What an edge type means to the graph passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum EdgeKind {
    /// Retains nothing; ignored when sizes are folded into owners.
    Weak,
    /// `hidden` or `invisible`: does not carry a DOM node's attached/detached state.
    Hidden,
    /// A named JavaScript property: what plain objects are categorised by.
    Property,
    Other,
}

/// Where a node's fields sit in the flat `nodes` array.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct NodeLayout {
    pub(crate) field_count: usize,
    pub(crate) type_offset: usize,
    pub(crate) name_offset: usize,
    pub(crate) id_offset: usize,
    pub(crate) self_size_offset: usize,
    pub(crate) edge_count_offset: usize,
    pub(crate) detachedness_offset: Option<usize>,
    /// Type names, indexed by the `type` field.
    pub(crate) type_names: Vec<String>,
    pub(crate) kinds: Vec<NodeKind>,
}

/// Where an edge's fields sit in the flat `edges` array.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct EdgeLayout {
    pub(crate) field_count: usize,
    pub(crate) type_offset: usize,
    pub(crate) name_offset: usize,
    pub(crate) to_offset: usize,
    /// Indexed by the `type` field; one more entry than V8 lists, for DevTools' implied
    /// `invisible` type.
    pub(crate) kinds: Vec<EdgeKind>,
    /// The type names, with `invisible` appended as DevTools does.
    pub(crate) type_names: Vec<String>,
}

/// Where a location record's fields sit in the flat `locations` array.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LocationLayout {
    pub(crate) field_count: usize,
    pub(crate) object_index: usize,
    pub(crate) script_id: usize,
    pub(crate) line: usize,
    pub(crate) column: usize,
}

/// Everything the parser and the passes need to know from `snapshot`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Layout {
    pub(crate) nodes: NodeLayout,
    pub(crate) edges: EdgeLayout,
    pub(crate) locations: Option<LocationLayout>,
    /// Index (in `nodes`, divided by the field count is the ordinal) of the root node.
    pub(crate) root_index: u64,
    /// `node_count` as announced, used only to size buffers (never trusted beyond that).
    pub(crate) announced_nodes: u64,
}

impl Layout {
    /// Offsets and type tables from `snapshot`, or why it is not a heap snapshot header.
    pub(crate) fn new(header: Header) -> Result<Layout, String> {
        let meta = header.meta;
        let node_field = |name: &str| field(&meta.node_fields, name, "node_fields");
        let type_offset = node_field("type")?;
        let nodes = NodeLayout {
            field_count: meta.node_fields.len(),
            type_offset,
            name_offset: node_field("name")?,
            id_offset: node_field("id")?,
            self_size_offset: node_field("self_size")?,
            edge_count_offset: node_field("edge_count")?,
            detachedness_offset: meta.node_fields.iter().position(|f| f == "detachedness"),
            type_names: type_names(&meta.node_types, type_offset, "node_types")?,
            kinds: Vec::new(),
        };
        if nodes.type_names.len() > usize::from(u8::MAX) {
            return Err("meta.node_types lists more than 255 node types".to_owned());
        }
        let kinds = nodes.type_names.iter().map(|t| node_kind(t)).collect();
        let nodes = NodeLayout { kinds, ..nodes };

        let edge_field = |name: &str| field(&meta.edge_fields, name, "edge_fields");
        let edge_type_offset = edge_field("type")?;
        let mut edge_type_names = type_names(&meta.edge_types, edge_type_offset, "edge_types")?;
        // DevTools appends an `invisible` type after V8's list; accept it as V8 could emit it.
        edge_type_names.push("invisible".to_owned());
        if edge_type_names.len() > usize::from(u8::MAX) {
            return Err("meta.edge_types lists more than 254 edge types".to_owned());
        }
        let edge_kinds: Vec<EdgeKind> = edge_type_names.iter().map(|t| edge_kind(t)).collect();
        let edges = EdgeLayout {
            field_count: meta.edge_fields.len(),
            type_offset: edge_type_offset,
            name_offset: edge_field("name_or_index")?,
            to_offset: edge_field("to_node")?,
            kinds: edge_kinds,
            type_names: edge_type_names,
        };

        let location_field = |name: &str| meta.location_fields.iter().position(|f| f == name);
        let locations = match (
            location_field("object_index"),
            location_field("script_id"),
            location_field("line"),
            location_field("column"),
        ) {
            (Some(object_index), Some(script_id), Some(line), Some(column)) => {
                Some(LocationLayout {
                    field_count: meta.location_fields.len(),
                    object_index,
                    script_id,
                    line,
                    column,
                })
            }
            _ => None,
        };

        Ok(Layout {
            nodes,
            edges,
            locations,
            root_index: header.root_index.unwrap_or(0),
            announced_nodes: header.node_count.unwrap_or(0),
        })
    }
}

fn field(fields: &[String], name: &str, list: &str) -> Result<usize, String> {
    fields
        .iter()
        .position(|f| f == name)
        .ok_or_else(|| format!("snapshot.meta.{list} has no \"{name}\" field"))
}

/// The type names at `types[offset]` (an array of strings, per V8's format).
fn type_names(types: &[Value], offset: usize, list: &str) -> Result<Vec<String>, String> {
    let names = types
        .get(offset)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("snapshot.meta.{list}[{offset}] is not a list of type names"))?;
    names
        .iter()
        .map(|n| {
            n.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("snapshot.meta.{list}[{offset}] holds a non-string"))
        })
        .collect()
}

fn node_kind(name: &str) -> NodeKind {
    match name {
        "hidden" => NodeKind::Hidden,
        "array" => NodeKind::Array,
        "object" => NodeKind::Object,
        "native" => NodeKind::Native,
        "code" => NodeKind::Code,
        "closure" => NodeKind::Closure,
        "regexp" => NodeKind::RegExp,
        "synthetic" => NodeKind::Synthetic,
        _ => NodeKind::Other,
    }
}

fn edge_kind(name: &str) -> EdgeKind {
    match name {
        "weak" => EdgeKind::Weak,
        "hidden" | "invisible" => EdgeKind::Hidden,
        "property" => EdgeKind::Property,
        _ => EdgeKind::Other,
    }
}
