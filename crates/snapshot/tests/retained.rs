//! Dominators, retained sizes, distances and retainer paths on hand-made graphs whose answers
//! can be worked out by hand (and were checked against DevTools' `HeapSnapshot.ts`).

mod common;

use std::collections::HashMap;

use common::Snap;
use heapgate_snapshot::{Snapshot, testing};

/// The graph of the tests below, by node id:
///
/// - the root has a shortcut to `global` (3, a user root) and an element edge to `(GC roots)`;
/// - global → Alpha (7) and Beta (9); both → Shared (11) → Leaf (13): a diamond;
/// - global → WeakOnly (15) through a weak edge only;
/// - Alpha → ShortcutOnly (17) through a shortcut (essential only from the root);
/// - (GC roots) → SystemHeld (19) → global: an edge into the page-owned part from outside it,
///   which dominators ignore;
/// - Cycle 21 ⇄ Cycle 23, retained by nothing else;
/// - global → Foo (25) → Foo (27): a class dominating its own objects.
fn graph() -> Snap {
    let mut s = Snap::new();
    let global = s.user_root(3);
    let gc_roots = s.node("synthetic", "(GC roots)", 5, 0);
    s.edge(0, "element", "1", gc_roots);
    let alpha = s.node("object", "Alpha", 7, 100);
    let beta = s.node("object", "Beta", 9, 200);
    let shared = s.node("object", "Shared", 11, 7);
    let leaf = s.node("object", "Leaf", 13, 3);
    let weak_only = s.node("object", "WeakOnly", 15, 50);
    let shortcut_only = s.node("object", "ShortcutOnly", 17, 40);
    let system_held = s.node("object", "SystemHeld", 19, 30);
    let p = s.node("object", "Cycle", 21, 5);
    let q = s.node("object", "Cycle", 23, 6);
    let parent_foo = s.node("object", "Foo", 25, 10);
    let foo_child = s.node("object", "Foo", 27, 5);
    s.edge(global, "property", "a", alpha)
        .edge(global, "property", "b", beta)
        .edge(alpha, "property", "c", shared)
        .edge(beta, "property", "c", shared)
        .edge(shared, "property", "d", leaf)
        .edge(global, "weak", "w", weak_only)
        .edge(alpha, "shortcut", "s", shortcut_only)
        .edge(gc_roots, "element", "1", system_held)
        .edge(system_held, "property", "g", global)
        .edge(p, "property", "q", q)
        .edge(q, "property", "p", p)
        .edge(global, "property", "foo", parent_foo)
        .edge(parent_foo, "property", "child", foo_child);
    s
}

fn write(s: &Snap) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph.heapsnapshot");
    std::fs::write(&path, s.json()).unwrap();
    (dir, path)
}

#[test]
fn retained_sizes_follow_the_dominator_tree() {
    let (_dir, path) = write(&graph());
    let retained: HashMap<u32, u64> = testing::retained_sizes(&path)
        .unwrap()
        .into_iter()
        .collect();
    let dominator: HashMap<u32, u32> = testing::dominators(&path).unwrap().into_iter().collect();
    // The diamond: Shared is dominated by global, not by Alpha or Beta.
    assert_eq!(dominator[&11], 3);
    assert_eq!(dominator[&13], 11);
    assert_eq!(retained[&13], 3);
    assert_eq!(retained[&11], 10);
    assert_eq!(retained[&7], 100);
    // global: itself (24), Alpha, Beta, Shared+Leaf, Foo+Foo; not SystemHeld's edge into it.
    assert_eq!(retained[&3], 24 + 100 + 200 + 10 + 15);
    assert_eq!(dominator[&3], 1);
    // Only weakly held, only held by a shortcut, or a cycle nobody holds: hung off the root.
    for id in [15, 17, 21, 23] {
        assert_eq!(dominator[&id], 1, "node {id}");
    }
    assert_eq!(retained[&15], 50);
    assert_eq!(retained[&21], 5);
    assert_eq!(dominator[&19], 5);
    // The root retains everything.
    let total: u64 = [24, 100, 200, 7, 3, 50, 40, 30, 5, 6, 10, 5].iter().sum();
    assert_eq!(retained[&1], total);
}

#[test]
fn the_class_retained_size_counts_objects_no_other_of_the_class_dominates() {
    let s = graph();
    let summary = s.summary();
    let classes: HashMap<String, (u64, u64, u64)> = summary
        .classes()
        .into_iter()
        .map(|c| (c.name, (c.count, c.self_size, c.retained_size)))
        .collect();
    // Foo 27 is dominated by Foo 25: counted once, inside 25's retained size.
    assert_eq!(classes["Foo"], (2, 15, 15));
    // Two Cycle objects, neither dominating the other.
    assert_eq!(classes["Cycle"], (2, 11, 11));
    assert_eq!(classes["global"], (1, 24, 349));
    // Largest retained size first.
    assert_eq!(summary.classes()[0].name, "global");
}

#[test]
fn distances_start_at_user_roots_and_skip_weak_edges() {
    let (_dir, path) = write(&graph());
    let distance: HashMap<u32, i32> = testing::distances(&path).unwrap().into_iter().collect();
    assert_eq!(distance[&3], 1);
    assert_eq!(distance[&7], 2);
    assert_eq!(distance[&11], 3);
    assert_eq!(distance[&13], 4);
    // Shortcuts are followed for distances; weak edges never.
    assert_eq!(distance[&17], 3);
    assert_eq!(distance[&15], -5);
    // What only the root reaches counts from 100,000,000.
    assert_eq!(distance[&1], 100_000_000);
    assert_eq!(distance[&5], 100_000_001);
    assert_eq!(distance[&19], 100_000_002);
    assert_eq!(distance[&21], -5);
}

#[test]
fn the_first_retainer_path_is_the_nearest_then_by_name() {
    let (_dir, path) = write(&graph());
    // Shared has two retainers at distance 2: Alpha sorts before Beta.
    let chain = testing::first_retainer_chain(&path, 13).unwrap().unwrap();
    let expected: Vec<(u32, String, String)> = [(11, "d"), (7, "c"), (3, "a")]
        .into_iter()
        .map(|(id, edge)| (id, edge.to_owned(), "property".to_owned()))
        .collect();
    assert_eq!(chain, expected);
    let steps = testing::first_retainer_path(&path, 13).unwrap().unwrap();
    let text: Vec<(&str, &str, &str)> = steps
        .iter()
        .map(|s| (s.node.as_str(), s.edge.as_str(), s.edge_type.as_str()))
        .collect();
    assert_eq!(
        text,
        [
            ("global", "", ""),
            ("Alpha", "a", "property"),
            ("Shared", "c", "property"),
            ("Leaf", "d", "property"),
        ]
    );
    assert!(testing::first_retainer_path(&path, 999).unwrap().is_none());
}

#[test]
fn objects_sharing_a_path_form_one_group() {
    let mut s = Snap::new();
    let global = s.user_root(3);
    let map = s.node("object", "Map", 5, 32);
    let table = s.node("array", "(object elements)", 7, 0);
    s.edge(global, "property", "cache", map)
        .edge(map, "internal", "table", table);
    let mut ids = Vec::new();
    for i in 0..50u32 {
        let id = 101 + 2 * i;
        let entry = s.node("object", "Entry", id, 16);
        s.edge(table, "element", &i.to_string(), entry);
        ids.push(id);
    }
    let snapshot = Snapshot::from_reader(s.json().as_bytes(), "t.heapsnapshot").unwrap();
    let groups = snapshot.retainer_groups(&ids, 3);
    assert_eq!(groups.len(), 1, "{groups:#?}");
    assert_eq!(groups[0].count, 50);
    assert_eq!(groups[0].retained_size, 50 * 16);
    let edges: Vec<&str> = groups[0].path.iter().map(|s| s.edge.as_str()).collect();
    assert_eq!(edges, ["", "cache", "table", "[]"]);
}
