//! Plain data shared by the public API: locations, interface definitions, snapshot facts.

use std::fmt;

use serde::Serialize;

/// Where a constructor is defined, as V8 records it in `locations`. DevTools keeps classes that
/// share a name but come from different places apart (two `Request` classes in two modules are
/// two rows), so the location is part of a class's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Location {
    /// V8's script id: stable within a process, meaningless across processes.
    pub script_id: u32,
    /// 0-based line.
    pub line: u32,
    /// 0-based column.
    pub column: u32,
}

impl fmt::Display for Location {
    /// `script 12, line 4, column 10`, 1-based as editors count.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "script {}, {}:{}",
            self.script_id,
            u64::from(self.line) + 1,
            u64::from(self.column) + 1
        )
    }
}

/// A named shape for plain objects (`{}` literals), inferred the way DevTools does: the property
/// lists that at least 2 (and at least 1 in 1000) plain objects start with, most common first.
/// A plain object is classed under the definition with the most properties that it has all of
/// (ties go to the more common one); otherwise it stays `Object`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InterfaceDefinition {
    /// The class name shown, e.g. `{method, url, headers}`.
    pub name: String,
    /// Raw property names, in the order the defining objects hold them.
    pub properties: Vec<String>,
}

/// Facts about one snapshot file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    /// Nodes in the graph.
    pub node_count: usize,
    /// Edges in the graph.
    pub edge_count: usize,
    /// Nodes that count in the comparison (self size above zero after folding).
    pub counted_nodes: usize,
    /// Their total self size in bytes.
    pub total_self_size: u64,
    /// Nodes with odd ids: V8 heap objects (even ids are embedder objects, renumbered each
    /// snapshot).
    pub js_objects: usize,
    /// Highest odd id. V8 hands ids out in increasing order within a process, so a later
    /// snapshot of the same process never has a lower one.
    pub max_js_id: u32,
    /// Whether the sizes of arrays and internal objects owned by exactly one object were folded
    /// into that owner, as DevTools does for snapshots with user roots.
    pub sizes_folded: bool,
    /// Plain-object shapes this snapshot names, for use as NEW in a comparison.
    pub interface_count: usize,
}

/// One class of a single snapshot: what the Summary view of DevTools lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClassSummary {
    /// Class name, e.g. `LeakedRequestContext`, `(string)`, `{id, url}`.
    pub name: String,
    /// Constructor location, when V8 recorded one.
    pub location: Option<Location>,
    /// Objects of the class.
    pub count: u64,
    /// Their self sizes in bytes.
    pub self_size: u64,
    /// DevTools' "Retained Size": the retained sizes of the class's objects that no other
    /// object of the class dominates, in bytes.
    pub retained_size: u64,
    /// The script of `location`, when the snapshot names it.
    pub script: Option<String>,
}

/// One step of a retainer path, from the root side towards the object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct PathStep {
    /// The node's class, as in the Summary view (`Map`, `system / Context`, `Function`…).
    pub node: String,
    /// The name of the edge that holds this node, from the previous step (empty on the first
    /// step). Element indexes are collapsed to `[]` so that entries of one collection group.
    pub edge: String,
    /// The type of that edge: `property`, `element`, `context`, `internal`, `shortcut`,
    /// `hidden`… (empty on the first step).
    pub edge_type: String,
    /// A function's name, for closures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where the function or constructor is defined: `file:line:column` (1-based), or
    /// `script N:line:column` when the snapshot does not name the script.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Set when the edge into this step is a collapsed key (see [`crate::MIN_KEYS`]): how many distinct
    /// keys the group's objects are held by here. `edge` then reads `<N keys>`; the keys
    /// themselves are data and are never shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<u64>,
}
