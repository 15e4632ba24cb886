//! Which class each node is counted under, and with what size: DevTools' rules, one at a time.

mod common;

use common::Snap;
use heapgate_snapshot::{ClassSummary, Location, Snapshot, Summary, diff};

/// `(name, count, self size)` of every class, sorted by name.
fn classes(summary: &Summary) -> Vec<(String, u64, u64)> {
    let mut out: Vec<_> = summary
        .classes()
        .into_iter()
        .map(|c: ClassSummary| (c.name, c.count, c.self_size))
        .collect();
    out.sort();
    out
}

fn class(name: &str, count: u64, size: u64) -> (String, u64, u64) {
    (name.to_owned(), count, size)
}

#[test]
fn each_node_type_has_its_devtools_class() {
    let mut s = Snap::new();
    s.node("object", "Request", 3, 40);
    s.node("object", "Request", 5, 40);
    s.node("native", "Node / TCPWrap", 6, 100);
    s.node("hidden", "system / Context", 7, 16);
    s.node("code", "(code for foo)", 9, 64);
    s.node("closure", "handler", 11, 32);
    s.node("regexp", "^a+$", 13, 48);
    s.node("string", "hello", 15, 20);
    s.node("string", "world", 17, 20);
    s.node("concatenated string", "hello world", 19, 32);
    s.node("sliced string", "ell", 21, 32);
    s.node("number", "heap number", 23, 16);
    s.node("array", "(object elements)", 25, 80);
    s.node("symbol", "Symbol(x)", 27, 24);
    s.node("bigint", "bigint", 29, 24);
    s.node("object shape", "system / Map", 31, 40);
    s.node("synthetic", "(GC roots)", 33, 8);
    assert_eq!(
        classes(&s.summary()),
        vec![
            class("(array)", 1, 80),
            class("(bigint)", 1, 24),
            class("(compiled code)", 1, 64),
            class("(concatenated string)", 1, 32),
            class("(number)", 1, 16),
            class("(object shape)", 1, 40),
            class("(sliced string)", 1, 32),
            class("(string)", 2, 40),
            class("(symbol)", 1, 24),
            class("(synthetic)", 1, 8),
            class("(system)", 1, 16),
            class("Function", 1, 32),
            class("Node / TCPWrap", 1, 100),
            class("RegExp", 1, 48),
            class("Request", 2, 80),
        ]
    );
}

#[test]
fn nodes_of_size_zero_are_not_counted_not_even_natives() {
    let mut s = Snap::new();
    s.node("object", "Request", 3, 0);
    s.node("object", "Request", 5, 40);
    s.node("native", "Node / Environment", 6, 0);
    s.node("string", "", 7, 0);
    assert_eq!(classes(&s.summary()), vec![class("Request", 1, 40)]);
    assert_eq!(s.summary().info().counted_nodes, 1);
}

#[test]
fn html_names_are_cut_at_the_first_space() {
    let mut s = Snap::new();
    s.node("native", "<div id=\"a\">", 2, 100);
    s.node("native", "<div>", 4, 100);
    s.node("object", "<span class=\"x\" title=\"y\">", 5, 10);
    assert_eq!(
        classes(&s.summary()),
        vec![class("<div>", 2, 200), class("<span>", 1, 10)]
    );
}

#[test]
fn detached_natives_and_what_they_hold_are_detached() {
    let mut s = Snap::new();
    let detached = s.node("native", "<div id=\"gone\">", 2, 100);
    let child = s.node("native", "<p>", 4, 10);
    let behind_js = s.node("native", "<p>", 6, 10);
    let js = s.node("object", "Holder", 7, 20);
    let hidden_child = s.node("native", "<p>", 8, 10);
    let attached = s.node("native", "<body>", 10, 50);
    let shared = s.node("native", "<p>", 12, 10);
    s.detachedness(detached, 2).detachedness(attached, 1);
    s.edge(detached, "element", "0", child)
        .edge(detached, "property", "holder", js)
        .edge(js, "property", "p", behind_js)
        .edge(detached, "hidden", "1", hidden_child)
        .edge(detached, "element", "2", shared)
        .edge(attached, "element", "0", shared);
    assert_eq!(
        classes(&s.summary()),
        vec![
            class("<body>", 1, 50),
            // Not reached: through a JavaScript object, through a hidden edge; and the node
            // both an attached and a detached node hold stays attached.
            class("<p>", 3, 30),
            class("Detached <div>", 1, 100),
            class("Detached <p>", 1, 10),
            class("Holder", 1, 20),
        ]
    );
}

#[test]
fn same_name_from_different_places_is_two_classes() {
    let mut s = Snap::new();
    let a = s.node("object", "Request", 3, 40);
    let b = s.node("object", "Request", 5, 40);
    let c = s.node("object", "Request", 7, 40);
    s.node("object", "Request", 9, 40);
    s.location(a, 10, 4, 2)
        .location(b, 10, 4, 2)
        .location(c, 11, 0, 0);
    let mut rows = s.summary().classes();
    rows.sort_by_key(|r| r.location);
    let found: Vec<(Option<Location>, u64)> = rows.iter().map(|r| (r.location, r.count)).collect();
    let at = |script_id, line, column| {
        Some(Location {
            script_id,
            line,
            column,
        })
    };
    assert_eq!(found, vec![(None, 1), (at(10, 4, 2), 2), (at(11, 0, 0), 1)]);
    assert!(rows.iter().all(|r| r.name == "Request"));
    assert_eq!(at(10, 4, 2).unwrap().to_string(), "script 10, 5:3");
}

/// Plain objects `{url, method}` ×3, `{url}` ×2, `{x}` ×1 and one without properties.
fn plain_objects(s: &mut Snap, first_id: u32) {
    let url = s.node("string", "/", first_id, 16);
    let shapes: [&[&str]; 7] = [
        &["url", "method"],
        &["url", "method"],
        &["method", "url", "extra"],
        &["url"],
        &["url"],
        &["x"],
        &[],
    ];
    for (i, props) in shapes.iter().enumerate() {
        let o = s.node("object", "Object", first_id + 2 + 2 * i as u32, 32);
        for p in props.iter() {
            s.edge(o, "property", p, url);
        }
    }
}

#[test]
fn plain_objects_are_grouped_by_shape() {
    let mut s = Snap::new();
    plain_objects(&mut s, 3);
    let summary = s.summary();
    let names: Vec<&str> = summary
        .interfaces()
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    // Shapes of at least 2 objects, most common first; `{method, url, extra}` is a lone shape.
    assert_eq!(names, vec!["{url, method}", "{url}"]);
    assert_eq!(
        classes(&summary),
        vec![
            class("(string)", 1, 16),
            // No definition fits `{x}` or `{}`.
            class("Object", 2, 64),
            // `{method, url, extra}` has every property of `{url, method}`: the larger fit wins.
            class("{url, method}", 3, 96),
            class("{url}", 2, 64),
        ]
    );
}

#[test]
fn base_plain_objects_are_named_with_the_new_snapshots_shapes() {
    // BASE alone has too few `{url}` objects to name them; NEW has enough. DevTools applies
    // NEW's definitions to both, so BASE's `{url}` object is matched by id and not reported.
    let mut base = Snap::new();
    let s = base.node("string", "/", 3, 16);
    let o = base.node("object", "Object", 5, 32);
    base.edge(o, "property", "url", s);
    let mut new = Snap::new();
    let s = new.node("string", "/", 3, 16);
    let o = new.node("object", "Object", 5, 32);
    let o2 = new.node("object", "Object", 7, 32);
    new.edge(o, "property", "url", s)
        .edge(o2, "property", "url", s);
    let rows = diff(&base.summary(), &new.summary());
    assert_eq!(rows.classes.len(), 1);
    assert_eq!(rows.classes[0].name, "{url}");
    assert_eq!(
        (rows.classes[0].new_count, rows.classes[0].deleted_count),
        (1, 0)
    );
}

#[test]
fn interface_names_quote_odd_property_names_and_stop_when_long() {
    let mut s = Snap::new();
    let v = s.node("string", "v", 3, 16);
    let long = "p".repeat(70);
    for id in [5, 7] {
        let o = s.node("object", "Object", id, 32);
        s.edge(o, "property", "a,b", v)
            .edge(o, "property", "__proto__", v)
            .edge(o, "property", &long, v)
            .edge(o, "property", &long.replace('p', "q"), v);
    }
    let summary = s.summary();
    let interface = &summary.interfaces()[0];
    // The second long name would pass 120 characters: the name stops before it.
    assert_eq!(interface.name, format!("{{\"a,b\", {long}}}"));
    assert_eq!(interface.properties, vec!["a,b".to_owned(), long]);
}

#[test]
fn singly_owned_arrays_and_hidden_nodes_count_as_their_owner() {
    let mut s = Snap::new();
    s.user_root(3);
    let owner = s.node("object", "Request", 5, 40);
    let elements = s.node("array", "(object elements)", 7, 100);
    let hidden = s.node("hidden", "system / PropertyArray", 9, 30);
    let nested = s.node("array", "", 11, 8);
    let shared = s.node("array", "(shared)", 13, 64);
    let other = s.node("object", "Other", 15, 10);
    let weakly_held = s.node("array", "(weak)", 17, 12);
    let orphan = s.node("hidden", "system / Orphan", 19, 50);
    s.edge(owner, "internal", "elements", elements)
        .edge(owner, "internal", "properties", hidden)
        .edge(hidden, "element", "0", nested)
        .edge(owner, "internal", "a", shared)
        .edge(other, "internal", "b", shared)
        .edge(other, "weak", "w", weakly_held)
        .edge(owner, "internal", "w", weakly_held);
    let _ = orphan;
    let summary = s.summary();
    assert!(summary.info().sizes_folded);
    assert_eq!(
        classes(&summary),
        vec![
            // Owned by two objects: stays on its own.
            class("(array)", 1, 64),
            // Reachable from nothing: stays.
            class("(system)", 1, 50),
            class("Other", 1, 10),
            // 40 + 100 + 30 + 8 + 12 (the weak edge from Other does not count as an owner).
            class("Request", 1, 190),
            class("global", 1, 24),
        ]
    );
}

#[test]
fn without_user_roots_sizes_stay_where_v8_put_them() {
    let mut s = Snap::new();
    let owner = s.node("object", "Request", 5, 40);
    let elements = s.node("array", "(object elements)", 7, 100);
    s.edge(owner, "internal", "elements", elements);
    let summary = s.summary();
    assert!(!summary.info().sizes_folded);
    assert_eq!(
        classes(&summary),
        vec![class("(array)", 1, 100), class("Request", 1, 40)]
    );
}

// ---- retainer paths: which objects are one group ----

/// `count` Entry objects held by `holder` (an object held by `global.<variable>`) through
/// property edges named by `key(i)`; returns the snapshot and the entries' ids.
fn dictionary(variable: &str, count: u32, key: impl Fn(u32) -> String) -> (Snap, Vec<u32>) {
    let mut s = Snap::new();
    let global = s.user_root(3);
    let dict = s.node("object", "Object", 5, 32);
    s.edge(global, "property", variable, dict);
    let mut ids = Vec::new();
    for i in 0..count {
        let id = 101 + 2 * i;
        let entry = s.node("object", "Entry", id, 16);
        s.edge(dict, "property", &key(i), entry);
        ids.push(id);
    }
    (s, ids)
}

fn groups(s: &Snap, ids: &[u32]) -> Vec<heapgate_snapshot::RetainerGroup> {
    let snapshot = Snapshot::from_reader(s.json().as_bytes(), "t.heapsnapshot").unwrap();
    snapshot.retainer_groups(ids, 3)
}

#[test]
fn keys_out_of_one_dictionary_are_one_group_counted_not_shown() {
    // Memo keys: every entry's last edge has its own name (they hold data: an e-mail here).
    let (s, ids) = dictionary("visitsById", 50, |i| format!("user{i}@example.com|eu"));
    let groups = groups(&s, &ids);
    assert_eq!(groups.len(), 1, "{groups:#?}");
    let g = &groups[0];
    assert_eq!((g.count, g.retained_size), (50, 50 * 16));
    let last = g.path.last().unwrap();
    assert_eq!((last.edge.as_str(), last.keys), ("<50 keys>", Some(50)));
    // No key appears anywhere in the group.
    let json = serde_json::to_string(g).unwrap();
    assert!(!json.contains("example.com"), "{json}");
    let holder = g.holder.as_ref().unwrap();
    assert_eq!(
        (holder.kind, holder.name.as_str()),
        ("global", "visitsById")
    );
    assert_eq!(holder.keys, Some(50));
    assert_eq!(holder.collection.as_deref(), Some("Object"));
}

#[test]
fn two_names_out_of_one_object_are_fields_not_keys() {
    // global.a and global.b hold one Entry each: two groups (below MIN_KEYS names).
    assert_eq!(heapgate_snapshot::MIN_KEYS, 3);
    let (s, ids) = dictionary("x", 2, |i| ["a", "b"][i as usize].to_owned());
    let groups = groups(&s, &ids);
    assert_eq!(groups.len(), 2, "{groups:#?}");
    assert!(
        groups
            .iter()
            .all(|g| g.path.iter().all(|s| s.keys.is_none()))
    );
    // Three names are keys.
    let (s, ids) = dictionary("x", 3, |i| ["a", "b", "c"][i as usize].to_owned());
    assert_eq!(self::groups(&s, &ids).len(), 1);
}

#[test]
fn the_same_names_out_of_different_objects_stay_one_group_without_keys() {
    // Many Request objects, each with its own `.ctx`: not keys (one name per container).
    let mut s = Snap::new();
    let global = s.user_root(3);
    let list = s.node("object", "Array", 5, 32);
    s.edge(global, "property", "pending", list);
    let mut ids = Vec::new();
    for i in 0..10u32 {
        let request = s.node("object", "Request", 1001 + 2 * i, 24);
        let ctx = s.node("object", "Entry", 2001 + 2 * i, 16);
        s.edge(list, "element", &i.to_string(), request)
            .edge(request, "property", "ctx", ctx);
        ids.push(2001 + 2 * i);
    }
    let groups = groups(&s, &ids);
    assert_eq!(groups.len(), 1, "{groups:#?}");
    assert_eq!(groups[0].path.last().unwrap().edge, "ctx");
    // The holder is that of the collection (the array), not each entry's own field.
    assert_eq!(groups[0].holder.as_ref().unwrap().name, "pending");
}

#[test]
fn a_weak_map_value_is_held_by_whoever_holds_its_key() {
    // global.app.openSessions = [session…]; global.quoteOf = WeakMap {session → Quote}. V8 gives
    // each Quote two retainers with the same edge name: the WeakMap's table (nearer the root,
    // so DevTools lists it first) and the session (the key).
    let mut s = Snap::new();
    let global = s.user_root(3);
    let app = s.node("object", "App", 5, 16);
    let sessions = s.node("object", "Array", 7, 32);
    let weak = s.node("object", "WeakMap", 9, 24);
    let table = s.node("array", "(array)", 11, 64);
    s.edge(global, "property", "app", app)
        .edge(app, "property", "openSessions", sessions)
        .edge(global, "property", "quoteOf", weak)
        .edge(weak, "internal", "table", table);
    let mut ids = Vec::new();
    for i in 0..20u32 {
        let (key, value) = (1001 + 2 * i, 2001 + 2 * i);
        let session = s.node("object", "Session", key, 16);
        let quote = s.node("object", "Quote", value, 56);
        let pair = format!(
            "{i} / part of key (Session @{key}) -> value (Quote @{value}) pair in WeakMap (table @11)"
        );
        s.edge(sessions, "element", &i.to_string(), session)
            .edge(session, "internal", &pair, quote)
            .edge(table, "internal", &pair, quote);
        ids.push(value);
    }
    let snapshot = Snapshot::from_reader(s.json().as_bytes(), "t.heapsnapshot").unwrap();
    // DevTools' first retainer is the table…
    let devtools = snapshot.first_retainer_path(2001).unwrap();
    assert_eq!(devtools[1].node, "WeakMap", "{devtools:#?}");
    // …but the group follows the key.
    let groups = snapshot.retainer_groups(&ids, 3);
    assert_eq!(groups.len(), 1, "{groups:#?}");
    let holder = groups[0].holder.as_ref().unwrap();
    assert_eq!(holder.name, "openSessions", "{groups:#?}");
    assert!(groups[0].path.iter().all(|s| s.node != "WeakMap"));
}
