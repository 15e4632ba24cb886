//! One snapshot with its graph still at hand: what "who holds it" needs beyond a [`Summary`].
//!
//! A [`Snapshot`] keeps the node columns, the edges, the retainers and the dominator tree (in
//! memory, or in an index file read block by block: see `column`), so it costs a few times more
//! than a summary; the comparison commands hold at most one at a time
//! and turn it into a [`Summary`] (which keeps 8 bytes per counted object) when done.

use std::collections::HashMap;

use serde::Serialize;

use crate::classify;
use crate::column::Column;
use crate::dominators::{self, BASE_UNREACHABLE_DISTANCE, EdgeTypes, Graph};
use crate::fxhash::{FastMap, FastSet};
use crate::graph;
use crate::holder::{self, Holder};
use crate::layout::NodeKind;
use crate::model::{Location, PathStep};
use crate::parse::Heap;
use crate::summary::Summary;

/// `node_group` value of nodes that are not counted (self size 0 after folding).
pub(crate) const NONE: u32 = u32::MAX;

/// How far up a retainer chain is followed (DevTools expands 20 levels; a chain is kept whole
/// up to this many steps so the holder shows).
const MAX_PATH_STEPS: usize = 64;

/// Per class key (name, location): an object count and their retained size.
pub(crate) type ClassCounts = HashMap<(String, Option<Location>), (u64, u64)>;

/// The key rule. Paths that run through the same containers and differ only in the names of
/// the edges out of one container object are one group: when the objects being grouped leave
/// one object (the same node, not just the same class) by at least this many differently named
/// `property` or `context` edges, those names are keys of a collection — a dictionary-mode
/// object, a hash table, a module's or closure's variables — and are collapsed to `<N keys>`.
/// Index edges (arrays, `Map`/`Set` backing stores) are collapsed to `[]` always. Two or fewer
/// names out of one object stay apart: they are more likely two fields (`global.a`, `global.b`)
/// than two keys.
pub const MIN_KEYS: usize = 3;

/// The `edge` of a collapsed step until the group's key count is known.
const KEY_EDGE: &str = "<keys>";

/// A collapsed edge in the numbers that group chains (no edge identity has all bits set).
const KEYS_MARK: u64 = u64::MAX;

/// Objects that share a retainer path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RetainerGroup {
    /// How many of the objects have this path.
    pub count: u64,
    /// The sum of their retained sizes, in bytes.
    pub retained_size: u64,
    /// From the root side to the object.
    pub path: Vec<PathStep>,
    /// Who holds them, in one line (see [`Holder`]); `None` when no edge on the path is named.
    pub holder: Option<Holder>,
}

/// Which objects [`Snapshot::open_for_compare`] sums up per class (see [`Snapshot::kept`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Subjects<'a> {
    /// The objects with these ids (sorted): the kept objects of three files.
    Ids(&'a [u32]),
    /// The objects whose ids are not among these (sorted): the new objects of two files.
    NotIn(&'a [u32]),
}

/// A set of node ids (given sorted) asked about once per node: a bitmap over the ids when that
/// is small (ids are dense: about twice the node count), else a binary search. Millions of
/// binary searches over millions of ids were most of a comparison's time.
pub(crate) enum IdSet<'a> {
    Bits(Vec<u64>),
    Sorted(&'a [u32]),
}

impl<'a> IdSet<'a> {
    pub(crate) fn new(ids: &'a [u32]) -> IdSet<'a> {
        let max = ids.last().map_or(0, |&m| u64::from(m));
        // At most 16 bytes per id, or 64 MiB, whichever is larger.
        let words = max / 64 + 1;
        if words * 8 > (ids.len() as u64 * 16).max(64 << 20) {
            return IdSet::Sorted(ids);
        }
        let mut bits = vec![0u64; words as usize];
        for &id in ids {
            bits[id as usize / 64] |= 1 << (id % 64);
        }
        IdSet::Bits(bits)
    }

    pub(crate) fn has(&self, id: u32) -> bool {
        match self {
            IdSet::Bits(bits) => bits
                .get(id as usize / 64)
                .is_some_and(|w| w & (1 << (id % 64)) != 0),
            IdSet::Sorted(ids) => ids.binary_search(&id).is_ok(),
        }
    }
}

/// Caches for walking many retainer chains.
#[derive(Default)]
pub(crate) struct Walk {
    /// The first retainer `(node, edge)` of nodes already walked.
    pub(crate) first: FastMap<u32, Option<(u32, u32)>>,
    /// Whether a WeakMap value is followed up through its key rather than the WeakMap's table
    /// (DevTools lists the table first; but a WeakMap keeps a value only as long as its key, so
    /// who holds the key holds the value). Off for the chains compared with DevTools.
    pub(crate) through_keys: bool,
}

/// A loaded snapshot whose graph is still in memory. See the module documentation.
pub struct Snapshot {
    pub(crate) summary: Summary,
    pub(crate) heap: Heap,
    pub(crate) graph: Graph,
    /// Group (index into the summary's groups) of every counted node, else [`NONE`].
    pub(crate) node_group: Column<u32>,
    pub(crate) detached: Column<bool>,
    /// Class key index of every group.
    pub(crate) group_key: Vec<u32>,
    /// Class keys (name, location) with this snapshot's own interface definitions.
    pub(crate) keys: Vec<(String, Option<Location>)>,
    pub(crate) root: usize,
    /// The edge types DevTools looks up by name, looked up once.
    pub(crate) types: EdgeTypes,
    /// See [`Snapshot::kept`].
    pub(crate) kept: Option<ClassCounts>,
    /// The file, for errors.
    pub(crate) origin: std::path::PathBuf,
}

impl Snapshot {
    /// Works out [`Snapshot::kept`] for `subjects` (needs the dominator tree).
    pub(crate) fn set_subjects(&mut self, subjects: Subjects<'_>) {
        self.kept = match subjects {
            Subjects::Ids(ids) => Some(self.retained_of_marked(&self.mark(ids))),
            Subjects::NotIn(ids) => {
                let mut marked = self.mark(ids);
                marked.iter_mut().for_each(|m| *m = !*m);
                Some(self.retained_of_marked(&marked))
            }
        };
    }

    /// [`Snapshot::retained_of`] the subjects given to [`Snapshot::open_for_compare`].
    pub(crate) fn kept(&self) -> Option<&ClassCounts> {
        self.kept.as_ref()
    }

    pub(crate) fn new(
        summary: Summary,
        heap: Heap,
        graph: Graph,
        node_group: Vec<u32>,
        detached: Column<bool>,
        spilled: Option<crate::spill::Spilled>,
        compare: Option<Subjects<'_>>,
    ) -> std::io::Result<Snapshot> {
        let names = summary.group_names(&summary.interfaces);
        let mut keys = Vec::new();
        let mut index: HashMap<(String, Option<Location>), u32> = HashMap::new();
        let group_key = names
            .into_iter()
            .zip(&summary.groups)
            .map(|(name, group)| {
                *index
                    .entry((name, group.location))
                    .or_insert_with_key(|key| {
                        keys.push(key.clone());
                        keys.len() as u32 - 1
                    })
            })
            .collect();
        let root = graph::root(&heap);
        let types = EdgeTypes::of(&heap);
        let mut snapshot = Snapshot {
            summary,
            heap,
            graph,
            node_group: node_group.into(),
            detached,
            group_key,
            keys,
            root,
            types,
            kept: None,
            origin: std::path::PathBuf::new(),
        };
        let retained = snapshot.class_retained(|_| true);
        snapshot.summary.retained = snapshot.keys.iter().cloned().zip(retained).collect();
        // Per group too, for when another snapshot's definitions name the plain objects.
        let groups = snapshot.summary.groups.len();
        snapshot.summary.group_retained = snapshot.retained_by(
            groups,
            |o| match snapshot.node_group[o] {
                NONE => None,
                group => Some(group),
            },
            |_| true,
        );
        if let Some(subjects) = compare {
            snapshot.set_subjects(subjects);
            // Nothing a comparison asks later needs the tree.
            snapshot.graph.dominator = Vec::new().into();
        }
        // The per-class sums need only the dominator tree: the columns paths need come back
        // after them.
        if let Some(spilled) = spilled {
            spilled.restore(&mut snapshot.heap, &mut snapshot.detached)?;
        }
        Ok(snapshot)
    }

    /// What a comparison needs of this snapshot.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Drops the graph, keeping the summary.
    pub fn into_summary(self) -> Summary {
        self.summary
    }

    pub(crate) fn key_of(&self, ordinal: usize) -> Option<u32> {
        match self.node_group[ordinal] {
            NONE => None,
            group => Some(self.group_key[group as usize]),
        }
    }

    /// `calculateClassesRetainedSize`: per class key, the retained sizes of the objects that
    /// `counts` accepts and that no other counted object of the same class dominates.
    fn class_retained(&self, counts: impl Fn(usize) -> bool) -> Vec<u64> {
        self.retained_by(self.keys.len(), |o| self.key_of(o), counts)
    }

    /// [`Snapshot::class_retained`] with classes given by `key_of` (indexes below `keys`).
    fn retained_by(
        &self,
        keys: usize,
        key_of: impl Fn(usize) -> Option<u32>,
        counts: impl Fn(usize) -> bool,
    ) -> Vec<u64> {
        let g = &self.graph;
        let (first_dominated, dominated) = g.dominated(self.root);
        let mut out = vec![0u64; keys];
        let mut seen = vec![false; keys];
        let mut list: Vec<u32> = vec![self.root as u32];
        // Stack lengths at which a class's subtree ends (`usize::MAX`: DevTools' -1 sentinel).
        let mut ends: Vec<usize> = vec![usize::MAX];
        let mut classes: Vec<u32> = Vec::new();
        while let Some(node) = list.pop() {
            let node = node as usize;
            let (from, to) = (
                first_dominated[node] as usize,
                first_dominated[node + 1] as usize,
            );
            if let Some(key) = key_of(node)
                && !seen[key as usize]
                && counts(node)
            {
                out[key as usize] += g.retained[node];
                if from != to {
                    seen[key as usize] = true;
                    ends.push(list.len());
                    classes.push(key);
                }
            }
            list.extend_from_slice(&dominated[from..to]);
            let l = list.len();
            while ends.last() == Some(&l) {
                ends.pop();
                if let Some(key) = classes.pop() {
                    seen[key as usize] = false;
                }
            }
        }
        out
    }

    /// Ordinals of the nodes whose id is in `ids` (sorted).
    fn mark(&self, ids: &[u32]) -> Vec<bool> {
        let set = IdSet::new(ids);
        self.heap.node_id.iter().map(|&id| set.has(id)).collect()
    }

    /// Per class key, how many counted objects have an id in `ids` (sorted), and their
    /// retained size counted as the Summary view counts a class's.
    pub fn retained_of(&self, ids: &[u32]) -> HashMap<(String, Option<Location>), (u64, u64)> {
        self.retained_of_marked(&self.mark(ids))
    }

    /// [`Snapshot::retained_of`] the objects marked in `marked` (by ordinal).
    fn retained_of_marked(&self, marked: &[bool]) -> ClassCounts {
        let retained = self.class_retained(|o| marked[o]);
        let mut counts = vec![0u64; self.keys.len()];
        for (o, &m) in marked.iter().enumerate() {
            if m && let Some(key) = self.key_of(o) {
                counts[key as usize] += 1;
            }
        }
        self.keys
            .iter()
            .enumerate()
            .filter(|&(k, _)| counts[k] > 0)
            .map(|(k, key)| (key.clone(), (counts[k], retained[k])))
            .collect()
    }

    /// Ids of the counted objects of class `name` at `location`, restricted to `ids` (sorted)
    /// when given; sorted.
    pub fn ids_of_class(
        &self,
        name: &str,
        location: Option<Location>,
        ids: Option<&[u32]>,
    ) -> Vec<u32> {
        let Some(key) = self
            .keys
            .iter()
            .position(|k| k.0 == name && k.1 == location)
        else {
            return Vec::new();
        };
        let set = ids.map(IdSet::new);
        let mut out: Vec<u32> = (0..self.heap.node_count())
            .filter(|&o| self.key_of(o) == Some(key as u32))
            .map(|o| self.heap.node_id[o])
            .filter(|&id| set.as_ref().is_none_or(|set| set.has(id)))
            .collect();
        out.sort_unstable();
        out
    }

    /// The ordinal of the node with id `id`.
    pub(crate) fn ordinal_of(&self, id: u32) -> Option<usize> {
        self.heap.node_id.position(id)
    }

    /// The retained size of the node with id `id`.
    pub fn retained_size_of(&self, id: u32) -> Option<u64> {
        self.ordinal_of(id).map(|o| self.graph.retained[o])
    }

    /// The distance of the node with id `id` from the roots, as DevTools shows it.
    pub fn distance_of(&self, id: u32) -> Option<i32> {
        self.ordinal_of(id).map(|o| self.graph.distance[o])
    }

    /// The retainer DevTools' Retainers pane lists first for `target`: retainers sorted by
    /// distance, then node name, then their order in DevTools' retainer list; invisible and weak
    /// edges and the root left out. Returns `(retainer, edge ordinal)`.
    pub(crate) fn first_retainer(
        &self,
        target: usize,
        through_keys: bool,
    ) -> Option<(usize, usize)> {
        let g = &self.graph;
        let types = self.types;
        let (start, end) = (
            g.first_retainer[target] as usize,
            g.first_retainer[target + 1] as usize,
        );
        // (distance, source, edge), in retainer-list order.
        let mut candidates: Vec<(i32, usize, usize)> = Vec::new();
        for r in start..end {
            let e = g.retainer_edge(r);
            let source = self.source_of(e);
            let ty = u16::from(self.heap.edge_type[e]);
            if source == self.root || ty == types.invisible || ty == types.weak {
                continue;
            }
            candidates.push((g.distance[source], source, e));
        }
        if through_keys {
            // A WeakMap table's edge to a value names the table's id; the key's edge is kept.
            let from_table = |&(_, source, e): &(i32, usize, usize)| {
                let ty = self.heap.edge_type[e];
                types.has_string_name(ty)
                    && dominators::weak_map_edge(self.heap.string(self.heap.edge_name[e]))
                        .is_some_and(|(table, _)| table == u64::from(self.heap.node_id[source]))
            };
            if candidates.iter().any(|c| !from_table(c)) {
                candidates.retain(|c| !from_table(c));
            }
        }
        let nearest = candidates.iter().map(|c| c.0).min()?;
        let mut best: Option<(String, usize, usize)> = None;
        for &(_, source, e) in candidates.iter().filter(|c| c.0 == nearest) {
            let name = self.js_name(source);
            if best
                .as_ref()
                .is_none_or(|b| classify::cmp_utf16(&name, &b.0).is_lt())
            {
                best = Some((name, source, e));
            }
        }
        best.map(|(_, source, e)| (source, e))
    }

    /// The node whose edge range holds edge `e`.
    pub(crate) fn source_of(&self, e: usize) -> usize {
        // The last offset is the edge count, above any edge: the point is the same without it.
        self.heap.first_edge.partition_point(|f| f as usize <= e) - 1
    }

    /// A node's `name()` in DevTools: plain objects are named by their properties.
    pub(crate) fn js_name(&self, ordinal: usize) -> String {
        let raw = self.heap.raw_name(ordinal);
        if self.heap.kind(ordinal) == NodeKind::Object && raw == "Object" {
            return plain_object_name(&self.heap, ordinal);
        }
        raw.to_owned()
    }

    /// The chain DevTools expands first in the Retainers pane, from the object up: each
    /// `(retainer, edge)` until a retainer at distance 1 or less (a user root such as `global`)
    /// or unreachable, or one without retainers.
    pub(crate) fn retainer_chain(&self, ordinal: usize, walk: &mut Walk) -> Vec<(usize, usize)> {
        let first = self.first_link(ordinal, walk.through_keys);
        self.chain_from(ordinal, first, walk)
    }

    /// The first link of `ordinal`'s chain (see [`Snapshot::retainer_chain`]).
    fn first_link(&self, ordinal: usize, through_keys: bool) -> Option<(u32, u32)> {
        self.first_retainer(ordinal, through_keys)
            .map(|(s, e)| (s as u32, e as u32))
    }

    /// [`Snapshot::retainer_chain`] given its first link. The links above are cached in
    /// `walk`: the objects themselves are walked once each, their holders many times.
    fn chain_from(
        &self,
        ordinal: usize,
        first: Option<(u32, u32)>,
        walk: &mut Walk,
    ) -> Vec<(usize, usize)> {
        let mut chain = Vec::new();
        let mut next = first;
        while chain.len() < MAX_PATH_STEPS {
            let Some((source, edge)) = next else { break };
            let (source, edge) = (source as usize, edge as usize);
            chain.push((source, edge));
            let d = self.graph.distance[source];
            if d <= 1 || d >= BASE_UNREACHABLE_DISTANCE || chain.iter().any(|c| c.0 == ordinal) {
                break;
            }
            next = match walk.first.get(&(source as u32)) {
                Some(&next) => next,
                None => {
                    let next = self.first_link(source, walk.through_keys);
                    walk.first.insert(source as u32, next);
                    next
                }
            };
        }
        chain
    }

    /// A number for what an edge contributes to a path step (its type and label): equal
    /// numbers, equal steps.
    fn edge_identity(&self, e: usize) -> u64 {
        let label = match label_of(&self.heap, self.types, e) {
            Label::Index => 1 << 33,
            Label::WeakMapPair => 1 << 34,
            Label::Name(i) => u64::from(i),
        };
        (u64::from(self.heap.edge_type[e]) << 40) | label
    }

    /// A number for what a node contributes to the last step of its path: its class key, type
    /// and raw name when those decide the step, else the node itself. Equal numbers, equal
    /// steps.
    fn node_identity(&self, o: usize) -> u64 {
        match self.key_of(o) {
            Some(key) if self.heap.kind(o) != NodeKind::Closure => {
                let name = u64::from(self.heap.node_name[o]);
                let ty = u64::from(self.heap.node_type[o]);
                (1 << 63) | (ty << 56) | (u64::from(key) << 32) | name
            }
            _ => o as u64,
        }
    }

    /// The class label of a node in a path.
    pub(crate) fn label(&self, ordinal: usize) -> String {
        match self.key_of(ordinal) {
            Some(key) => self.keys[key as usize].0.clone(),
            None => classify::class_name(&self.heap, ordinal, self.detached[ordinal])
                .map_or_else(|| "Object".to_owned(), std::borrow::Cow::into_owned),
        }
    }

    pub(crate) fn step(&self, ordinal: usize, edge: Option<usize>) -> PathStep {
        let types = self.types;
        let (edge, edge_type) = match edge {
            None => (String::new(), String::new()),
            Some(e) => {
                let ty = self.heap.edge_type[e];
                let type_name = self.heap.layout.edges.type_names[usize::from(ty)].clone();
                (edge_label(&self.heap, types, e), type_name)
            }
        };
        let kind = self.heap.kind(ordinal);
        let raw = self.heap.raw_name(ordinal);
        let mut node = self.label(ordinal);
        let (name, location) = match kind {
            NodeKind::Closure => {
                let located = self
                    .heap
                    .closure_locations
                    .binary_search_by_key(&(ordinal as u32), |l| l.0)
                    .ok()
                    .map(|i| self.heap.closure_locations[i].1);
                (
                    Some(self.heap.raw_name(ordinal).to_owned()).filter(|n| !n.is_empty()),
                    located.map(|l| self.summary.format_location(l)),
                )
            }
            // Roots are known by their names: `(GC roots)`, `(Stack roots)`…
            NodeKind::Synthetic if !raw.is_empty() => {
                node = raw.to_owned();
                (None, None)
            }
            NodeKind::Hidden | NodeKind::Array if !raw.is_empty() && raw != node => {
                (Some(raw.to_owned()), None)
            }
            _ => (
                None,
                self.key_of(ordinal)
                    .and_then(|k| self.keys[k as usize].1)
                    .map(|l| self.summary.format_location(l)),
            ),
        };
        PathStep {
            node,
            edge,
            edge_type,
            name,
            location,
            keys: None,
        }
    }

    /// The path of the object at `ordinal`, root side first.
    fn path(&self, ordinal: usize, walk: &mut Walk) -> Vec<PathStep> {
        let chain = self.retainer_chain(ordinal, walk);
        self.steps(ordinal, &chain)
    }

    /// The steps of `chain` (the object at `ordinal` and its retainers), root side first: step
    /// `k > 0` is held by `chain[chain.len() - k]`.
    pub(crate) fn steps(&self, ordinal: usize, chain: &[(usize, usize)]) -> Vec<PathStep> {
        let mut steps = Vec::with_capacity(chain.len() + 1);
        // Walk down: each node is held by the edge of the next chain entry below it.
        for i in (0..chain.len()).rev() {
            let held_by = if i + 1 < chain.len() {
                Some(chain[i + 1].1)
            } else {
                None
            };
            steps.push(self.step(chain[i].0, held_by));
        }
        steps.push(self.step(ordinal, chain.first().map(|c| c.1)));
        steps
    }

    /// The chain DevTools' Retainers pane opens first for node `id`, from the node up: each
    /// retainer's id with the raw name (or index) and type of its edge.
    pub(crate) fn first_retainer_ids(&self, id: u32) -> Option<Vec<(u32, String, String)>> {
        let ordinal = self.ordinal_of(id)?;
        let types = self.types;
        let chain = self.retainer_chain(ordinal, &mut Walk::default());
        Some(
            chain
                .into_iter()
                .map(|(source, e)| {
                    let ty = self.heap.edge_type[e];
                    let name = if types.has_string_name(ty) {
                        self.heap.string(self.heap.edge_name[e]).to_owned()
                    } else {
                        self.heap.edge_name[e].to_string()
                    };
                    (
                        self.heap.node_id[source],
                        name,
                        self.heap.layout.edges.type_names[usize::from(ty)].clone(),
                    )
                })
                .collect(),
        )
    }

    /// The first retainer path of the object with id `id`, root side first.
    pub fn first_retainer_path(&self, id: u32) -> Option<Vec<PathStep>> {
        let ordinal = self.ordinal_of(id)?;
        Some(self.path(ordinal, &mut Walk::default()))
    }

    /// The objects with ids in `ids` (sorted), grouped by retainer path with keys collapsed
    /// (see [`MIN_KEYS`]), largest retained size first; at most `limit` groups.
    pub fn retainer_groups(&self, ids: &[u32], limit: usize) -> Vec<RetainerGroup> {
        if limit == 0 || ids.is_empty() {
            return Vec::new();
        }
        let set = IdSet::new(ids);
        let node_id = &*self.heap.node_id;
        let objects: Vec<usize> = (0..node_id.len())
            .filter(|&o| set.has(node_id[o]))
            .collect();
        self.retainer_groups_of(&objects, limit)
    }

    /// [`Snapshot::retainer_groups`] of the objects at `objects` (ordinals, ascending).
    pub(crate) fn retainer_groups_of(&self, objects: &[usize], limit: usize) -> Vec<RetainerGroup> {
        if limit == 0 || objects.is_empty() {
            return Vec::new();
        }
        let mut walk = Walk {
            through_keys: true,
            ..Walk::default()
        };
        let types = self.types;
        let names = &self.heap.layout.edges.type_names;
        let keyable = |e: usize| {
            let ty = self.heap.edge_type[e];
            matches!(names[usize::from(ty)].as_str(), "property" | "context")
                && label_of(&self.heap, types, e) != Label::Index
        };
        // Pass 1: which containers the objects leave by many names (up to MIN_KEYS counted).
        let mut firsts = Vec::with_capacity(objects.len());
        let mut fans: FastMap<u32, ([u32; MIN_KEYS], usize)> = FastMap::default();
        for &o in objects {
            let first = self.first_link(o, walk.through_keys);
            firsts.push(first);
            for (source, e) in self.chain_from(o, first, &mut walk) {
                if !keyable(e) {
                    continue;
                }
                let (edges, n) = fans.entry(source as u32).or_insert(([0; MIN_KEYS], 0));
                if *n < MIN_KEYS && !edges[..*n].contains(&(e as u32)) {
                    edges[*n] = e as u32;
                    *n += 1;
                }
            }
        }
        let keyed = |source: usize| fans.get(&(source as u32)).is_some_and(|f| f.1 >= MIN_KEYS);
        // Pass 2: objects whose chains run through the same nodes by edges of the same label,
        // with keys collapsed, and that are of the same class have the same path: group them
        // by those numbers first and spell each such group's path once. Per group: count,
        // retained size, first object (ties are broken by node order, so the same file always
        // gives the same groups) and the distinct key edges per collapsed step.
        struct Acc {
            count: u64,
            retained: u64,
            first: usize,
            keys: FastSet<(u32, u32)>,
        }
        let mut by_chain: FastMap<Vec<u64>, Acc> = FastMap::default();
        let mut key: Vec<u64> = Vec::new();
        for (i, &o) in objects.iter().enumerate() {
            let chain = self.chain_from(o, firsts[i], &mut walk);
            key.clear();
            let mut collapsed: Vec<(u32, u32)> = Vec::new();
            for k in 1..=chain.len() {
                let (source, e) = chain[chain.len() - k];
                key.push(source as u64);
                if keyed(source) && keyable(e) {
                    key.push(KEYS_MARK);
                    collapsed.push((k as u32, e as u32));
                } else {
                    key.push(self.edge_identity(e));
                }
            }
            key.push(self.node_identity(o));
            let retained = self.graph.retained[o];
            match by_chain.get_mut(key.as_slice()) {
                Some(acc) => {
                    acc.count += 1;
                    acc.retained += retained;
                    acc.keys.extend(collapsed);
                }
                None => {
                    by_chain.insert(
                        key.clone(),
                        Acc {
                            count: 1,
                            retained,
                            first: i,
                            keys: collapsed.into_iter().collect(),
                        },
                    );
                }
            }
        }
        let mut chains: Vec<Acc> = by_chain.into_values().collect();
        chains.sort_unstable_by_key(|acc| acc.first);
        let mut groups: HashMap<Vec<PathStep>, Acc> = HashMap::new();
        for acc in chains {
            let o = objects[acc.first];
            let chain = self.chain_from(o, firsts[acc.first], &mut walk);
            let mut path = self.steps(o, &chain);
            for (k, step) in path.iter_mut().enumerate().skip(1) {
                let (source, e) = chain[chain.len() - k];
                if keyed(source) && keyable(e) {
                    step.edge = KEY_EDGE.to_owned();
                    step.keys = Some(0);
                }
            }
            match groups.get_mut(&path) {
                Some(group) => {
                    group.count += acc.count;
                    group.retained += acc.retained;
                    group.keys.extend(acc.keys);
                }
                None => {
                    groups.insert(path, acc);
                }
            }
        }
        let mut out: Vec<(usize, RetainerGroup)> = groups
            .into_iter()
            .map(|(mut path, acc)| {
                for (k, step) in path.iter_mut().enumerate() {
                    if step.keys.is_some() {
                        let n = acc.keys.iter().filter(|(at, _)| *at as usize == k).count();
                        step.keys = Some(n as u64);
                        step.edge = format!("<{n} keys>");
                    }
                }
                let group = RetainerGroup {
                    count: acc.count,
                    retained_size: acc.retained,
                    holder: holder::holder(&path),
                    path,
                };
                (acc.first, group)
            })
            .collect();
        out.sort_by(|(first_a, a), (first_b, b)| {
            b.retained_size
                .cmp(&a.retained_size)
                .then_with(|| b.count.cmp(&a.count))
                .then_with(|| a.path.len().cmp(&b.path.len()))
                .then_with(|| first_a.cmp(first_b))
        });
        out.truncate(limit);
        out.into_iter().map(|(_, group)| group).collect()
    }

    /// `(id, distance)` of every node, in node order.
    pub(crate) fn distances(&self) -> Vec<(u32, i32)> {
        self.heap
            .node_id
            .iter()
            .copied()
            .zip(self.graph.distance.iter().copied())
            .collect()
    }

    /// `(id, retained size)` of every node, in node order.
    pub(crate) fn retained_sizes(&self) -> Vec<(u32, u64)> {
        self.heap
            .node_id
            .iter()
            .copied()
            .zip(self.graph.retained.iter().copied())
            .collect()
    }

    /// Shallow sizes after folding, by node order (what retained sizes add up): counted nodes'
    /// sizes are in the summary's groups, the others are 0.
    pub(crate) fn shallow_sizes(&self) -> Vec<u32> {
        (0..self.heap.node_count())
            .map(|o| match self.node_group[o] {
                NONE => 0,
                group => {
                    let members = &self.summary.groups[group as usize].members;
                    let id = self.heap.node_id[o];
                    members
                        .binary_search_by_key(&id, |m| m.id)
                        .map_or(0, |i| members[i].size)
                }
            })
            .collect()
    }

    /// `(id, dominator's id)` of every node, in node order (the root dominates itself).
    pub(crate) fn dominators(&self) -> Vec<(u32, u32)> {
        self.graph
            .dominator
            .iter()
            .enumerate()
            .map(|(o, &d)| (self.heap.node_id[o], self.heap.node_id[d as usize]))
            .collect()
    }
}

/// `#plainObjectName`: `{a, b, …, y, z}`, properties taken from both ends while the name stays
/// within 100 UTF-16 units.
fn plain_object_name(heap: &Heap, ordinal: usize) -> String {
    let property = heap
        .layout
        .edges
        .type_names
        .iter()
        .position(|t| t == "property");
    let len = |s: &str| s.encode_utf16().count();
    let (mut from_start, mut from_end) = (
        i64::from(heap.first_edge[ordinal]),
        i64::from(heap.first_edge[ordinal + 1]) - 1,
    );
    let (mut start, mut end) = (String::from("{"), String::from("}"));
    let mut next_from_end = false;
    while from_start <= from_end {
        let e = if next_from_end { from_end } else { from_start } as usize;
        let name = heap.string(heap.edge_name[e]);
        if Some(usize::from(heap.edge_type[e])) != property || name == "__proto__" {
            if next_from_end {
                from_end -= 1;
            } else {
                from_start += 1;
            }
            continue;
        }
        let formatted = classify::format_property_name(name);
        if len(&start) > 1 && len(&start) + len(&end) + len(&formatted) > 100 {
            break;
        }
        if next_from_end {
            from_end -= 1;
            if len(&end) > 1 {
                end.insert_str(0, ", ");
            }
            end.insert_str(0, &formatted);
        } else {
            from_start += 1;
            if len(&start) > 1 {
                start.push_str(", ");
            }
            start.push_str(&formatted);
        }
        next_from_end = !next_from_end;
    }
    if from_start <= from_end {
        start.push_str(", …");
    }
    if len(&end) > 1 {
        start.push_str(", ");
    }
    start + &end
}

/// An edge's name for a path: element indexes and numbered names collapsed.
pub(crate) fn edge_label(heap: &Heap, types: EdgeTypes, e: usize) -> String {
    match label_of(heap, types, e) {
        Label::Index => "[]".to_owned(),
        Label::WeakMapPair => "part of key -> value pair in WeakMap".to_owned(),
        Label::Name(i) => heap.string(i).to_owned(),
    }
}

/// What [`edge_label`] spells, without spelling it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    /// `[]`: an index, or a name that is one.
    Index,
    WeakMapPair,
    /// The edge's name (a string index).
    Name(u32),
}

fn label_of(heap: &Heap, types: EdgeTypes, e: usize) -> Label {
    let ty = heap.edge_type[e];
    if !types.has_string_name(ty) {
        return Label::Index;
    }
    let name = heap.string(heap.edge_name[e]);
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        return Label::Index;
    }
    if dominators::weak_map_edge(name).is_some() {
        return Label::WeakMapPair;
    }
    Label::Name(heap.edge_name[e])
}
