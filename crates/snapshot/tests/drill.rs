//! Drill-down (one object, queries, who holds a class) and the index, on hand-made graphs
//! whose answers can be worked out by hand; the same numbers against DevTools' own code are in
//! `devtools_oracle.rs`.

mod common;

use std::{
    fs,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use common::Snap;
use heapgate_snapshot::{
    Cache, IndexUse, ObjectOptions, OpenOptions, Paging, Query, Snapshot, SnapshotError, Stage,
    Strings, Work,
};

/// global (3) holds a `Store` (7) whose `items` array (9) holds three `Item`s (11, 13, 15),
/// each with a `payload` Blob (17, 19, 21); the Store also has a dictionary-style property
/// named like an e-mail address pointing at the first Item.
fn graph() -> Snap {
    let mut s = Snap::new();
    let global = s.user_root(3);
    let store = s.node("object", "Store", 7, 40);
    let items = s.node("object", "Array", 9, 16);
    s.edge(global, "property", "store", store)
        .edge(store, "property", "items", items)
        .location(store, 5, 10, 2);
    let mut item_nodes = Vec::new();
    for (k, (id, blob, size)) in [(11, 17, 100), (13, 19, 200), (15, 21, 300)]
        .into_iter()
        .enumerate()
    {
        let item = s.node("object", "Item", id, 24);
        let payload = s.node("object", "Blob", blob, size);
        s.edge(items, "element", &k.to_string(), item)
            .edge(item, "property", "payload", payload);
        item_nodes.push(item);
    }
    s.edge(store, "property", "alice@example.com", item_nodes[0]);
    s
}

/// The one index file in the cache directory `dir`.
fn index_in(dir: &Path) -> std::path::PathBuf {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "hgindex"))
        .expect("an index file")
}

fn write(dir: &Path, name: &str, snap: &Snap) -> std::path::PathBuf {
    let path = dir.join(name);
    fs::write(&path, snap.json()).unwrap();
    path
}

#[test]
fn one_object_has_its_sizes_edges_retainers_and_paths() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "g.heapsnapshot", &graph());
    let snapshot = Snapshot::open(&file).unwrap();
    let item = snapshot.object(11, &ObjectOptions::default()).unwrap();
    assert_eq!(item.object.class, "Item");
    assert_eq!(item.object.self_size, 24);
    assert_eq!(item.object.retained_size, 124, "the item and its payload");
    assert_eq!(item.edges.total, 1);
    let payload = &item.edges.items[0];
    assert_eq!(
        (payload.name.as_str(), payload.edge_type.as_str()),
        ("payload", "property")
    );
    assert_eq!((payload.node.id, payload.node.retained_size), (17, 100));
    // Held by the array and by the dictionary-style key; the key is data, hidden by default.
    assert_eq!(item.retainers.total, 2);
    let names: Vec<&str> = item
        .retainers
        .items
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert!(names.contains(&"<key>"), "{names:?}");
    assert!(!format!("{item:?}").contains("alice"), "a key leaked");
    assert_eq!(item.paths.len(), 2, "one path through each retainer");
    let shown = snapshot
        .object(
            11,
            &ObjectOptions {
                strings: Strings::Shown,
                ..ObjectOptions::default()
            },
        )
        .unwrap();
    assert!(format!("{shown:?}").contains("alice@example.com"));

    let store = snapshot.object(7, &ObjectOptions::default()).unwrap();
    assert_eq!(store.object.retained_size, 40 + 16 + 3 * 24 + 600);
    assert_eq!(store.object.distance, 2);
    assert!(store.object.location.as_deref().unwrap().ends_with(":11:3"));
    // Paging: one edge at a time, to the end.
    let mut seen = Vec::new();
    let mut paging = Paging::first(1);
    loop {
        let page = snapshot
            .object(
                7,
                &ObjectOptions {
                    edges: paging,
                    ..ObjectOptions::default()
                },
            )
            .unwrap()
            .edges;
        seen.extend(page.items.iter().map(|e| e.node.id));
        match page.next {
            Some(next) => paging.offset = next,
            None => break,
        }
    }
    assert_eq!(seen, [9, 11]);
}

#[test]
fn unknown_ids_and_classes_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "g.heapsnapshot", &graph());
    let snapshot = Snapshot::open(&file).unwrap();
    let e = snapshot.object(999, &ObjectOptions::default()).unwrap_err();
    assert!(matches!(e, SnapshotError::NoSuchObject { id: 999, .. }));
    assert_eq!(
        e.to_string(),
        format!("no object @999 in {}", file.display())
    );
    let e = snapshot.holders("Nope", None, 3).unwrap_err();
    assert!(!e.to_string().contains('\n'));
    let q = Query {
        class: Some("Nope".into()),
        ..Query::default()
    };
    assert!(matches!(
        snapshot.query(&q),
        Err(SnapshotError::NoSuchClass { .. })
    ));
}

#[test]
fn queries_sort_by_retained_size_and_filter() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "g.heapsnapshot", &graph());
    let snapshot = Snapshot::open(&file).unwrap();
    let items = snapshot
        .query(&Query {
            class: Some("Item".into()),
            ..Query::default()
        })
        .unwrap();
    let ids: Vec<u32> = items.objects.items.iter().map(|o| o.id).collect();
    assert_eq!(ids, [15, 13, 11]);
    let big = snapshot
        .query(&Query {
            min_retained_size: 250,
            ..Query::default()
        })
        .unwrap();
    let ids: Vec<u32> = big.objects.items.iter().map(|o| o.id).collect();
    assert_eq!(ids, [3, 7, 9, 15, 21], "global holds it all");
    let with_payload = snapshot
        .query(&Query {
            edge: Some("payload".into()),
            paging: Paging {
                offset: 1,
                limit: 1,
            },
            ..Query::default()
        })
        .unwrap();
    assert_eq!(with_payload.objects.total, 3);
    assert_eq!(with_payload.objects.items[0].id, 13);
    assert_eq!(with_payload.objects.next, Some(2));
    let largest = snapshot.largest(2, 2);
    assert_eq!(largest.len(), 2);
    assert_eq!(largest[0].class.name, "global");
    assert_eq!(largest[1].class.name, "Store");
    assert_eq!(largest[1].largest[0].id, 7);
    let holders = snapshot.holders("Item", None, 5).unwrap();
    assert_eq!(holders.count, 3);
    assert!(!holders.groups.is_empty());
}

#[test]
fn the_index_answers_the_same_and_is_never_trusted_when_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "g.heapsnapshot", &graph());
    let cache_dir = dir.path().join("cache");
    let options = OpenOptions::new().cache(Some(Cache::new(&cache_dir)));
    let first = Snapshot::open_with(&file, &options).unwrap();
    assert_eq!(first.index, IndexUse::Written);
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);
    let second = Snapshot::open_with(&file, &options).unwrap();
    assert_eq!(second.index, IndexUse::Loaded);
    let view = |s: &Snapshot| {
        let mut out = String::new();
        for id in [3, 7, 9, 11, 13, 15, 17] {
            out += &format!("{:?}\n", s.object(id, &ObjectOptions::default()).unwrap());
        }
        out += &format!("{:?}\n", s.summary().classes());
        out += &format!("{:?}\n", s.query(&Query::default()).unwrap());
        out += &format!("{:?}\n", s.holders("Item", None, 5).unwrap());
        out
    };
    // The reference is the snapshot in memory (no cache): once its index is written, `first`
    // reads its columns from the index too.
    let memory = Snapshot::open_with(&file, &OpenOptions::new()).unwrap();
    assert_eq!(memory.index, IndexUse::Off);
    let expected = view(&memory.snapshot);
    assert_eq!(view(&first.snapshot), expected);
    assert_eq!(view(&second.snapshot), expected);

    let index = index_in(&cache_dir);
    let good = fs::read(&index).unwrap();
    let version_at = good
        .windows(env!("CARGO_PKG_VERSION").len())
        .position(|w| w == env!("CARGO_PKG_VERSION").as_bytes())
        .unwrap();
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let damage: Vec<(&str, Damage)> = vec![
        (
            "a flipped byte",
            Box::new(|b: &mut Vec<u8>| {
                let at = b.len() - 10;
                b[at] ^= 0x55;
            }),
        ),
        (
            "truncated",
            Box::new(|b: &mut Vec<u8>| b.truncate(b.len() / 2)),
        ),
        ("empty", Box::new(|b: &mut Vec<u8>| b.clear())),
        (
            "another version",
            Box::new(move |b: &mut Vec<u8>| b[version_at] = b'9'),
        ),
        (
            "garbage",
            Box::new(|b: &mut Vec<u8>| {
                for (i, x) in b.iter_mut().enumerate().skip(8) {
                    *x = (i * 7) as u8;
                }
            }),
        ),
    ];
    for (what, damage) in damage {
        let mut bytes = good.clone();
        damage(&mut bytes);
        fs::write(&index, &bytes).unwrap();
        let opened = Snapshot::open_with(&file, &options).unwrap();
        assert_eq!(opened.index, IndexUse::Written, "{what}: rebuilt");
        assert_eq!(opened.warnings.len(), 1, "{what}: {:?}", opened.warnings);
        assert!(opened.warnings[0].contains("ignored the index"), "{what}");
        assert_eq!(view(&opened.snapshot), expected, "{what}");
        assert!(
            fs::read(&index).unwrap() == good,
            "{what}: the index is whole again"
        );
    }

    // A changed file is another source: its own index, never the old one.
    let mut changed = graph();
    let extra = changed.node("object", "Extra", 99, 1000);
    changed.edge(1, "property", "extra", extra);
    fs::write(&file, changed.json()).unwrap();
    let opened = Snapshot::open_with(&file, &options).unwrap();
    assert_eq!(opened.index, IndexUse::Written);
    assert!(
        opened
            .snapshot
            .object(99, &ObjectOptions::default())
            .is_ok()
    );
}

/// More nodes and edges than one index block (64 Ki values) holds: answers read block by block
/// from the index equal the answers from the file, on every block, and damage in a middle
/// block is found on opening.
#[test]
fn a_large_index_answers_the_same_from_every_block() {
    const ITEMS: u32 = 70_000;
    let mut s = Snap::new();
    let global = s.user_root(3);
    let store = s.node("object", "Store", 5, 40);
    let items = s.node("object", "Array", 7, 16);
    s.edge(global, "property", "store", store)
        .edge(store, "property", "items", items);
    for k in 0..ITEMS {
        let item = s.node("object", "Item", 11 + 4 * k, u64::from(24 + k % 7));
        let payload = s.node("object", "Blob", 13 + 4 * k, u64::from(100 + k % 1000));
        s.edge(items, "element", &k.to_string(), item)
            .edge(item, "property", "payload", payload);
    }
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "big.heapsnapshot", &s);
    let cache_dir = dir.path().join("cache");
    let options = OpenOptions::new().cache(Some(Cache::new(&cache_dir)));
    let first = Snapshot::open_with(&file, &options).unwrap();
    assert_eq!(first.index, IndexUse::Written);
    let view = |s: &Snapshot| {
        let mut out = String::new();
        for k in [0, 1, 16_383, 16_384, 32_767, 32_768, 50_000, ITEMS - 1] {
            for id in [11 + 4 * k, 13 + 4 * k] {
                out += &format!("{:?}\n", s.object(id, &ObjectOptions::default()).unwrap());
            }
        }
        out += &format!("{:?}\n", s.object(7, &ObjectOptions::default()).unwrap());
        let query = Query {
            min_retained_size: 1_100,
            paging: Paging::first(50),
            ..Query::default()
        };
        out += &format!("{:?}\n", s.query(&query).unwrap());
        out += &format!("{:?}\n", s.largest(3, 5));
        out += &format!("{:?}\n", s.holders("Blob", None, 5).unwrap());
        out
    };
    // The reference is the snapshot in memory (no cache): once its index is written, `first`
    // reads its columns from the index too.
    let memory = Snapshot::open_with(&file, &OpenOptions::new()).unwrap();
    assert_eq!(memory.index, IndexUse::Off);
    let expected = view(&memory.snapshot);
    assert_eq!(view(&first.snapshot), expected);
    let second = Snapshot::open_with(&file, &options).unwrap();
    assert_eq!(second.index, IndexUse::Loaded);
    assert_eq!(view(&second.snapshot), expected);

    let index = index_in(&cache_dir);
    let mut bytes = fs::read(&index).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    fs::write(&index, &bytes).unwrap();
    let opened = Snapshot::open_with(&file, &options).unwrap();
    assert_eq!(opened.index, IndexUse::Written, "a damaged block: rebuilt");
    assert!(
        opened.warnings[0].contains("damaged"),
        "{:?}",
        opened.warnings
    );
    assert_eq!(view(&opened.snapshot), expected);
}

#[test]
fn a_cache_that_cannot_be_written_costs_a_warning_not_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "g.heapsnapshot", &graph());
    // A directory under a file cannot be created, whoever runs the test.
    let blocked = file.join("cache");
    let options = OpenOptions::new().cache(Some(Cache::new(&blocked)));
    let opened = Snapshot::open_with(&file, &options).unwrap();
    assert_eq!(opened.index, IndexUse::Failed);
    assert_eq!(opened.warnings.len(), 1);
    assert!(
        opened.warnings[0].starts_with("cannot keep an index in"),
        "{}",
        opened.warnings[0]
    );
    assert!(!opened.warnings[0].contains('\n'));
    assert!(
        opened
            .snapshot
            .object(11, &ObjectOptions::default())
            .is_ok()
    );

    // A cap smaller than the index: not kept, said so.
    let small = OpenOptions::new().cache(Some(Cache::new(dir.path().join("small")).max_bytes(10)));
    let opened = Snapshot::open_with(&file, &small).unwrap();
    assert_eq!(opened.index, IndexUse::Failed);
    assert!(opened.warnings[0].contains("larger than the cache's cap"));
}

#[test]
fn eviction_keeps_the_newest_indexes_under_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let mut sizes = Vec::new();
    let files: Vec<_> = (0..4)
        .map(|i| {
            let mut g = graph();
            let extra = g.node("object", "Extra", 101 + 2 * i, 10);
            g.edge(1, "property", "extra", extra);
            write(dir.path(), &format!("{i}.heapsnapshot"), &g)
        })
        .collect();
    for file in &files {
        let opened = Snapshot::open_with(
            file,
            &OpenOptions::new().cache(Some(Cache::new(&cache_dir))),
        )
        .unwrap();
        assert_eq!(opened.index, IndexUse::Written);
        sizes.push(dir_size(&cache_dir));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let one = sizes[0];
    // Room for two: the two oldest go.
    let cap = Cache::new(&cache_dir).max_bytes(one * 2 + one / 2);
    let extra = write(dir.path(), "x.heapsnapshot", &graph());
    let opened = Snapshot::open_with(&extra, &OpenOptions::new().cache(Some(cap))).unwrap();
    assert_eq!(opened.index, IndexUse::Written);
    assert!(dir_size(&cache_dir) <= one * 2 + one / 2);
    let reuse = |file: &Path| {
        Snapshot::open_with(
            file,
            &OpenOptions::new().cache(Some(Cache::new(&cache_dir))),
        )
        .unwrap()
        .index
    };
    assert_eq!(reuse(&files[3]), IndexUse::Loaded, "the newest stays");
    assert_eq!(reuse(&files[0]), IndexUse::Written, "the oldest went");
}

fn dir_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn progress_is_reported_and_cancellation_stops_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "g.heapsnapshot", &graph());
    let stages = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&stages);
    let work = Work::new().on_progress(move |p| seen.lock().unwrap().push(p.stage));
    let options = OpenOptions::new()
        .cache(Some(Cache::new(dir.path().join("cache"))))
        .work(work);
    Snapshot::open_with(&file, &options).unwrap();
    let stages = stages.lock().unwrap().clone();
    for stage in [Stage::Reading, Stage::Analysing, Stage::WritingIndex] {
        assert!(stages.contains(&stage), "{stage:?} in {stages:?}");
    }

    let flag = Arc::new(AtomicBool::new(false));
    flag.store(true, Ordering::Relaxed);
    let options = OpenOptions::new().work(Work::new().cancel_when(flag));
    assert!(matches!(
        Snapshot::open_with(&file, &options),
        Err(SnapshotError::Cancelled)
    ));
}

#[test]
fn a_truncated_file_is_an_error_and_leaves_no_index() {
    let dir = tempfile::tempdir().unwrap();
    let json = graph().json();
    let file = dir.path().join("cut.heapsnapshot");
    fs::write(&file, &json[..json.len() / 2]).unwrap();
    let cache_dir = dir.path().join("cache");
    let options = OpenOptions::new().cache(Some(Cache::new(&cache_dir)));
    let e = Snapshot::open_with(&file, &options)
        .err()
        .expect("an error");
    assert!(matches!(e, SnapshotError::Truncated { .. }), "{e}");
    assert!(!cache_dir.exists() || dir_size(&cache_dir) == 0);
}
