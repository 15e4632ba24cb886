//! heapgate against Chrome DevTools' own heap snapshot code (`tests/devtools-oracle`: DevTools'
//! `HeapSnapshot.ts` from npm, run by Node.js). On real Node.js snapshots and on synthetic edge
//! cases, heapgate's numbers must be DevTools' own: every node's retained size, immediate
//! dominator, distance and shallow size after folding; every Summary row (count, shallow size,
//! retained size); the retainer chain the Retainers pane opens first; and `# Kept` against
//! DevTools' "Objects allocated between A and B" filter.
//!
//! Needs `node` (20 or newer) and the oracle's bundle: run `tests/devtools-oracle/install.sh`.
//! Without them the tests print a loud SKIPPED line and pass, except under CI (`CI=true`), where
//! they fail.

use std::{
    collections::HashMap,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use heapgate_snapshot::{CompareOptions, Location, Snapshot, compare, testing};
use serde_json::Value;

/// The oracle's directory: scripts, fixtures and (once installed) the bundle.
fn oracle_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/devtools-oracle")
}

/// Whether node and the installed oracle are there; prints SKIPPED (or panics under CI) if not.
fn oracle_available(test: &str) -> bool {
    let node_runs = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let bundle = oracle_dir().join("dist/devtools-heap-snapshot.mjs");
    let missing = if !node_runs {
        "node is not on PATH"
    } else if !bundle.is_file() {
        "the DevTools oracle is not installed (run tests/devtools-oracle/install.sh)"
    } else {
        return true;
    };
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{test}: {missing}, and CI=true: the DevTools oracle tests must run in CI");
    }
    // Straight to the process's stderr: libtest captures eprintln! output of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: {missing}; heapgate was not compared with DevTools ***\n"
    );
    false
}

/// Runs `node SCRIPT ARGS…` from the oracle's directory and returns its stdout.
fn node(script: &str, args: &[&str]) -> String {
    let out = Command::new("node")
        .arg(oracle_dir().join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node {script}: {e}"));
    assert!(
        out.status.success(),
        "node {script} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("node prints UTF-8")
}

/// DevTools' answers for `file` (see tests/devtools-oracle/compare.md for the fields).
fn oracle(file: &Path, args: &[&str]) -> Value {
    let mut all = vec![file.to_str().expect("UTF-8 temp path")];
    all.extend_from_slice(args);
    serde_json::from_str(&node("oracle.mjs", &all)).expect("the oracle prints JSON")
}

fn num(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// DevTools' public class key: `",Name"`, or `"scriptId,line,column,Name"` for located objects.
fn class_key(name: &str, location: Option<Location>) -> String {
    match location {
        Some(l) => format!("{},{},{},{name}", l.script_id, l.line, l.column),
        None => format!(",{name}"),
    }
}

/// Every node (retained size, dominator, distance, folded shallow size) and every Summary row
/// of `file` must equal the oracle's; returns how many nodes were compared.
fn assert_matches_devtools(file: &Path) -> usize {
    let expected = oracle(file, &["--nodes", "1000000000"]);
    let nodes = expected["nodes"].as_array().expect("nodes");
    assert_eq!(
        nodes.len() as i64,
        num(&expected["node_count"]),
        "every node"
    );

    let retained: HashMap<u32, u64> = testing::retained_sizes(file).unwrap().into_iter().collect();
    let dominators: HashMap<u32, u32> = testing::dominators(file).unwrap().into_iter().collect();
    let distances: HashMap<u32, i32> = testing::distances(file).unwrap().into_iter().collect();
    let shallow: HashMap<u32, u32> = testing::shallow_sizes(file).unwrap().into_iter().collect();
    let mut wrong = Vec::new();
    for n in nodes {
        let id = u32::try_from(num(&n["id"])).expect("u32 id");
        let ours = (
            retained.get(&id).map(|&r| r as i64),
            dominators.get(&id).map(|&d| i64::from(d)),
            distances.get(&id).map(|&d| i64::from(d)),
            shallow.get(&id).map(|&s| i64::from(s)),
        );
        let devtools = (
            Some(num(&n["retained"])),
            Some(num(&n["dominator_id"])),
            Some(num(&n["distance"])),
            Some(num(&n["self"])),
        );
        if ours != devtools {
            wrong.push(format!(
                "@{id} {}: (retained, dominator, distance, shallow) heapgate {ours:?}, DevTools {devtools:?}",
                text(&n["name"])
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{}: {} of {} nodes differ from DevTools, e.g.\n{}",
        file.display(),
        wrong.len(),
        nodes.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );

    let ours: HashMap<String, (i64, i64, i64)> = Snapshot::open(file)
        .unwrap()
        .summary()
        .classes()
        .into_iter()
        .map(|c| {
            (
                class_key(&c.name, c.location),
                (c.count as i64, c.self_size as i64, c.retained_size as i64),
            )
        })
        .collect();
    let rows = expected["classes"].as_array().expect("classes");
    for row in rows {
        let key = text(&row["key"]);
        let devtools = (num(&row["count"]), num(&row["self"]), num(&row["maxRet"]));
        assert_eq!(
            ours.get(key),
            Some(&devtools),
            "{}: Summary row {key} (count, shallow, retained) differs from DevTools",
            file.display()
        );
    }
    assert_eq!(
        ours.len(),
        rows.len(),
        "{}: heapgate has Summary rows DevTools does not",
        file.display()
    );
    nodes.len()
}

#[test]
fn every_node_and_summary_row_is_devtools_own() {
    if !oracle_available("every_node_and_summary_row_is_devtools_own") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let edge = dir.path().join("edge-cases.heapsnapshot");
    let leaky = dir.path().join("leaky.heapsnapshot");
    let varied = dir.path().join("varied.heapsnapshot");
    node("fixtures/edge-cases.mjs", &[edge.to_str().unwrap()]);
    node("fixtures/leaky.cjs", &[leaky.to_str().unwrap(), "1000"]);
    node("fixtures/varied.cjs", &[varied.to_str().unwrap(), "300"]);
    assert_eq!(assert_matches_devtools(&edge), 18);
    for file in [&leaky, &varied] {
        assert!(assert_matches_devtools(file) > 10_000, "a real heap");
    }
}

#[test]
fn first_retainer_chains_are_the_ones_devtools_opens() {
    if !oracle_available("first_retainer_chains_are_the_ones_devtools_opens") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let leaky = dir.path().join("leaky.heapsnapshot");
    let varied = dir.path().join("varied.heapsnapshot");
    node("fixtures/leaky.cjs", &[leaky.to_str().unwrap(), "1000"]);
    node("fixtures/varied.cjs", &[varied.to_str().unwrap(), "300"]);
    let cases: [(&Path, &[&str]); 2] = [
        (
            &leaky,
            &[
                "CachedEntry",
                "ListenerPayload",
                "TickRecord",
                "Map",
                "Timeout",
            ],
        ),
        (
            &varied,
            &[
                "Item",
                "WeakRef",
                "ArrayBuffer",
                "Uint32Array",
                "Promise",
                "{url, method}",
                "{blob}",
            ],
        ),
    ];
    let mut compared = 0;
    for (file, classes) in cases {
        let mut args = vec!["--nodes", "0", "--depth", "64", "--per-class", "4"];
        for class in classes {
            args.extend_from_slice(&["--class", class]);
        }
        let expected = oracle(file, &args);
        for (id, chain) in expected["retainers"].as_object().expect("retainers") {
            let id: u32 = id.parse().expect("numeric id");
            // The oracle lists the chain root side first; heapgate from the object up.
            let devtools: Vec<(u32, String, String)> = chain
                .as_array()
                .expect("chain")
                .iter()
                .rev()
                .map(|s| {
                    (
                        u32::try_from(num(&s["id"])).expect("u32 id"),
                        text(&s["edge"]).to_owned(),
                        text(&s["edge_type"]).to_owned(),
                    )
                })
                .collect();
            let ours = testing::first_retainer_chain(file, id).unwrap();
            assert_eq!(
                ours.as_ref(),
                Some(&devtools),
                "{}: first retainer chain of @{id} differs from DevTools'",
                file.display()
            );
            // The path heapgate prints names each node by its Summary class (a synthetic root
            // by its own name, where DevTools' class is "(synthetic)").
            let path = testing::first_retainer_path(file, id).unwrap().unwrap();
            let labels: Vec<&str> = path.iter().map(|s| s.node.as_str()).collect();
            let devtools_labels: Vec<&str> = expected["paths"][id.to_string()]
                .as_array()
                .expect("path")
                .iter()
                .map(|s| match text(&s["node"]) {
                    "(synthetic)" => text(&s["name"]),
                    class => class,
                })
                .collect();
            assert_eq!(labels, devtools_labels, "path of @{id}");
            compared += 1;
        }
    }
    assert!(compared >= 40, "only {compared} chains compared");
}

#[test]
fn kept_is_devtools_objects_allocated_between_a_and_b_on_c() {
    if !oracle_available("kept_is_devtools_objects_allocated_between_a_and_b_on_c") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    node(
        "fixtures/series.cjs",
        &[dir.path().to_str().unwrap(), "400"],
    );
    let [a, b, c] = ["a", "b", "c"].map(|n| dir.path().join(format!("{n}.heapsnapshot")));
    let expected = oracle(
        &c,
        &[
            "--nodes",
            "0",
            "--between",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
        ],
    );
    let devtools: HashMap<&str, (i64, i64)> = expected["filtered_classes"]
        .as_array()
        .expect("filtered_classes")
        .iter()
        .map(|r| (text(&r["key"]), (num(&r["count"]), num(&r["maxRet"]))))
        .collect();
    let options = CompareOptions {
        retainer_classes: 0,
        ..CompareOptions::default()
    };
    let rows = compare(&[&a, &b, &c], &options).unwrap().diff.classes;
    // The fixture's classes: KeptRecord all kept, HalfRecord half, TransientRecord and
    // EarlyRecord none (see fixtures/series.cjs).
    let mut seen = 0;
    for row in rows.iter().filter(|r| r.name.ends_with("Record")) {
        let key = class_key(&row.name, row.location);
        let ours = (
            row.kept_count.map_or(-1, |k| k as i64),
            row.kept_retained_size.map_or(-1, |k| k as i64),
        );
        let theirs = devtools.get(key.as_str()).copied().unwrap_or((0, 0));
        assert_eq!(ours, theirs, "{key}: (# Kept, kept retained size)");
        seen += 1;
    }
    assert!(seen >= 3, "the fixture's Record classes are rows");
    assert_eq!(
        devtools.get(",KeptRecord"),
        None,
        "KeptRecord has a location"
    );
    assert!(
        devtools
            .iter()
            .any(|(k, &(count, _))| k.ends_with(",KeptRecord") && count == 400),
        "DevTools keeps all 400 KeptRecord"
    );
}

/// `heapgate inspect FILE @ID` against DevTools: for objects of the classes a leak hunt looks
/// at and a sample of every kind of node (holders with many retainers among them), the object's
/// retained size, distance, folded self size and dominator, every retainer in the Retainers
/// pane's order (with its edge, distance and retained size) and every outgoing edge (with its
/// target's class, distance and retained size) must be DevTools' own. The same answers must
/// come back from the index, and an id from another snapshot must be refused.
#[test]
fn object_views_are_devtools_own_and_survive_the_index() {
    if !oracle_available("object_views_are_devtools_own_and_survive_the_index") {
        return;
    }
    use heapgate_snapshot::{Cache, IndexUse, ObjectOptions, OpenOptions, Paging, Strings};

    let dir = tempfile::tempdir().unwrap();
    let leaky = dir.path().join("leaky.heapsnapshot");
    let varied = dir.path().join("varied.heapsnapshot");
    node("fixtures/leaky.cjs", &[leaky.to_str().unwrap(), "1000"]);
    node("fixtures/varied.cjs", &[varied.to_str().unwrap(), "300"]);
    let all = ObjectOptions {
        edges: Paging::first(usize::MAX),
        retainers: Paging::first(usize::MAX),
        paths: 0,
        strings: Strings::Shown,
    };
    let options = OpenOptions::new().cache(Some(Cache::new(dir.path().join("cache"))));
    let mut compared = 0;
    let mut retainers_compared = 0;
    for (file, classes) in [
        (&leaky, &["CachedEntry", "Map", "Timeout"][..]),
        (
            &varied,
            &["Item", "WeakRef", "Promise", "{url, method}"][..],
        ),
    ] {
        // A sample of nodes first (their ids), then the objects in detail.
        let sample = oracle(file, &["--nodes", "40"]);
        let mut ids: Vec<String> = sample["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| num(&n["id"]).to_string())
            .collect();
        ids.sort();
        ids.dedup();
        let joined = ids.join(",");
        let mut args = vec!["--nodes", "0", "--per-class", "3", "--ids", &joined];
        for class in classes {
            args.extend_from_slice(&["--class", class]);
        }
        let expected = oracle(file, &args);
        let nodes: HashMap<i64, &Value> = expected["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| (num(&n["id"]), n))
            .collect();
        // In memory (no cache); as just written (its columns then read from the new index);
        // and from the index on a later open.
        let memory = Snapshot::open_with(file, &OpenOptions::new()).unwrap();
        assert_eq!(memory.index, IndexUse::Off);
        let fresh = Snapshot::open_with(file, &options).unwrap();
        assert_eq!(fresh.index, IndexUse::Written);
        let indexed = Snapshot::open_with(file, &options).unwrap();
        assert_eq!(indexed.index, IndexUse::Loaded);
        for (id, detail) in expected["objects"].as_object().expect("objects") {
            let id: u32 = id.parse().expect("numeric id");
            let view = memory.snapshot.object(id, &all).unwrap();
            assert_eq!(
                fresh.snapshot.object(id, &all).unwrap(),
                view,
                "@{id} as the index was written"
            );
            assert_eq!(
                indexed.snapshot.object(id, &all).unwrap(),
                view,
                "@{id} from the index"
            );
            let n = nodes[&i64::from(id)];
            let o = &view.object;
            assert_eq!(
                (
                    o.retained_size as i64,
                    i64::from(o.distance),
                    o.self_size as i64,
                    view.dominator
                        .as_ref()
                        .map_or(i64::from(id), |d| i64::from(d.id)),
                ),
                (
                    num(&n["retained"]),
                    num(&n["distance"]),
                    num(&n["self"]),
                    num(&n["dominator_id"])
                ),
                "{}: @{id} {} (retained, distance, self, dominator)",
                file.display(),
                text(&n["name"])
            );
            let devtools: Vec<(i64, String, String, i64, i64)> = detail["retainers"]
                .as_array()
                .expect("retainers")
                .iter()
                .map(|r| {
                    (
                        num(&r["id"]),
                        text(&r["edge"]).to_owned(),
                        text(&r["edge_type"]).to_owned(),
                        num(&r["distance"]),
                        num(&r["retained"]),
                    )
                })
                .collect();
            let ours: Vec<(i64, String, String, i64, i64)> = view
                .retainers
                .items
                .iter()
                .map(|r| {
                    (
                        i64::from(r.node.id),
                        r.name.clone(),
                        r.edge_type.clone(),
                        i64::from(r.node.distance),
                        r.node.retained_size as i64,
                    )
                })
                .collect();
            // DevTools orders retainers at the same distance by their names; a string's name
            // is its contents, which heapgate never reads. Where a string is among them, that
            // run of retainers is compared as a set.
            let strings: Vec<i64> = detail["retainers"]
                .as_array()
                .expect("retainers")
                .iter()
                .filter(|r| text(&r["class"]).contains("string"))
                .map(|r| num(&r["distance"]))
                .collect();
            let order = |list: &[(i64, String, String, i64, i64)]| {
                let mut list = list.to_vec();
                list.sort_by(|a, b| {
                    a.3.cmp(&b.3).then_with(|| {
                        if strings.contains(&a.3) {
                            a.cmp(b)
                        } else {
                            std::cmp::Ordering::Equal
                        }
                    })
                });
                list
            };
            assert_eq!(
                order(&ours),
                order(&devtools),
                "{}: retainers of @{id}",
                file.display()
            );
            retainers_compared += ours.len();
            let devtools: Vec<(i64, String, String, String, i64, i64)> = detail["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .map(|e| {
                    let class = text(&e["class"]);
                    (
                        num(&e["id"]),
                        // heapgate does not keep the names of weak edges.
                        if text(&e["edge_type"]) == "weak" {
                            String::new()
                        } else {
                            text(&e["edge"]).to_owned()
                        },
                        text(&e["edge_type"]).to_owned(),
                        class.to_owned(),
                        num(&e["distance"]),
                        num(&e["retained"]),
                    )
                })
                .collect();
            let ours: Vec<(i64, String, String, String, i64, i64)> = view
                .edges
                .items
                .iter()
                .zip(&devtools)
                .map(|(e, d)| {
                    (
                        i64::from(e.node.id),
                        if e.edge_type == "weak" {
                            String::new()
                        } else {
                            e.name.clone()
                        },
                        e.edge_type.clone(),
                        // A synthetic node is labelled by its name where DevTools' class is
                        // "(synthetic)".
                        if d.3 == "(synthetic)" {
                            d.3.clone()
                        } else {
                            e.node.class.clone()
                        },
                        i64::from(e.node.distance),
                        e.node.retained_size as i64,
                    )
                })
                .collect();
            assert_eq!(view.edges.total, devtools.len(), "edges of @{id}");
            assert_eq!(ours, devtools, "{}: edges of @{id}", file.display());
            compared += 1;
        }
        // An id this snapshot does not have (the other fixture's objects are elsewhere).
        let max = nodes.keys().max().copied().unwrap_or_default();
        let foreign = u32::try_from(max + 1_000_001).unwrap();
        assert!(matches!(
            fresh.snapshot.object(foreign, &all),
            Err(heapgate_snapshot::SnapshotError::NoSuchObject { .. })
        ));
    }
    eprintln!("object views: {compared} objects, {retainers_compared} retainers, as DevTools");
    assert!(compared >= 60, "only {compared} objects compared");
    assert!(
        retainers_compared >= 60,
        "only {retainers_compared} retainers compared"
    );
}
