//! "Who holds it" on real Node.js snapshots: three snapshots of one process with known leaks,
//! a transient allocation and objects deleted between the second and the third, through
//! `heapgate diff A B C` and `heapgate summary` on the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use heapgate_tests::{Cmd, node_or_skip};
use serde_json::Value;

const COUNT: usize = 3000;

/// A (baseline), B (after the leaks and transient work), C (transient work freed, half of the
/// `DeletedLater` objects deleted). Each leak is held in its own way.
const SCRIPT: &str = r#"
const v8 = require("v8");
const { EventEmitter } = require("events");
const [dir, n] = [process.argv[2], +process.argv[3]];

class LeakedRequestContext {
  constructor(i) { this.id = i; this.url = "/item/" + i; }
}
class ListenerPayload { constructor(i) { this.n = i; } }
class TickRecord { constructor(i) { this.n = i; this.at = i + 0.5; } }
class TransientBuffer { constructor(i) { this.i = i; this.data = [i, i, i]; } }
class DeletedLater { constructor(i) { this.i = i; } }

// A module-level Map, filled by a request handler.
const requestCache = new Map();
const bus = new EventEmitter();
function handle(i) { requestCache.set("req" + i, new LeakedRequestContext(i)); }
bus.on("request", handle);

// An EventEmitter listener closure that keeps what it receives.
function subscribe() {
  const received = [];
  bus.on("message", function onMessage(m) { received.push(m); });
}
// A setInterval closure that keeps records.
function startTicker() {
  const ticks = [];
  for (let i = 0; i < n; i++) ticks.push(new TickRecord(i));
  return setInterval(function onTick() { ticks.push(new TickRecord(ticks.length)); }, 1 << 30);
}

let scratch = [];
const doomed = new Map();
const snap = (name) => v8.writeHeapSnapshot(`${dir}/${name}.heapsnapshot`);
setImmediate(() => {
  snap("a");
  for (let i = 0; i < n; i++) bus.emit("request", i);
  subscribe();
  for (let i = 0; i < n; i++) bus.emit("message", new ListenerPayload(i));
  startTicker();
  for (let i = 0; i < n; i++) scratch.push(new TransientBuffer(i));
  for (let i = 0; i < n; i++) doomed.set(i, new DeletedLater(i));
  setImmediate(() => {
    snap("b");
    scratch = [];
    for (let i = 0; i < n; i += 2) doomed.delete(i);
    setImmediate(() => { snap("c"); process.exit(0); });
  });
});
"#;

/// The three snapshots, taken once for all tests of this file.
fn series() -> Option<&'static [PathBuf; 3]> {
    static SERIES: OnceLock<Option<(tempfile::TempDir, [PathBuf; 3])>> = OnceLock::new();
    SERIES
        .get_or_init(|| {
            let node = node_or_skip("leaks (real Node.js snapshots)")?;
            let dir = tempfile::tempdir().unwrap();
            let script = dir.path().join("app.js");
            std::fs::write(&script, SCRIPT).unwrap();
            let out = Command::new(node)
                .arg(&script)
                .arg(dir.path())
                .arg(COUNT.to_string())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "node: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let files = ["a", "b", "c"].map(|n| dir.path().join(format!("{n}.heapsnapshot")));
            Some((dir, files))
        })
        .as_ref()
        .map(|(_, files)| files)
}

fn heapgate(args: &[&str]) -> Output {
    Cmd::heapgate().args(args).command().output().unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `heapgate diff A B C --json --retainers 12`, parsed, once.
fn three() -> Option<&'static Value> {
    static JSON: OnceLock<Option<Value>> = OnceLock::new();
    JSON.get_or_init(|| {
        let [a, b, c] = series()?;
        let out = heapgate(&[
            "diff",
            path(a),
            path(b),
            path(c),
            "--json",
            "--retainers",
            "12",
            "--top",
            "100",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(serde_json::from_slice(&out.stdout).unwrap())
    })
    .as_ref()
}

fn class<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no row for {name}"))
}

/// The steps of the class's largest retainer group as `(node, edge, edge_type)`.
fn first_path(row: &Value) -> Vec<(String, String, String)> {
    let groups = row["retainers"].as_array().unwrap();
    assert!(!groups.is_empty(), "no retainers for {}", row["name"]);
    groups[0]["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
            (text("node"), text("edge"), text("edge_type"))
        })
        .collect()
}

fn has_step(path: &[(String, String, String)], edge: &str, edge_type: &str) -> bool {
    path.iter().any(|s| s.1 == edge && s.2 == edge_type)
}

#[test]
fn a_map_leak_is_kept_and_held_by_the_module_level_variable() {
    let Some(json) = three() else { return };
    let row = class(json, "LeakedRequestContext");
    assert_eq!(row["new_count"], COUNT);
    assert_eq!(row["kept_count"], COUNT);
    assert!(row["kept_retained_size"].as_u64().unwrap() >= COUNT as u64 * 16);
    // Location of the class: the script's name, line and column.
    let script = row["script"].as_str().unwrap();
    assert!(script.ends_with("app.js"), "{script}");
    let group = &row["retainers"][0];
    assert_eq!(
        group["count"], COUNT,
        "one group for all entries of the Map"
    );
    let path = first_path(row);
    assert!(has_step(&path, "requestCache", "context"), "{path:?}");
    assert!(has_step(&path, "table", "internal"), "{path:?}");
    assert_eq!(path.last().unwrap().0, "LeakedRequestContext");
    // The closure that holds the module's scope says where it is defined.
    let steps = group["path"].as_array().unwrap();
    assert!(
        steps.iter().any(|s| s["location"]
            .as_str()
            .is_some_and(|l| l.contains("app.js:"))),
        "{steps:?}"
    );
}

#[test]
fn a_listener_closure_and_an_interval_closure_are_named_as_holders() {
    let Some(json) = three() else { return };
    let listener = class(json, "ListenerPayload");
    assert_eq!(listener["kept_count"], COUNT);
    let path = first_path(listener);
    assert!(has_step(&path, "received", "context"), "{path:?}");
    let ticks = class(json, "TickRecord");
    assert_eq!(ticks["kept_count"], COUNT);
    let path = first_path(ticks);
    assert!(has_step(&path, "ticks", "context"), "{path:?}");
    let names: Vec<&str> = ticks["retainers"][0]["path"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(names.contains(&"onTick"), "{names:?}");
}

#[test]
fn transient_objects_are_not_kept_and_deleted_ones_drop_out() {
    let Some(json) = three() else { return };
    let transient = class(json, "TransientBuffer");
    assert_eq!(transient["new_count"], COUNT);
    assert_eq!(transient["kept_count"], 0);
    assert_eq!(transient["kept_retained_size"], 0);
    assert!(transient["retainers"].as_array().unwrap().is_empty());
    let deleted = class(json, "DeletedLater");
    assert_eq!(deleted["new_count"], COUNT);
    assert_eq!(deleted["kept_count"], COUNT / 2);
    // Each retains just itself: the kept half of what was allocated.
    let each = deleted["alloc_size"].as_u64().unwrap() / COUNT as u64;
    assert_eq!(deleted["kept_retained_size"], (COUNT / 2) as u64 * each);
}

#[test]
fn the_table_names_the_leak_its_kept_count_and_its_holder() {
    let Some([a, b, c]) = series() else { return };
    // The closures, contexts and arrays created with the leaks retain more, so they rank first.
    let out = heapgate(&["diff", path(a), path(b), path(c), "--retainers", "5"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let header = stdout.lines().next().unwrap();
    assert!(header.contains("# Kept") && header.contains("Retained Size"));
    let row = stdout
        .lines()
        .take_while(|l| !l.starts_with("Total"))
        .find(|l| l.starts_with("LeakedRequestContext ("))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(row.contains("app.js:"), "{row}");
    assert!(row.contains(&format!("  {COUNT}  ")), "{row}");
    assert!(
        stdout.contains("─ requestCache (context) → Map"),
        "{stdout}"
    );
}

/// The class names of a text table's rows, in order.
fn table_rows(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("Total"))
        .map(|l| l.split("  ").next().unwrap().to_owned())
        .collect()
}

#[test]
fn two_files_rank_the_holder_class_above_the_strings_it_holds_and_name_its_holder() {
    let Some([a, b, _]) = series() else { return };
    let out = heapgate(&["diff", path(a), path(b), "--top", "100"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let rows = table_rows(&stdout);
    let rank = |name: &str| {
        rows.iter()
            .position(|r| r.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in {rows:?}"))
    };
    // Each LeakedRequestContext holds its url string: by what the new objects retain it ranks
    // above the strings (by Size Delta it would not: 3000 strings outweigh 3000 small objects).
    let leak = rank("LeakedRequestContext (");
    for strings in ["(string)", "(concatenated string)"] {
        if rows.iter().any(|r| r == strings) {
            assert!(leak < rank(strings), "{rows:?}");
        }
    }
    assert!(stdout.lines().next().unwrap().ends_with("New Retained"));
    // The one-line holder, as the HTML report and the demo say it.
    let answer = stdout
        .lines()
        .find(|l| l.starts_with("Who holds it: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    // (Between A and B the transient buffers are new too: their arrays may be the top class.)
    assert!(
        answer.contains(" new objects (") && answer.contains(", held by "),
        "{answer}"
    );
}

#[test]
fn three_files_put_rows_without_kept_objects_below_the_kept_growth_whatever_the_order() {
    let Some([a, b, c]) = series() else { return };
    let out = heapgate(&[
        "diff",
        path(a),
        path(b),
        path(c),
        "--sort",
        "size",
        "--top",
        "100",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let rows = table_rows(&stdout);
    // TransientBuffer grew the most by Size Delta but none of it was kept.
    let transient = rows
        .iter()
        .position(|r| r.starts_with("TransientBuffer ("))
        .unwrap();
    let leak = rows
        .iter()
        .position(|r| r.starts_with("LeakedRequestContext ("))
        .unwrap();
    assert!(leak < transient, "{rows:?}");
    // Every row above it has kept objects.
    let kept_column = |line: &str| line.split_whitespace().rev().nth(1).map(str::to_owned);
    for line in stdout.lines().skip(1).take(transient) {
        assert_ne!(kept_column(line).as_deref(), Some("0"), "{line}");
    }
}

#[test]
fn fail_on_growth_exits_3_and_names_the_classes() {
    let Some([a, b, c]) = series() else { return };
    let out = heapgate(&[
        "diff",
        path(a),
        path(b),
        path(c),
        "--retainers",
        "0",
        "--fail-on-growth",
        "64KiB",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("LeakedRequestContext"), "{stderr}");
    assert!(!stderr.contains("TransientBuffer"), "{stderr}");
    assert!(!out.stdout.is_empty(), "the table is still printed");
    let out = heapgate(&[
        "diff",
        path(a),
        path(b),
        path(c),
        "--retainers",
        "0",
        "--fail-on-growth",
        "1GiB",
    ]);
    assert_eq!(out.status.code(), Some(0));
    // Two files: the retained size delta counts.
    let out = heapgate(&[
        "diff",
        path(a),
        path(c),
        "--retainers",
        "0",
        "--fail-on-growth",
        "64KiB",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        heapgate(&["diff", path(a), path(c), "--fail-on-growth", "lots"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn summary_lists_classes_by_retained_size() {
    let Some([_, _, c]) = series() else { return };
    let out = heapgate(&["summary", path(c), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let classes = json["classes"].as_array().unwrap();
    let retained: Vec<u64> = classes
        .iter()
        .map(|c| c["retained_size"].as_u64().unwrap())
        .collect();
    assert!(retained.windows(2).all(|w| w[0] >= w[1]));
    let leaked = classes
        .iter()
        .find(|c| c["name"] == "LeakedRequestContext")
        .unwrap();
    assert_eq!(leaked["count"], COUNT);
    assert!(leaked["retained_size"].as_u64() > leaked["self_size"].as_u64());
    let out = heapgate(&["summary", path(c), "--top", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    assert!(stdout.starts_with("Class"), "{stdout}");
}

#[test]
fn bad_third_files_are_one_line_and_exit_1() {
    let Some([a, b, c]) = series() else { return };
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("cut.heapsnapshot");
    let full = std::fs::read(c).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 3]).unwrap();
    let foreign = dir.path().join("package.json");
    std::fs::write(&foreign, r#"{"name": "x", "version": "1.0.0"}"#).unwrap();
    for bad in [&truncated, &foreign] {
        for args in [
            vec!["diff", path(a), path(b), path(bad)],
            vec!["summary", path(bad)],
        ] {
            let out = heapgate(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(stderr.contains(path(bad)), "{stderr}");
        }
    }
    // Four files is a usage error.
    assert_eq!(
        heapgate(&["diff", path(a), path(b), path(c), path(c)])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn snapshots_of_another_process_are_warned_about() {
    let Some([a, b, _]) = series() else { return };
    // Another process: the same script run again.
    let other = tempfile::tempdir().unwrap();
    let script = other.path().join("app.js");
    std::fs::write(&script, SCRIPT).unwrap();
    let node = node_or_skip("leaks::snapshots_of_another_process_are_warned_about").unwrap();
    let status = Command::new(node)
        .arg(&script)
        .arg(other.path())
        .arg("500")
        .status()
        .unwrap();
    assert!(status.success());
    let foreign = other.path().join("c.heapsnapshot");
    let out = heapgate(&["diff", path(a), path(b), path(&foreign), "--retainers", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("heapgate: warning: "), "{stderr}");
    assert!(stderr.contains(path(&foreign)), "{stderr}");
}

/// The same files give the same output, retainer groups and their order included: many groups
/// tie on size and count, and their order must not come from a hash map's iteration (it did).
#[test]
fn the_same_files_give_the_same_report() {
    let Some([a, b, c]) = series() else { return };
    let args = [
        "diff",
        path(a),
        path(b),
        path(c),
        "--json",
        "--retainers",
        "30",
        "--top",
        "30",
    ];
    let first = heapgate(&args);
    assert_eq!(first.status.code(), Some(0));
    for run in 1..4 {
        let again = heapgate(&args);
        assert!(
            again.stdout == first.stdout,
            "run {run} printed another report"
        );
    }
}
