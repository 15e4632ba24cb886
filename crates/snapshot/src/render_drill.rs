//! Plain-text views of drill-down answers, as `heapgate inspect` prints them.

use std::fmt::Write as _;

use crate::object::{EdgeView, ObjectRef, ObjectView, Page};
use crate::query::{ClassInstances, Holders, QueryAnswer};
use crate::render::render_groups;

/// `@12 Item (app.js:3:5)`.
fn object_label(o: &ObjectRef) -> String {
    match &o.location {
        Some(l) => format!("@{} {} ({l})", o.id, o.class),
        None => format!("@{} {}", o.id, o.class),
    }
}

/// `self 24, retained 124 bytes, distance 3`.
fn sizes(o: &ObjectRef) -> String {
    format!(
        "self {}, retained {} bytes, distance {}",
        o.self_size, o.retained_size, o.distance
    )
}

/// `items 1–20 of 35; next: --offset 20`, or `all 3`.
fn page_line<T>(page: &Page<T>) -> String {
    if page.total == 0 {
        return "none".to_owned();
    }
    let shown = if page.items.is_empty() {
        format!("none shown of {}", page.total)
    } else if page.offset == 0 && page.next.is_none() {
        format!("all {}", page.total)
    } else {
        format!(
            "{}–{} of {}",
            page.offset + 1,
            page.offset + page.items.len(),
            page.total
        )
    };
    match page.next {
        Some(next) => format!("{shown}; next: --offset {next}"),
        None => shown,
    }
}

fn edges(out: &mut String, title: &str, arrow: &str, page: &Page<EdgeView>) {
    let _ = writeln!(out, "\n{title} ({}):", page_line(page));
    for e in &page.items {
        let _ = writeln!(
            out,
            "  {:<10} {:<24} {arrow} {}  {}",
            e.edge_type,
            e.name,
            object_label(&e.node),
            sizes(&e.node)
        );
    }
}

/// One object: what it is, its edges, its retainers and its retainer paths.
pub fn render_object(view: &ObjectView, full_paths: bool) -> String {
    let mut out = String::new();
    let o = &view.object;
    let _ = writeln!(out, "{}", object_label(o));
    let _ = write!(out, "  {}, {}", view.node_type, sizes(o));
    if let Some(name) = &view.name {
        let _ = write!(out, ", name {name}");
    }
    out.push('\n');
    if let Some(d) = &view.dominator {
        let _ = writeln!(out, "  dominated by {}", object_label(d));
    }
    edges(&mut out, "Edges", "→", &view.edges);
    edges(&mut out, "Retainers", "←", &view.retainers);
    if !view.paths.is_empty() {
        out.push_str("\nRetainer paths (through each retainer, grouped):\n");
        render_groups(&mut out, &view.paths, "retainers", full_paths);
    }
    out
}

/// Objects matching a query, largest retained size first.
pub fn render_query(answer: &QueryAnswer) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Objects ({}):", page_line(&answer.objects));
    for o in &answer.objects.items {
        let _ = writeln!(out, "  {}  {}", object_label(o), sizes(o));
    }
    out
}

/// The largest instances of the largest classes.
pub fn render_largest(classes: &[ClassInstances]) -> String {
    let mut out = String::new();
    for c in classes {
        let class = &c.class;
        let _ = writeln!(
            out,
            "{}{}: {} objects, retained {} bytes",
            class.name,
            class
                .script
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default(),
            class.count,
            class.retained_size
        );
        for o in &c.largest {
            let _ = writeln!(out, "  {}  {}", object_label(o), sizes(o));
        }
    }
    out
}

/// Who holds one class.
pub fn render_holders(holders: &Holders, full_paths: bool) -> String {
    let mut out = String::new();
    let retained: u64 = holders.rows.iter().map(|r| r.retained_size).sum();
    let _ = writeln!(
        out,
        "{}: {} objects, retained {retained} bytes, held by:",
        holders.class, holders.count
    );
    render_groups(&mut out, &holders.groups, "objects", full_paths);
    out
}
