//! The two graph passes DevTools runs before it groups nodes, reproduced so the numbers match.
//!
//! Both need edges, which is why the reader keeps them (4 bytes each):
//!
//! - **DOM state** (`propagateDOMState`): native nodes that the embedder marks attached or
//!   detached pass that state on to native nodes they reference (not through hidden, invisible
//!   or weak edges; an attached mark wins). Every detached native gets `Detached ` before its
//!   name, which changes its class: Node.js marks some of its own objects this way
//!   (`Detached Node / BindingData`), browsers their DOM nodes.
//! - **Shallow sizes** (`calculateShallowSizes`): when the snapshot has user roots (a
//!   non-synthetic node hanging off the root, such as Node's `global`), an array, a hidden
//!   (`(system)`) node or a `system / ExternalStringData` native that is reachable from exactly
//!   one other node through such nodes only is counted as part of that owner: its self size
//!   moves to the owner and it drops out of the comparison (DevTools skips nodes of size 0). So
//!   an object's row includes its out-of-line properties and elements, which is what a developer
//!   means by "this object's size".

use crate::layout::NodeKind;
use crate::parse::{EDGE_HIDDEN, EDGE_TARGET_MASK, EDGE_WEAK, Heap};

/// Which nodes DevTools renames `Detached <name>`.
pub(crate) fn detached_names(heap: &Heap) -> Vec<bool> {
    let n = heap.node_count();
    let mut renamed = vec![false; n];
    if heap.node_detachedness.is_empty() {
        return renamed;
    }
    let mut state = heap.node_detachedness.clone();
    let mut visited = vec![false; n];
    let mut attached = Vec::new();
    let mut detached = Vec::new();

    let mut process = |ordinal: usize,
                       new_state: u8,
                       state: &mut [u8],
                       attached: &mut Vec<usize>,
                       detached: &mut Vec<usize>| {
        if visited[ordinal] {
            return;
        }
        visited[ordinal] = true;
        // The state does not travel through JavaScript objects; every entry point into
        // embedder memory is a native node that knows its own state.
        if heap.kind(ordinal) != NodeKind::Native {
            return;
        }
        state[ordinal] = new_state;
        match new_state {
            1 => attached.push(ordinal),
            2 => {
                renamed[ordinal] = true;
                detached.push(ordinal);
            }
            _ => {}
        }
    };

    for ordinal in 0..n {
        let s = state[ordinal];
        if s != 0 {
            process(ordinal, s, &mut state, &mut attached, &mut detached);
        }
    }
    while let Some(parent) = attached.pop() {
        for &edge in heap.edges_of(parent) {
            if edge & (EDGE_WEAK | EDGE_HIDDEN) == 0 {
                let child = (edge & EDGE_TARGET_MASK) as usize;
                process(child, 1, &mut state, &mut attached, &mut detached);
            }
        }
    }
    while let Some(parent) = detached.pop() {
        if state[parent] == 1 {
            continue;
        }
        for &edge in heap.edges_of(parent) {
            if edge & (EDGE_WEAK | EDGE_HIDDEN) == 0 {
                let child = (edge & EDGE_TARGET_MASK) as usize;
                process(child, 2, &mut state, &mut attached, &mut detached);
            }
        }
    }
    renamed
}

/// The root ordinal.
pub(crate) fn root(heap: &Heap) -> usize {
    (heap.layout.root_index / heap.layout.nodes.field_count as u64) as usize
}

/// Whether the root references a node that is not synthetic (or is the document's DOM trees
/// root): snapshots taken with V8's "expose internals" option have none, and DevTools leaves
/// their sizes alone.
fn has_user_roots(heap: &Heap) -> bool {
    heap.edges_of(root(heap)).iter().any(|&edge| {
        let target = (edge & EDGE_TARGET_MASK) as usize;
        heap.kind(target) != NodeKind::Synthetic || heap.raw_name(target) == "(Document DOM trees)"
    })
}

/// Moves the self size of singly-owned arrays, hidden nodes and external string data into their
/// owner, in `sizes`. Returns whether the pass applied.
pub(crate) fn fold_owned_sizes(heap: &Heap, renamed: &[bool], sizes: &mut [u32]) -> bool {
    if !has_user_roots(heap) {
        return false;
    }
    const UNVISITED: u32 = u32::MAX;
    const SHARED: u32 = u32::MAX - 1;
    let n = heap.node_count();
    let mut owners = vec![UNVISITED; n];
    for (ordinal, owner) in owners.iter_mut().enumerate() {
        let owned = match heap.kind(ordinal) {
            NodeKind::Hidden | NodeKind::Array => true,
            NodeKind::Native => {
                !renamed[ordinal] && heap.raw_name(ordinal) == "system / ExternalStringData"
            }
            _ => false,
        };
        if !owned {
            *owner = ordinal as u32;
        }
    }
    // A fixpoint over unowned < owned by one < shared, so the visiting order does not matter:
    // each self-owned node is visited once, then whatever its visit changed.
    let mut worklist = Vec::new();
    let visit = |node: u32, owners: &mut [u32], worklist: &mut Vec<u32>| {
        let owner = owners[node as usize];
        for &edge in heap.edges_of(node as usize) {
            if edge & EDGE_WEAK != 0 {
                continue;
            }
            let target = edge & EDGE_TARGET_MASK;
            let current = owners[target as usize];
            if current == UNVISITED {
                owners[target as usize] = owner;
                worklist.push(target);
            } else if current != target && current != owner && current != SHARED {
                owners[target as usize] = SHARED;
                worklist.push(target);
            }
        }
    };
    for node in 0..n as u32 {
        if owners[node as usize] != node {
            continue;
        }
        visit(node, &mut owners, &mut worklist);
        while let Some(next) = worklist.pop() {
            visit(next, &mut owners, &mut worklist);
        }
    }
    let root = root(heap);
    for (ordinal, &owner) in owners.iter().enumerate() {
        if owner == UNVISITED || owner == SHARED || owner as usize == ordinal {
            continue;
        }
        let owner = owner as usize;
        // Adding size to synthetic nodes or the root helps nobody.
        if owner == root || heap.kind(owner) == NodeKind::Synthetic {
            continue;
        }
        sizes[owner] = sizes[owner].saturating_add(sizes[ordinal]);
        sizes[ordinal] = 0;
    }
    true
}
