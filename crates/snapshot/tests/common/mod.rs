//! Builds small heap snapshots as JSON text, in V8's layout, so each test states its graph by
//! name instead of by offsets into flat arrays.

#![allow(dead_code, unreachable_pub)]

use heapgate_snapshot::{Summary, load};

/// V8's node types, in V8's order (Node.js 20).
pub const NODE_TYPES: [&str; 15] = [
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
];

/// V8's edge types, in V8's order.
pub const EDGE_TYPES: [&str; 7] = [
    "context", "element", "property", "internal", "hidden", "shortcut", "weak",
];

struct Node {
    ty: &'static str,
    name: String,
    id: u32,
    size: u64,
    detachedness: u8,
    edges: Vec<(&'static str, String, usize)>,
}

/// A snapshot under construction. Node 0 is the synthetic root (id 1).
pub struct Snap {
    nodes: Vec<Node>,
    locations: Vec<(usize, u32, u32, u32)>,
}

impl Default for Snap {
    fn default() -> Self {
        Self::new()
    }
}

impl Snap {
    /// Just the root.
    pub fn new() -> Snap {
        let mut s = Snap {
            nodes: Vec::new(),
            locations: Vec::new(),
        };
        s.node("synthetic", "", 1, 0);
        s
    }

    /// Changes the root's id (V8 gives it 1).
    pub fn root_id(&mut self, id: u32) -> &mut Snap {
        self.nodes[0].id = id;
        self
    }

    /// Adds a node; returns its ordinal.
    pub fn node(&mut self, ty: &'static str, name: &str, id: u32, size: u64) -> usize {
        assert!(NODE_TYPES.contains(&ty), "unknown node type {ty}");
        self.nodes.push(Node {
            ty,
            name: name.to_owned(),
            id,
            size,
            detachedness: 0,
            edges: Vec::new(),
        });
        self.nodes.len() - 1
    }

    /// Adds an edge. `name` is a property name, or a number for element and hidden edges.
    pub fn edge(&mut self, from: usize, ty: &'static str, name: &str, to: usize) -> &mut Snap {
        assert!(EDGE_TYPES.contains(&ty), "unknown edge type {ty}");
        self.nodes[from].edges.push((ty, name.to_owned(), to));
        self
    }

    /// Sets a node's `detachedness` (1 attached, 2 detached).
    pub fn detachedness(&mut self, node: usize, state: u8) -> &mut Snap {
        self.nodes[node].detachedness = state;
        self
    }

    /// Records a constructor location for a node.
    pub fn location(&mut self, node: usize, script: u32, line: u32, column: u32) -> &mut Snap {
        self.locations.push((node, script, line, column));
        self
    }

    /// Gives the root a shortcut edge to a `global` object, which makes DevTools fold the sizes
    /// of singly-owned arrays and hidden nodes into their owners. Returns the global.
    pub fn user_root(&mut self, id: u32) -> usize {
        let global = self.node("object", "global", id, 24);
        self.edge(0, "shortcut", "global", global);
        global
    }

    /// The snapshot as V8 would write it (modulo whitespace).
    pub fn json(&self) -> String {
        let mut strings: Vec<String> = Vec::new();
        let mut index = |s: &str| -> usize {
            match strings.iter().position(|x| x == s) {
                Some(i) => i,
                None => {
                    strings.push(s.to_owned());
                    strings.len() - 1
                }
            }
        };
        let type_of = |t: &str| NODE_TYPES.iter().position(|x| *x == t).unwrap();
        let edge_type_of = |t: &str| EDGE_TYPES.iter().position(|x| *x == t).unwrap();
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        for n in &self.nodes {
            nodes.extend([
                type_of(n.ty) as u64,
                index(&n.name) as u64,
                u64::from(n.id),
                n.size,
                n.edges.len() as u64,
                0,
                u64::from(n.detachedness),
            ]);
            for (ty, name, to) in &n.edges {
                let name = if *ty == "element" || *ty == "hidden" {
                    name.parse::<u64>().unwrap_or(0)
                } else {
                    index(name) as u64
                };
                edges.extend([edge_type_of(ty) as u64, name, (*to as u64) * 7]);
            }
        }
        let locations: Vec<u64> = self
            .locations
            .iter()
            .flat_map(|&(n, s, l, c)| [(n as u64) * 7, u64::from(s), u64::from(l), u64::from(c)])
            .collect();
        let meta = serde_json::json!({
            "node_fields": ["type","name","id","self_size","edge_count","trace_node_id","detachedness"],
            "node_types": [NODE_TYPES, "string","number","number","number","number","number"],
            "edge_fields": ["type","name_or_index","to_node"],
            "edge_types": [EDGE_TYPES, "string_or_number", "node"],
            "trace_function_info_fields": ["function_id","name","script_name","script_id","line","column"],
            "trace_node_fields": ["id","function_info_index","count","size","children"],
            "sample_fields": ["timestamp_us","last_assigned_id"],
            "location_fields": ["object_index","script_id","line","column"],
        });
        let doc = serde_json::json!({
            "snapshot": {
                "meta": meta,
                "node_count": self.nodes.len(),
                "edge_count": edges.len() / 3,
                "trace_function_count": 0,
            },
            "nodes": nodes,
            "edges": edges,
            "trace_function_infos": [],
            "trace_tree": [],
            "samples": [],
            "locations": locations,
            "strings": strings,
        });
        // serde_json sorts keys alphabetically without `preserve_order`; V8's order matters
        // ("snapshot" first, "strings" after "nodes" and "edges"), so write the object by hand.
        let keys = [
            "snapshot",
            "nodes",
            "edges",
            "trace_function_infos",
            "trace_tree",
            "samples",
            "locations",
            "strings",
        ];
        let body: Vec<String> = keys.iter().map(|k| format!("\"{k}\":{}", doc[k])).collect();
        format!("{{{}}}", body.join(",\n"))
    }

    /// Summarised straight from memory.
    pub fn summary(&self) -> Summary {
        Summary::from_reader(self.json().as_bytes(), "test.heapsnapshot").unwrap()
    }
}

/// Loads a file from `tests/data`.
pub fn data(name: &str) -> Summary {
    load(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}
