//! Bad input gives one clear error, never a panic; odd but valid input loads.

mod common;

use std::io::Write;

use common::Snap;
use heapgate_snapshot::{SnapshotError, Summary, load};

fn read(text: &str) -> Result<Summary, SnapshotError> {
    Summary::from_reader(text.as_bytes(), "x.heapsnapshot")
}

fn reason(text: &str) -> String {
    match read(text) {
        Err(SnapshotError::NotASnapshot { reason, .. }) => reason,
        other => panic!("expected NotASnapshot, got {other:?}"),
    }
}

fn valid() -> String {
    let mut s = Snap::new();
    let o = s.node("object", "Request", 3, 40);
    let t = s.node("string", "text", 5, 20);
    s.edge(o, "property", "body", t);
    s.json()
}

#[test]
fn a_cut_off_file_is_truncated() {
    let text = valid();
    for cut in [1, text.len() / 3, text.len() / 2, text.len() - 1] {
        match read(&text[..cut]) {
            Err(e @ SnapshotError::Truncated { .. }) => {
                assert!(
                    e.to_string()
                        .starts_with("x.heapsnapshot: truncated: the file ends at line"),
                    "{e}"
                );
            }
            other => panic!("cut at {cut}: expected Truncated, got {other:?}"),
        }
    }
}

#[test]
fn other_text_is_not_json() {
    let e = read("<html><body>502 Bad Gateway</body></html>").unwrap_err();
    assert!(
        matches!(
            e,
            SnapshotError::NotJson {
                line: 1,
                column: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "x.heapsnapshot: not a heap snapshot: invalid JSON at line 1, column 1"
    );
    let broken = valid().replacen("\"nodes\":[", "\"nodes\":[,", 1);
    assert!(matches!(read(&broken), Err(SnapshotError::NotJson { .. })));
    let trailing = format!("{} garbage", valid());
    assert!(matches!(
        read(&trailing),
        Err(SnapshotError::NotJson { .. })
    ));
}

#[test]
fn json_that_is_not_a_snapshot_says_what_is_missing() {
    assert_eq!(reason(""), "the file is empty");
    assert_eq!(
        reason("[1, 2]"),
        "the file is JSON, but not an object as a snapshot is"
    );
    assert_eq!(reason("{}"), "no \"snapshot\" in the file");
    assert_eq!(reason("{\"answer\": 42}"), "no \"snapshot\" in the file");

    let text = valid();
    let without = |key: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let order = ["snapshot", "nodes", "edges", "locations", "strings"];
        let parts: Vec<String> = order
            .iter()
            .filter(|k| **k != key)
            .map(|k| format!("\"{k}\":{}", v[k]))
            .collect();
        format!("{{{}}}", parts.join(","))
    };
    assert_eq!(
        reason(&without("nodes")),
        "\"edges\" comes before \"nodes\""
    );
    assert_eq!(
        reason(&without("edges")),
        "\"strings\" comes before \"nodes\" and \"edges\""
    );
    assert_eq!(reason(&without("strings")), "no \"strings\" in the file");
    assert_eq!(
        reason(&without("snapshot")),
        "\"nodes\" comes before \"snapshot\""
    );
    // `locations` is optional (older V8 versions do not write it).
    assert!(read(&without("locations")).is_ok());
}

#[test]
fn wrong_meta_is_named() {
    let text = valid();
    assert_eq!(
        reason(&text.replacen("\"self_size\"", "\"size\"", 1)),
        "snapshot.meta.node_fields has no \"self_size\" field"
    );
    assert_eq!(
        reason(&text.replacen("\"to_node\"", "\"target\"", 1)),
        "snapshot.meta.edge_fields has no \"to_node\" field"
    );
    assert_eq!(
        reason(&text.replacen("\"node_types\":[[", "\"node_types\":[\"x\",[", 1)),
        "snapshot.meta.node_types[0] is not a list of type names"
    );
    assert!(reason(&text.replacen("\"node_fields\"", "\"fields\"", 1)).contains("node_fields"));
}

#[test]
fn node_fields_are_found_by_name_not_position() {
    // The same graph with `id` and `name` swapped in node_fields (and in every node), no
    // trace_node_id and no detachedness.
    let text = r#"{"snapshot":{"meta":{
        "node_fields":["type","id","name","self_size","edge_count"],
        "node_types":[["synthetic","object","string"],"number","string","number","number"],
        "edge_fields":["to_node","type","name_or_index"],
        "edge_types":["node",["property","weak"],"string_or_number"]}},
      "nodes":[0,1,0,0,1, 1,3,1,40,1, 2,5,2,20,0],
      "edges":[5,0,1, 10,0,3],
      "strings":["","Request","text","body"]}"#;
    let summary = read(text).unwrap();
    let mut classes: Vec<(String, u64)> = summary
        .classes()
        .into_iter()
        .map(|c| (c.name, c.self_size))
        .collect();
    classes.sort();
    assert_eq!(
        classes,
        vec![("(string)".to_owned(), 20), ("Request".to_owned(), 40)]
    );
}

#[test]
fn inconsistent_arrays_are_rejected() {
    let text = valid();
    // 3 nodes of 7 fields: a dropped number leaves a partial node.
    let short = text.replacen("\"nodes\":[9,", "\"nodes\":[", 1);
    assert!(
        reason(&short).contains("whole nodes of 7 fields"),
        "{}",
        reason(&short)
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let with = |key: &str, value: &str| -> String {
        let order = ["snapshot", "nodes", "edges", "strings"];
        let parts: Vec<String> = order
            .iter()
            .map(|k| {
                if *k == key {
                    format!("\"{k}\":{value}")
                } else {
                    format!("\"{k}\":{}", v[k])
                }
            })
            .collect();
        format!("{{{}}}", parts.join(","))
    };
    assert_eq!(
        reason(&with("edges", "[2,1,14,2,1,7]")),
        "\"edges\" holds more edges than the nodes' edge counts add up to (1)"
    );
    assert_eq!(
        reason(&with("edges", "[]")),
        "\"edges\" holds 0 edges, but the nodes' edge counts add up to 1"
    );
    assert_eq!(
        reason(&with("edges", "[2,1,15]")),
        "edge 0 points to 15, which is not the start of a node"
    );
    assert_eq!(
        reason(&with("edges", "[2,1,700]")),
        "edge 0 points to 700, which is not the start of a node"
    );
    assert_eq!(
        reason(&with("edges", "[99,1,14]")),
        "edge 0 has type 99, not one of snapshot.meta.edge_types"
    );
    assert_eq!(
        reason(&with(
            "nodes",
            "[9,0,1,0,0,0,0, 42,1,3,40,1,0,0, 2,2,5,20,0,0,0]"
        )),
        "node 1 has type 42, but snapshot.meta.node_types lists 15 types"
    );
    assert_eq!(
        reason(&with(
            "nodes",
            "[9,0,1,0,0,0,0, 3,1,4294967297,40,1,0,0, 2,2,5,20,0,0,0]"
        )),
        "node 1 has a name index or id (1 / 4294967297) beyond 32 bits"
    );
    assert_eq!(reason(&with("nodes", "[]")), "\"nodes\" is empty");
    assert_eq!(
        reason(&with(
            "nodes",
            "[9,0,1,0,4294967295,0,0, 3,1,3,40,1,0,0, 2,2,5,20,0,0,0]"
        )),
        "more than 2^32 edges"
    );
    assert_eq!(
        reason(&with(
            "nodes",
            "[9,0,1,0,4294967294,0,0, 3,1,3,40,1,0,0, 2,2,5,20,0,0,0]"
        )),
        "\"edges\" holds 1 edges, but the nodes' edge counts add up to 4294967295"
    );
    assert_eq!(
        reason(&with(
            "nodes",
            "[9,0,1,0,18446744073709551615,0,0, 3,1,3,40,1,0,0]"
        )),
        "more than 2^32 edges"
    );
    for odd in ["\"x\"", "-1", "1.5", "null", "[]"] {
        assert_eq!(
            reason(&with("nodes", &format!("[9,0,1,0,0,0,{odd}]"))),
            "\"nodes\" holds something other than unsigned integers"
        );
    }
    assert_eq!(
        reason(&with("edges", "[2,1,99999999999999999999]")),
        "\"edges\" holds a number beyond 64 bits"
    );
    assert_eq!(
        reason(&with("strings", "[\"\"]")),
        "a node is named by string 1, but \"strings\" has only 1 entries"
    );
    assert!(reason(&with("strings", "[\"\", 7]")).starts_with("invalid type: integer `7`"));
}

#[test]
fn leading_whitespace_is_accepted() {
    // heapgate-proxy keeps connections alive with spaces before the body.
    let text = format!("{}\n\t \r\n{}\n", " ".repeat(10_000), valid());
    let summary = read(&text).unwrap();
    assert_eq!(summary.info().node_count, 3);

    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    let from_file = load(file.path()).unwrap();
    assert_eq!(from_file.info(), summary.info());
}

#[test]
fn any_buffer_size_reads_the_same() {
    // Numbers, strings and keys cut at every possible place by the reader's buffer.
    let mut s = Snap::new();
    s.user_root(3);
    for i in 0..40u32 {
        let o = s.node("object", "Request", 1_000_001 + 2 * i, 40 + u64::from(i));
        let t = s.node(
            "string",
            &format!("text {i} \u{e9}\u{1F600}"),
            2_000_001 + 2 * i,
            20,
        );
        s.edge(o, "property", "body", t);
    }
    let text = s.json();
    let whole = read(&text).unwrap();
    for capacity in 1..24 {
        let reader = std::io::BufReader::with_capacity(capacity, text.as_bytes());
        let summary = Summary::from_reader(reader, "x.heapsnapshot").unwrap();
        assert_eq!(summary.info(), whole.info(), "buffer of {capacity}");
        assert_eq!(summary.classes(), whole.classes(), "buffer of {capacity}");
    }
    let cut = &text[..text.len() / 2];
    let reader = std::io::BufReader::with_capacity(5, cut.as_bytes());
    assert!(matches!(
        Summary::from_reader(reader, "x"),
        Err(SnapshotError::Truncated { .. })
    ));
}

#[test]
fn unknown_keys_of_any_kind_are_skipped() {
    let text = valid().replacen(
        "{",
        r#"{"title":"a \"quoted\" \u00e9 title","n":-1.5e3,"ok":true,"none":null,
            "nested":{"a":[1,{"b":[]}],"c":"]}"},"samples":[1,2,3],"#,
        1,
    );
    let summary = read(&text).unwrap();
    assert_eq!(summary.info().node_count, 3);
    assert!(matches!(
        read(&valid().replacen("{", r#"{"n":-1.5x,"#, 1)),
        Err(SnapshotError::NotJson { .. })
    ));
}

#[test]
fn errors_point_at_the_line_and_column() {
    let text = valid().replacen(",\n\"edges\"", ",\n  \"edges\" x", 1);
    match read(&text) {
        Err(SnapshotError::NotJson { line, column, .. }) => assert_eq!((line, column), (3, 11)),
        other => panic!("{other:?}"),
    }
    let text = valid().replacen("\"nodes\":[9,", "\"nodes\":[\n9,\n 0 1,", 1);
    match read(&text) {
        Err(SnapshotError::NotJson { line, column, .. }) => assert_eq!((line, column), (4, 4)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn whitespace_only_is_truncated() {
    assert!(matches!(
        read("   \n  "),
        Err(SnapshotError::Truncated { .. })
    ));
}

#[test]
fn lone_surrogates_in_strings_load() {
    // V8 writes unpaired UTF-16 surrogates (e.g. a string cut in the middle of an emoji) as
    // \uD83D escapes, which strict UTF-8 decoding rejects.
    let mut s = Snap::new();
    s.node("object", "Cut\u{FFFD}", 3, 40);
    let text = s.json().replace("Cut\u{FFFD}", "Cut\\ud83d");
    let summary = read(&text).unwrap();
    let name = &summary.classes()[0].name;
    assert!(name.starts_with("Cut\u{FFFD}"), "{name:?}");
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let e = load("/nonexistent/dir/a.heapsnapshot").unwrap_err();
    assert!(matches!(e, SnapshotError::Io { .. }));
    assert!(
        e.to_string()
            .starts_with("/nonexistent/dir/a.heapsnapshot: cannot read: "),
        "{e}"
    );
}
