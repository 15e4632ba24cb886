//! Retainers, the dominator tree, retained sizes and distances, as DevTools computes them
//! (devtools-frontend `HeapSnapshot.ts`: `buildRetainers`, `initEssentialEdges`,
//! `calculateDominatorsAndRetainedSizes`, `buildDominatedNodes`, `calculateDistances`).
//!
//! - **Essential edges** (the ones dominators follow): not weak, not a node's edge to itself, not
//!   a WeakMap table's edge to a value (the key's edge is kept), and — except from the root — not
//!   a `shortcut`, and not from a node outside the page-owned part of the heap (what the root's
//!   shortcuts reach, e.g. Node's `global`) into it.
//! - **Dominators**: Lengauer–Tarjan over the essential edges from the root, iterative, with
//!   DevTools' fix-ups: nodes with only non-essential retainers hang off the root and are walked
//!   from there; nodes still unreached (cycles among themselves) are attached to the root one by
//!   one. Sizes are the shallow sizes after folding (`graph::fold_owned_sizes`), as DevTools
//!   computes retained sizes after `calculateShallowSizes`.
//! - **Distances**: breadth-first from the user roots (distance 1), then from the root for what
//!   is left (from 100,000,000 on), never through weak edges, with DevTools' filter for
//!   `NativeContext.sloppy_function_map`, descriptor arrays and WeakMap values.
//!
//! Everything is flat `u32` arrays indexed by node ordinal (1-based inside Lengauer–Tarjan as
//! DevTools does), retainers in CSR form; no recursion and no allocation per node.

use std::collections::VecDeque;

use crate::column::Column;
use crate::fxhash::{FastMap, FastSet};
use crate::layout::NodeKind;
use crate::parse::{EDGE_TARGET_MASK, Heap};

/// DevTools' `baseSystemDistance`: distances of what only the root (not a user root) reaches.
pub(crate) const BASE_SYSTEM_DISTANCE: i32 = 100_000_000;
/// DevTools' `baseUnreachableDistance`.
pub(crate) const BASE_UNREACHABLE_DISTANCE: i32 = 200_000_000;
/// DevTools' `noDistance`.
pub(crate) const NO_DISTANCE: i32 = -5;

/// Marks an essential retainer entry (node ordinals use 30 bits).
const ESSENTIAL: u32 = 1 << 31;

/// The edge type indexes DevTools looks up by name (`u16::MAX` if the snapshot has none).
#[derive(Clone, Copy)]
pub(crate) struct EdgeTypes {
    pub(crate) element: u16,
    pub(crate) hidden: u16,
    pub(crate) internal: u16,
    pub(crate) shortcut: u16,
    pub(crate) weak: u16,
    pub(crate) invisible: u16,
}

impl EdgeTypes {
    pub(crate) fn of(heap: &Heap) -> EdgeTypes {
        let names = &heap.layout.edges.type_names;
        let find = |n: &str| {
            names
                .iter()
                .position(|t| t == n)
                .map_or(u16::MAX, |i| i as u16)
        };
        EdgeTypes {
            element: find("element"),
            hidden: find("hidden"),
            internal: find("internal"),
            shortcut: find("shortcut"),
            weak: find("weak"),
            invisible: find("invisible"),
        }
    }

    /// Whether the edge's `name_or_index` is a string index (DevTools' `hasStringName`).
    pub(crate) fn has_string_name(self, ty: u8) -> bool {
        let ty = u16::from(ty);
        ty != self.element && ty != self.hidden
    }
}

/// The graph facts the leak views need, per node ordinal.
pub(crate) struct Graph {
    /// Retainer entries of node `o`: `first_retainer[o]..first_retainer[o + 1]`.
    pub(crate) first_retainer: Column<u32>,
    /// The edge of each entry, in DevTools' order (reverse edge order); its source is the node
    /// whose edge range holds it.
    pub(crate) retainer_edge: Column<u32>,
    pub(crate) retained: Column<u64>,
    pub(crate) distance: Column<i32>,
    /// The immediate dominator of every node (the root's is itself).
    pub(crate) dominator: Column<u32>,
}

impl Graph {
    /// The edge of retainer entry `r`.
    pub(crate) fn retainer_edge(&self, r: usize) -> usize {
        self.retainer_edge[r] as usize
    }

    /// The dominator tree's children lists (`buildDominatedNodes`): children of `o` are
    /// `dominated[first[o]..first[o + 1]]`. Built when needed, not held.
    pub(crate) fn dominated(&self, root: usize) -> (Vec<u32>, Vec<u32>) {
        dominated_nodes(&self.dominator, root)
    }
}

/// `^\d+( / part of key \(.*? @\d+\) -> value \(.*? @\d+\) pair in WeakMap \(table @(\d+)\))$`:
/// the table id and the part after the leading number.
pub(crate) fn weak_map_edge(name: &str) -> Option<(u64, &str)> {
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let rest = &name[digits..];
    let inner = rest.strip_prefix(" / part of key (")?;
    let (pair, table) = inner.rsplit_once(" pair in WeakMap (table @")?;
    let table = table.strip_suffix(')')?;
    if table.is_empty() || !table.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (key, value) = pair.split_once(") -> value (")?;
    let ends_with_id = |s: &str| {
        s.rsplit_once(" @")
            .is_some_and(|(_, id)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
    };
    let value = value.strip_suffix(')')?;
    if !ends_with_id(key) || !ends_with_id(value) {
        return None;
    }
    Some((table.parse().ok()?, rest))
}

/// Runs the dominator pass after [`essential_edges`] and, when paths are wanted,
/// [`distances`] (whose result is `distance`, empty otherwise). `size_of` gives a node's shallow
/// size after folding. Only the edge targets (`heap.edges`) and `heap.first_edge` are read: the
/// caller may have moved edge names, types and node names out of memory meanwhile, and may drop
/// `heap.edges` afterwards (the retainer lists name edges, not nodes).
pub(crate) fn analyse(
    heap: &Heap,
    essential: Vec<u64>,
    size_of: impl Fn(usize) -> u32,
    root: usize,
    distance: Vec<i32>,
) -> Graph {
    let (mut first_retainer, mut retainer_edge) = retainers(heap, &essential);
    let (dominator, retained) = dominators(
        heap,
        size_of,
        root,
        &essential,
        &first_retainer,
        &retainer_edge,
    );
    drop(essential);
    retainer_sources_to_edges(heap, &mut first_retainer, &mut retainer_edge);
    Graph {
        first_retainer: first_retainer.into(),
        retainer_edge: retainer_edge.into(),
        retained: retained.into(),
        distance: distance.into(),
        dominator: dominator.into(),
    }
}

/// DevTools' `isUserRoot` for the JS snapshot: not synthetic, or the DOM trees root.
pub(crate) fn is_user_root(heap: &Heap, ordinal: usize) -> bool {
    heap.kind(ordinal) != NodeKind::Synthetic || heap.raw_name(ordinal) == "(Document DOM trees)"
}

/// `markPageOwnedNodes`: what the root's shortcuts (and the DOM trees root) reach without weak
/// edges.
fn page_owned(heap: &Heap, types: EdgeTypes, root: usize) -> Vec<bool> {
    let n = heap.node_count();
    let mut flags = vec![false; n];
    let mut stack: Vec<u32> = Vec::new();
    let (start, end) = (
        heap.first_edge[root] as usize,
        heap.first_edge[root + 1] as usize,
    );
    for e in start..end {
        let ty = u16::from(heap.edge_type[e]);
        let target = (heap.edges[e] & EDGE_TARGET_MASK) as usize;
        if ty == types.element {
            if !(heap.kind(target) == NodeKind::Synthetic
                && heap.raw_name(target) == "(Document DOM trees)")
            {
                continue;
            }
        } else if ty != types.shortcut {
            continue;
        }
        stack.push(target as u32);
        flags[target] = true;
    }
    while let Some(node) = stack.pop() {
        let node = node as usize;
        for e in heap.first_edge[node] as usize..heap.first_edge[node + 1] as usize {
            let child = (heap.edges[e] & EDGE_TARGET_MASK) as usize;
            if flags[child] || u16::from(heap.edge_type[e]) == types.weak {
                continue;
            }
            stack.push(child as u32);
            flags[child] = true;
        }
    }
    flags
}

/// `initEssentialEdges`, as a bit per edge.
pub(crate) fn essential_edges(heap: &Heap, root: usize) -> Vec<u64> {
    let types = EdgeTypes::of(heap);
    let page = page_owned(heap, types, root);
    let edge_count = heap.edges.len();
    let mut bits = vec![0u64; edge_count.div_ceil(64)];
    // WeakMap edge names, parsed once per distinct string.
    let mut tables: FastMap<u32, Option<u64>> = FastMap::default();
    for node in 0..heap.node_count() {
        for e in heap.first_edge[node] as usize..heap.first_edge[node + 1] as usize {
            let ty = u16::from(heap.edge_type[e]);
            if ty == types.internal {
                let name = heap.edge_name[e];
                let table = *tables
                    .entry(name)
                    .or_insert_with(|| weak_map_edge(heap.string(name)).map(|(t, _)| t));
                if table == Some(u64::from(heap.node_id[node])) {
                    continue;
                }
            }
            if ty == types.weak {
                continue;
            }
            let child = (heap.edges[e] & EDGE_TARGET_MASK) as usize;
            if child == node {
                continue;
            }
            if node != root {
                if ty == types.shortcut {
                    continue;
                }
                if page[child] && !page[node] {
                    continue;
                }
            }
            bits[e / 64] |= 1 << (e % 64);
        }
    }
    bits
}

fn is_set(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

/// `buildRetainers`: for each node, the nodes whose edges point to it, in DevTools' order
/// (each target's slots filled from the back).
fn retainers(heap: &Heap, essential: &[u64]) -> (Vec<u32>, Vec<u32>) {
    let n = heap.node_count();
    let mut first = vec![0u32; n + 1];
    for &e in &heap.edges {
        first[(e & EDGE_TARGET_MASK) as usize] += 1;
    }
    // Inclusive prefix sums (each slice's end), counted down as the slice fills: at the end
    // every entry is its slice's start, with no second array.
    let mut at = 0u32;
    for slot in first.iter_mut().take(n) {
        at += *slot;
        *slot = at;
    }
    first[n] = at;
    let mut nodes = vec![0u32; heap.edges.len()];
    for source in 0..n {
        for e in heap.first_edge[source] as usize..heap.first_edge[source + 1] as usize {
            let target = (heap.edges[e] & EDGE_TARGET_MASK) as usize;
            first[target] -= 1;
            let flag = if is_set(essential, e) { ESSENTIAL } else { 0 };
            nodes[first[target] as usize] = source as u32 | flag;
        }
    }
    (first, nodes)
}

/// Rewrites the retainer lists from source nodes (with the [`ESSENTIAL`] flag, what the
/// dominator pass reads) to edge ordinals (what retainer paths read), in place and in the same
/// order: entry `first[t] + k` is the `k`-th last edge to `t`.
fn retainer_sources_to_edges(heap: &Heap, first: &mut [u32], entries: &mut [u32]) {
    let n = heap.node_count();
    for (e, &edge) in heap.edges.iter().enumerate().rev() {
        let target = (edge & EDGE_TARGET_MASK) as usize;
        entries[first[target] as usize] = e as u32;
        first[target] += 1;
    }
    // Each start moved to the next one's: shift back.
    for t in (1..n).rev() {
        first[t] = first[t - 1];
    }
    first[0] = 0;
}

/// The dominator tree DevTools' Lengauer–Tarjan computes, then retained sizes. Returns the
/// immediate dominator and the retained size of every node.
///
/// Same depth-first numbering as DevTools (edge order, its two fix-ups for nodes the root does
/// not reach) and the same semidominators, but immediate dominators come from semi-NCA (each
/// node's dominator is the nearest ancestor of its parent, in the tree built so far, numbered
/// at or below its semidominator) instead of Lengauer–Tarjan's buckets: on a depth-first tree
/// both give the one dominator tree, and on DevTools' fix-ups (unreached nodes hung off the
/// root) both give the root. Five `u32` arrays per node instead of seven, and the depth-first
/// walk keeps a stack of the open path instead of a cursor per node.
fn dominators(
    heap: &Heap,
    size_of: impl Fn(usize) -> u32,
    root: usize,
    essential: &[u64],
    first_retainer: &[u32],
    retainer_node: &[u32],
) -> (Vec<u32>, Vec<u64>) {
    let node_count = heap.node_count();
    let len = node_count + 1;
    let first_edge = &heap.first_edge;
    let edges = &heap.edges;
    // 1-based node numbers as in DevTools (0: none). `semi` holds the preorder number until the
    // node's semidominator replaces it.
    let mut parent = vec![0u32; len];
    let mut vertex = vec![0u32; len];
    let mut label = vec![0u32; len];
    let mut semi = vec![0u32; len];
    let mut n: u32 = 0;
    // The open path of the walk: (node, its next edge).
    let mut path: Vec<(u32, u32)> = Vec::new();

    let mut dfs = |start: u32,
                   parent: &mut [u32],
                   vertex: &mut [u32],
                   label: &mut [u32],
                   semi: &mut [u32],
                   n: &mut u32| {
        let mut visit = |v: u32, vertex: &mut [u32], label: &mut [u32], semi: &mut [u32]| {
            *n += 1;
            semi[v as usize] = *n;
            vertex[*n as usize] = v;
            label[v as usize] = v;
        };
        if semi[start as usize] == 0 {
            visit(start, vertex, label, semi);
        }
        path.push((start, first_edge[start as usize - 1]));
        while let Some(top) = path.last_mut() {
            let v = top.0;
            let end = first_edge[v as usize];
            let mut child = 0;
            while top.1 < end {
                let e = top.1 as usize;
                top.1 += 1;
                if is_set(essential, e) {
                    let w = (edges[e] & EDGE_TARGET_MASK) + 1;
                    if semi[w as usize] == 0 {
                        child = w;
                        break;
                    }
                }
            }
            if child == 0 {
                path.pop();
            } else {
                parent[child as usize] = v;
                visit(child, vertex, label, semi);
                path.push((child, first_edge[child as usize - 1]));
            }
        }
    };

    let r = root as u32 + 1;
    dfs(r, &mut parent, &mut vertex, &mut label, &mut semi, &mut n);
    let only_weak_retainers = |ordinal: usize| {
        retainer_node[first_retainer[ordinal] as usize..first_retainer[ordinal + 1] as usize]
            .iter()
            .all(|&s| s & ESSENTIAL == 0)
    };
    if (n as usize) < node_count {
        for v in 1..=node_count as u32 {
            if semi[v as usize] == 0 && only_weak_retainers(v as usize - 1) {
                parent[v as usize] = r;
                dfs(v, &mut parent, &mut vertex, &mut label, &mut semi, &mut n);
            }
        }
    }
    if (n as usize) < node_count {
        for v in 1..=node_count {
            if semi[v] == 0 {
                parent[v] = r;
                n += 1;
                semi[v] = n;
                vertex[n as usize] = v as u32;
                label[v] = v as u32;
            }
        }
    }
    drop(path);

    // Semidominators, in reverse preorder, with DevTools' eval (path compression).
    let mut ancestor = vec![0u32; len];
    let mut stack: Vec<u32> = Vec::new();
    let mut evaluate = |v: u32, ancestor: &mut [u32], label: &mut [u32], semi: &[u32]| -> u32 {
        if ancestor[v as usize] == 0 {
            return v;
        }
        let mut at = v;
        stack.clear();
        while ancestor[ancestor[at as usize] as usize] != 0 {
            stack.push(at);
            at = ancestor[at as usize];
        }
        while let Some(w) = stack.pop() {
            let w = w as usize;
            let a = ancestor[w] as usize;
            if semi[label[a] as usize] < semi[label[w] as usize] {
                label[w] = label[a];
            }
            ancestor[w] = ancestor[a];
        }
        label[v as usize]
    };
    for i in (2..=n as usize).rev() {
        let w = vertex[i] as usize;
        let mut orphan = true;
        for &entry in &retainer_node[first_retainer[w - 1] as usize..first_retainer[w] as usize] {
            if entry & ESSENTIAL == 0 {
                continue;
            }
            orphan = false;
            let v = (entry & !ESSENTIAL) + 1;
            let u = evaluate(v, &mut ancestor, &mut label, &semi);
            if semi[u as usize] < semi[w] {
                semi[w] = semi[u as usize];
            }
        }
        if orphan {
            semi[w] = semi[r as usize];
        }
        ancestor[w] = parent[w];
    }
    drop(ancestor);

    // Immediate dominators in preorder: from the parent up the tree built so far, to the first
    // node numbered at or below the semidominator. `label` becomes the preorder number.
    let mut preorder = label;
    for i in 1..=n as usize {
        preorder[vertex[i] as usize] = i as u32;
    }
    let mut dom = parent;
    dom[0] = r;
    dom[r as usize] = r;
    for &w in &vertex[2..=n as usize] {
        let w = w as usize;
        let mut d = dom[w];
        while preorder[d as usize] > semi[w] {
            d = dom[d as usize];
        }
        dom[w] = d;
    }
    drop(preorder);
    drop(semi);

    let dominator: Vec<u32> = dom[1..].iter().map(|&d| d - 1).collect();
    drop(dom);
    let mut retained: Vec<u64> = (0..node_count).map(|o| u64::from(size_of(o))).collect();
    for i in (2..=n as usize).rev() {
        let ordinal = vertex[i] as usize - 1;
        let d = dominator[ordinal] as usize;
        retained[d] += retained[ordinal];
    }
    (dominator, retained)
}

/// `buildDominatedNodes`: the dominator tree's children lists (each filled from the back).
fn dominated_nodes(dominator: &[u32], root: usize) -> (Vec<u32>, Vec<u32>) {
    let n = dominator.len();
    let mut first = vec![0u32; n + 1];
    for (o, &d) in dominator.iter().enumerate() {
        if o != root {
            first[d as usize] += 1;
        }
    }
    // Slice ends, counted down to the starts as they fill (as in `retainers`).
    let mut at = 0u32;
    for slot in first.iter_mut().take(n) {
        at += *slot;
        *slot = at;
    }
    first[n] = at;
    let mut children = vec![0u32; at as usize];
    for (o, &d) in dominator.iter().enumerate() {
        if o != root {
            first[d as usize] -= 1;
            children[first[d as usize] as usize] = o as u32;
        }
    }
    (first, children)
}

/// `parseInt` of an edge name, for the descriptor-array rule (`None` for NaN).
fn parse_int(name: &str) -> Option<i64> {
    let s = name.trim_start();
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let end = digits.bytes().take_while(u8::is_ascii_digit).count();
    if end == 0 {
        return None;
    }
    let value: i64 = digits[..end.min(18)].parse().ok()?;
    Some(if negative { -value } else { value })
}

/// `calculateDistances` with the JS snapshot's filter.
pub(crate) fn distances(heap: &Heap, root: usize) -> Vec<i32> {
    let types = EdgeTypes::of(heap);
    let n = heap.node_count();
    let mut distance = vec![NO_DISTANCE; n];
    // Only the frontier is held, not every node reached.
    let mut queue: VecDeque<u32> = VecDeque::new();
    for e in heap.first_edge[root] as usize..heap.first_edge[root + 1] as usize {
        let target = (heap.edges[e] & EDGE_TARGET_MASK) as usize;
        if is_user_root(heap, target) {
            distance[target] = 1;
            queue.push_back(target as u32);
        }
    }
    let user_roots = !queue.is_empty();
    let mut pending: FastSet<&str> = FastSet::default();
    bfs(heap, types, &mut queue, &mut distance, &mut pending);
    distance[root] = if user_roots { BASE_SYSTEM_DISTANCE } else { 0 };
    queue.clear();
    queue.push_back(root as u32);
    bfs(heap, types, &mut queue, &mut distance, &mut pending);
    distance
}

/// One breadth-first pass of `calculateDistances`.
fn bfs<'h>(
    heap: &'h Heap,
    types: EdgeTypes,
    queue: &mut VecDeque<u32>,
    distance: &mut [i32],
    pending: &mut FastSet<&'h str>,
) {
    while let Some(node) = queue.pop_front() {
        let node = node as usize;
        let d = distance[node] + 1;
        let kind = heap.kind(node);
        let native_context =
            kind == NodeKind::Hidden && heap.raw_name(node) == "system / NativeContext";
        let descriptors = kind == NodeKind::Array && heap.raw_name(node) == "(map descriptors)";
        for e in heap.first_edge[node] as usize..heap.first_edge[node + 1] as usize {
            let ty = heap.edge_type[e];
            if u16::from(ty) == types.weak {
                continue;
            }
            let child = (heap.edges[e] & EDGE_TARGET_MASK) as usize;
            if distance[child] != NO_DISTANCE {
                continue;
            }
            let named = types.has_string_name(ty);
            let name = heap.edge_name[e];
            if native_context && named && heap.string(name) == "sloppy_function_map" {
                continue;
            }
            if descriptors {
                let index = if named {
                    parse_int(heap.string(name))
                } else {
                    Some(i64::from(name))
                };
                if let Some(i) = index
                    && i >= 2
                    && i % 3 == 1
                {
                    continue;
                }
            } else if u16::from(ty) == types.internal
                && let Some((_, part)) = weak_map_edge(heap.string(name))
                && !pending.remove(part)
            {
                pending.insert(part);
                continue;
            }
            distance[child] = d;
            queue.push_back(child as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_map_edge_names() {
        let name =
            "12 / part of key (Object @123) -> value (Object @456) pair in WeakMap (table @789)";
        assert_eq!(weak_map_edge(name), Some((789, &name[2..])));
        assert_eq!(weak_map_edge("part of key"), None);
        assert_eq!(
            weak_map_edge("12 / part of key (a @1) -> value (b @2) pair in WeakMap (table @x)"),
            None
        );
    }

    #[test]
    fn parse_int_is_javascripts() {
        assert_eq!(parse_int("12abc"), Some(12));
        assert_eq!(parse_int("abc"), None);
        assert_eq!(parse_int(" -3"), Some(-3));
    }
}
