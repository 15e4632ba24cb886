//! Matching objects by id between two snapshots, the columns of the Comparison view, sorting,
//! the table and the JSON.

mod common;

use common::{Snap, data};
use heapgate_snapshot::{ClassDiff, SortBy, Verdict, comparability, diff, render_table};

/// Columns of a row: `(# New, # Deleted, # Delta, Alloc. Size, Freed Size, Size Delta)`.
fn columns(row: &ClassDiff) -> (u64, u64, i64, u64, u64, i64) {
    (
        row.new_count,
        row.deleted_count,
        row.delta_count,
        row.alloc_size,
        row.freed_size,
        row.size_delta,
    )
}

/// BASE: Request 3, 5, 7; Session 9; a string 11. NEW: Request 5, 7, 13, 15, 17 (7 grew, which
/// does not count: only unmatched ids do); Session 9; Timer 19; the string is gone.
fn pair() -> (Snap, Snap) {
    let mut base = Snap::new();
    base.node("object", "Request", 3, 40);
    base.node("object", "Request", 5, 40);
    base.node("object", "Request", 7, 40);
    base.node("object", "Session", 9, 100);
    base.node("string", "bye", 11, 24);
    let mut new = Snap::new();
    new.node("object", "Request", 17, 48);
    new.node("object", "Request", 5, 40);
    new.node("object", "Request", 13, 48);
    new.node("object", "Request", 7, 56);
    new.node("object", "Request", 15, 48);
    new.node("object", "Session", 9, 100);
    new.node("object", "Timer", 19, 64);
    (base, new)
}

#[test]
fn objects_are_matched_by_id_within_their_class() {
    let (base, new) = pair();
    let rows = diff(&base.summary(), &new.summary());
    let request = rows.class("Request").unwrap();
    assert_eq!(columns(request), (3, 1, 2, 144, 40, 104));
    assert_eq!(columns(rows.class("Timer").unwrap()), (1, 0, 1, 64, 0, 64));
    assert_eq!(
        columns(rows.class("(string)").unwrap()),
        (0, 1, -1, 0, 24, -24)
    );
    // Every Session object is in both: no row.
    assert!(rows.class("Session").is_none());
    assert_eq!(rows.classes.len(), 3);
    let t = rows.totals;
    assert_eq!(
        (
            t.new_count,
            t.deleted_count,
            t.delta_count,
            t.alloc_size,
            t.freed_size,
            t.size_delta
        ),
        (4, 2, 2, 208, 64, 144)
    );
}

#[test]
fn an_id_that_changes_class_is_deleted_from_one_and_new_in_the_other() {
    let mut base = Snap::new();
    base.node("object", "Pending", 3, 40);
    let mut new = Snap::new();
    new.node("object", "Done", 3, 40);
    let rows = diff(&base.summary(), &new.summary());
    assert_eq!(
        columns(rows.class("Pending").unwrap()),
        (0, 1, -1, 0, 40, -40)
    );
    assert_eq!(columns(rows.class("Done").unwrap()), (1, 0, 1, 40, 0, 40));
}

#[test]
fn identical_snapshots_have_no_rows() {
    let (base, _) = pair();
    let rows = diff(&base.summary(), &base.summary());
    assert!(rows.classes.is_empty());
    assert_eq!(rows.totals, Default::default());
}

#[test]
fn rows_sort_by_size_delta_count_delta_or_new_count() {
    let mut base = Snap::new();
    for id in [3, 5, 7, 9] {
        base.node("object", "Freed", id, 10);
    }
    let mut new = Snap::new();
    new.node("object", "Big", 11, 1000);
    for id in [13, 15, 17] {
        new.node("object", "Many", id, 8);
    }
    for id in [19, 21, 23, 25, 27] {
        new.node("object", "Churn", id, 2);
    }
    base.node("object", "Churn", 29, 2);
    base.node("object", "Churn", 31, 2);
    base.node("object", "Churn", 33, 2);
    base.node("object", "Churn", 35, 2);
    let mut rows = diff(&base.summary(), &new.summary());
    let names = |rows: &heapgate_snapshot::Diff| -> Vec<String> {
        rows.classes.iter().map(|c| c.name.clone()).collect()
    };
    // Default: Size Delta, largest first (Big +1000, Many +24, Churn +2, Freed -40).
    assert_eq!(names(&rows), ["Big", "Many", "Churn", "Freed"]);
    rows.sort(SortBy::CountDelta);
    // Many +3, Big +1, Churn +1 (tie: by name), Freed -4.
    assert_eq!(names(&rows), ["Many", "Big", "Churn", "Freed"]);
    rows.sort(SortBy::NewCount);
    // Churn 5, Many 3, Big 1, Freed 0.
    assert_eq!(names(&rows), ["Churn", "Many", "Big", "Freed"]);
    assert_eq!(rows.top(2).len(), 2);
    assert_eq!(rows.top(10).len(), 4);

    assert_eq!("size".parse(), Ok(SortBy::SizeDelta));
    assert_eq!("delta".parse(), Ok(SortBy::CountDelta));
    assert_eq!("count".parse(), Ok(SortBy::NewCount));
    let bad = "bytes".parse::<SortBy>().unwrap_err();
    assert_eq!(
        bad.to_string(),
        "unknown sort order \"bytes\"; use size, delta, count, retained, kept or new-retained"
    );
    for name in SortBy::NAMES {
        assert_eq!(name.parse::<SortBy>().unwrap().to_string(), name);
    }
}

#[test]
fn the_table_is_aligned_and_totals_every_row() {
    let (base, new) = pair();
    let rows = diff(&base.summary(), &new.summary());
    let expected = "\
Class                           # New  # Deleted  # Delta  Alloc. Size  Freed Size  Size Delta  Retained Size  Retained Delta
Request                             3          1       +2          144          40        +104            240            +120
Timer                               1          0       +1           64           0         +64             64             +64
Total (3 classes, 1 not shown)      4          2       +2          208          64        +144
";
    assert_eq!(render_table(&rows, Some(2)), expected);
    let all = render_table(&rows, None);
    assert!(all.contains("\n(string)  "), "{all}");
    assert!(
        all.ends_with(
            "Total (3 classes)      4          2       +2          208          64        +144\n"
        ),
        "{all}"
    );
}

#[test]
fn long_names_are_shortened_in_the_table_only() {
    let long = format!("Class{}", "x".repeat(100));
    let base = Snap::new();
    let mut new = Snap::new();
    new.node("object", &long, 3, 8);
    let rows = diff(&base.summary(), &new.summary());
    let table = render_table(&rows, None);
    let first_row = table.lines().nth(1).unwrap();
    assert!(
        first_row.starts_with(&format!("Class{}…  ", "x".repeat(54))),
        "{first_row}"
    );
    assert_eq!(rows.classes[0].name, long);
}

#[test]
fn json_has_every_column() {
    let (base, new) = pair();
    let rows = diff(&base.summary(), &new.summary());
    let json: serde_json::Value = serde_json::to_value(&rows).unwrap();
    assert_eq!(
        json["classes"][0],
        serde_json::json!({
            "name": "Request",
            "location": null,
            "new_count": 3,
            "deleted_count": 1,
            "delta_count": 2,
            "alloc_size": 144,
            "freed_size": 40,
            "size_delta": 104,
            // Unreachable objects hang off the root: each retains itself.
            "retained_size": 240,
            "retained_size_delta": 120,
            "script": null,
            "retainers": [],
        })
    );
    assert_eq!(json["totals"]["size_delta"], 144);
    let check = serde_json::to_value(comparability(&base.summary(), &new.summary())).unwrap();
    assert!(check["verdict"].is_string() && check["message"].is_string());
}

/// A V8-shaped pair written by hand (see tests/data/README.md for the story it tells).
#[test]
fn hand_written_files_give_the_known_table() {
    let base = data("small-base.heapsnapshot");
    let new = data("small-new.heapsnapshot");
    assert_eq!(comparability(&base, &new).verdict, Verdict::SameSeries);
    let rows = diff(&base, &new);
    let expected = "\
Class                 # New  # Deleted  # Delta  Alloc. Size  Freed Size  Size Delta  Retained Size  Retained Delta
LeakedRequestContext      3          0       +3          216           0        +216            216            +216
{url}                     2          0       +2           64           0         +64            116             +64
(string)                  1          1        0           20          20           0             40               0
Function                  0          1       -1            0          32         -32              0             -32
Total (4 classes)         6          2       +4          300          52        +248
";
    assert_eq!(render_table(&rows, None), expected);
}

/// A row of a comparison with the growth columns the default orders use.
fn grown(
    name: &str,
    size_delta: i64,
    kept: Option<(u64, u64)>,
    new_retained: Option<u64>,
) -> ClassDiff {
    let (mut base, mut new) = (Snap::new(), Snap::new());
    base.node("object", "Other", 3, 8);
    new.node("object", name, 5, size_delta.max(1) as u64);
    let mut row = diff(&base.summary(), &new.summary())
        .class(name)
        .unwrap()
        .clone();
    row.size_delta = size_delta;
    row.kept_count = kept.map(|k| k.0);
    row.kept_retained_size = kept.map(|k| k.1);
    row.new_retained_size = new_retained;
    row
}

fn order(rows: Vec<ClassDiff>, by: SortBy) -> Vec<String> {
    let (base, new) = (Snap::new(), Snap::new());
    let mut d = diff(&base.summary(), &new.summary());
    d.classes = rows;
    d.sort(by);
    d.classes.into_iter().map(|c| c.name).collect()
}

#[test]
fn two_files_rank_by_what_new_objects_retain_so_holders_come_before_their_strings() {
    // The strings and numbers the Quotes hold grew more by self size than the Quotes did, but
    // the Quotes retain them.
    let rows = || {
        vec![
            grown("(string)", 213_104, None, Some(212_824)),
            grown("(concatenated string)", 150_000, None, Some(150_000)),
            grown("Quote", 168_000, None, Some(576_000)),
            grown("(compiled code)", 716_872, None, Some(900_000)),
        ]
    };
    assert_eq!(
        order(rows(), SortBy::NewRetained),
        [
            "Quote",
            "(string)",
            "(concatenated string)",
            "(compiled code)"
        ]
    );
    // By Size Delta (as before, and on request) the strings would be on top.
    assert_eq!(order(rows(), SortBy::SizeDelta)[1], "(string)");
}

#[test]
fn three_files_put_rows_without_kept_objects_last_whatever_the_order() {
    let rows = || {
        vec![
            grown("TransientBuffer", 900_000, Some((0, 0)), None),
            grown("(compiled code)", 700_000, Some((1_330, 515_696)), None),
            grown("Quote", 168_000, Some((3_000, 336_000)), None),
            grown("(string)", 213_104, Some((6_008, 212_824)), None),
        ]
    };
    assert_eq!(
        order(rows(), SortBy::Kept),
        ["Quote", "(string)", "(compiled code)", "TransientBuffer"]
    );
    assert_eq!(
        order(rows(), SortBy::SizeDelta),
        ["(compiled code)", "(string)", "Quote", "TransientBuffer"]
    );
}
