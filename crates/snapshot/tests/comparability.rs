//! Telling a series of one process from snapshots of different processes, on hand-made graphs.

mod common;

use common::Snap;
use heapgate_snapshot::{Verdict, comparability};

/// A process's heap: `count` objects with odd ids from 3, named `label` + index, as a first
/// snapshot numbers them.
fn heap(label: &str, count: u32) -> Snap {
    let mut s = Snap::new();
    for i in 0..count {
        s.node(
            "string",
            &format!("{label}{i}"),
            3 + 2 * i,
            16 + u64::from(i % 5) * 8,
        );
    }
    s
}

#[test]
fn a_later_snapshot_of_the_same_process_is_a_series() {
    let base = heap("s", 1000);
    // Same objects, some gone, more allocated with higher ids.
    let mut new = Snap::new();
    for i in 0..1000u32 {
        if i % 3 != 0 {
            new.node(
                "string",
                &format!("s{i}"),
                3 + 2 * i,
                16 + u64::from(i % 5) * 8,
            );
        }
    }
    for i in 0..500u32 {
        new.node("object", "Leak", 5001 + 2 * i, 40);
    }
    let check = comparability(&base.summary(), &new.summary());
    assert_eq!(check.verdict, Verdict::SameSeries, "{check:?}");
    assert!(!check.is_warning());
    // The root (id 1) is an object of both too.
    assert_eq!((check.shared, check.identical), (667, 667));
    assert!((check.survival - 667.0 / 1001.0).abs() < 1e-9);
    assert!(
        check
            .message
            .starts_with("same process: 66.6% of BASE's objects are in NEW"),
        "{}",
        check.message
    );
}

#[test]
fn the_same_ids_on_other_objects_are_another_process() {
    // A restarted process numbers its heap from the start again: the ids overlap completely,
    // the objects behind them do not.
    let base = heap("first run ", 1000);
    let new = heap("second run ", 1200);
    let check = comparability(&base.summary(), &new.summary());
    assert_eq!(check.verdict, Verdict::DifferentSessions, "{check:?}");
    assert!(check.is_warning());
    assert_eq!((check.shared, check.identical), (1001, 1));
    assert!(
        check
            .message
            .starts_with("not the same process: 99.9% of the ids"),
        "{}",
        check.message
    );
}

#[test]
fn mostly_equal_heaps_of_two_processes_are_still_told_apart() {
    // Identical start-up, then 5% of the heap differs: below the 98% agreement a series has.
    let base = heap("s", 1000);
    let mut new = Snap::new();
    for i in 0..1000u32 {
        let label = if i >= 950 { "other" } else { "s" };
        new.node(
            "string",
            &format!("{label}{i}"),
            3 + 2 * i,
            16 + u64::from(i % 5) * 8,
        );
    }
    let check = comparability(&base.summary(), &new.summary());
    assert_eq!(check.verdict, Verdict::DifferentSessions, "{check:?}");
    assert!((check.agreement - 951.0 / 1001.0).abs() < 1e-9);
}

#[test]
fn nothing_shared_is_another_process() {
    let base = heap("s", 100);
    let mut new = Snap::new();
    for i in 0..100u32 {
        new.node("string", "x", 10_001 + 2 * i, 16);
    }
    let check = comparability(&base.summary(), &new.summary());
    // Only the root survives: under 2% of BASE.
    assert_eq!(check.verdict, Verdict::DifferentSessions);
    assert_eq!(check.shared, 1);
    assert!(
        check
            .message
            .starts_with("probably not the same process: only 1.0%"),
        "{}",
        check.message
    );
}

#[test]
fn swapped_files_are_reported() {
    let older = heap("s", 100);
    let mut newer = heap("s", 100);
    newer.node("object", "Leak", 1001, 40);
    let check = comparability(&newer.summary(), &older.summary());
    assert_eq!(check.verdict, Verdict::Reversed, "{check:?}");
    assert!(check.is_warning());
    assert_eq!(
        comparability(&older.summary(), &newer.summary()).verdict,
        Verdict::SameSeries
    );
}

#[test]
fn without_heap_objects_there_is_no_verdict() {
    // Only embedder objects (even ids), root included.
    let embedder_only = |id| {
        let mut s = Snap::new();
        s.root_id(2);
        s.node("native", "Node / Environment", id, 100);
        s.summary()
    };
    let check = comparability(&embedder_only(4), &embedder_only(6));
    assert_eq!(check.verdict, Verdict::Unknown);
    assert!(!check.is_warning());
    assert_eq!(check.sampled_base, 0);
}
