//! `--html FILE` for profiles: one self-contained page with an icicle graph (top-down, the
//! width of a frame is its live bytes, or for a diff its growth), the allocation sites
//! (bottom-up) and the stacks of the growing ones.
//!
//! Same rules as the snapshot report (`html.rs`): function names and script URLs come from the
//! profiled app, so in HTML they are escaped, in the JSON blob they cannot end the `<script>`
//! element, the script (`html/profile.js`) puts them on the page with `textContent` and SVG
//! attributes only, and a Content-Security-Policy allows exactly the inline script and style by
//! their hashes.

use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use heapgate_profile::{Comparison, Frame, SiteDiff, Summary};
use heapgate_profile::{Site, TreeNode};
use serde::Serialize;

use crate::Error;
use crate::html::{Head, STYLE, head, json_for_script, text};

const SCRIPT: &str = concat!(
    include_str!("html/common.js"),
    include_str!("html/profile.js")
);
const EXTRA_STYLE: &str = include_str!("html/profile.css");

/// Sites the page lists at most, and frames the graph draws at most.
const MAX_SITES: usize = 2000;
const MAX_NODES: usize = 5000;

/// A frame of the icicle graph: `v` is the width (live bytes or growth), `b` live bytes per
/// profile.
#[derive(Serialize)]
struct Node<'a> {
    f: &'a Frame,
    v: i64,
    b: &'a [u64],
    c: Vec<Node<'a>>,
}

/// The graph pruned to the heaviest `MAX_NODES` frames whose width is positive.
fn graph<'a>(root: &'a TreeNode, value: &dyn Fn(&TreeNode) -> i64) -> Node<'a> {
    // The width below which frames are dropped: the MAX_NODES-th largest.
    let mut values = Vec::new();
    let mut todo = vec![root];
    while let Some(n) = todo.pop() {
        let v = value(n);
        if v > 0 {
            values.push(v);
            todo.extend(&n.children);
        }
    }
    values.sort_unstable_by(|a, b| b.cmp(a));
    let floor = values.get(MAX_NODES).copied().unwrap_or(0);
    fn build<'a>(n: &'a TreeNode, value: &dyn Fn(&TreeNode) -> i64, floor: i64) -> Node<'a> {
        Node {
            f: &n.frame,
            v: value(n),
            b: &n.bytes,
            c: n.children
                .iter()
                .filter(|c| value(c) > floor)
                .map(|c| build(c, value, floor))
                .collect(),
        }
    }
    build(root, value, floor)
}

#[derive(Serialize)]
struct Data<'a> {
    kind: &'static str,
    labels: &'a [&'static str],
    total_bytes: &'a [u64],
    total_objects: &'a [u64],
    growth: Option<i64>,
    sites_total: usize,
    sites: SitesOf<'a>,
    graph: Node<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum SitesOf<'a> {
    Diff(&'a [SiteDiff]),
    Summary(&'a [Site]),
}

const LABELS: [&str; 3] = ["A", "B", "C"];

/// The page for `heapgate diff` on profiles.
pub(crate) fn diff_page(
    comparison: &Comparison,
    files: &[PathBuf],
    command: &str,
    now: DateTime<Utc>,
) -> Result<String, Error> {
    let n = files.len();
    let sites = &comparison.sites;
    let data = Data {
        kind: "diff",
        labels: &LABELS[..n],
        total_bytes: &comparison.total_bytes,
        total_objects: &comparison.total_objects,
        growth: Some(comparison.growth_bytes),
        sites_total: sites.len(),
        sites: SitesOf::Diff(&sites[..sites.len().min(MAX_SITES)]),
        graph: graph(&comparison.tree, &|t| t.growth),
    };
    let what = if n == 3 {
        "three sampling heap profiles: what each allocation site gained from A to B and still \
         holds at C (kept); a burst freed again by C counts zero"
    } else {
        "two sampling heap profiles: the change of live bytes by allocation site, B − A"
    };
    page(&data, files, &comparison.warnings, what, command, now)
}

/// The page for `heapgate summary` on one profile.
pub(crate) fn summary_page(
    summary: &Summary,
    files: &[PathBuf],
    command: &str,
    now: DateTime<Utc>,
) -> Result<String, Error> {
    let totals = [summary.total_bytes];
    let objects = [summary.total_objects];
    let sites = &summary.sites;
    let data = Data {
        kind: "summary",
        labels: &LABELS[..1],
        total_bytes: &totals,
        total_objects: &objects,
        growth: None,
        sites_total: sites.len(),
        sites: SitesOf::Summary(&sites[..sites.len().min(MAX_SITES)]),
        graph: graph(&summary.tree, &|t| *t.bytes.last().unwrap_or(&0) as i64),
    };
    let interval = summary.interval.map_or_else(
        || "interval unknown".to_owned(),
        |i| format!("sampled every {i} bytes"),
    );
    let what = format!(
        "one sampling heap profile ({}, {interval}): which functions allocated what is still alive",
        summary.format.name()
    );
    page(&data, files, &[], &what, command, now)
}

fn page(
    data: &Data<'_>,
    files: &[PathBuf],
    warnings: &[String],
    what: &str,
    command: &str,
    now: DateTime<Utc>,
) -> Result<String, Error> {
    let json = json_for_script(data)?;
    let style = format!("{STYLE}{EXTRA_STYLE}");
    let title = if data.kind == "diff" {
        format!("heapgate diff: {} heap profiles", files.len())
    } else {
        "heapgate summary: heap profile".to_owned()
    };
    let mut h = String::with_capacity(json.len() + SCRIPT.len() + style.len() + 4096);
    head(
        &mut h,
        Head {
            title: &title,
            what,
            note: "Line:column is where the allocating function starts (V8 records functions, not statements).",
            style: &style,
            script: SCRIPT,
            now,
        },
    );
    h.push_str(
        "<table class=\"files\">\n<thead><tr><th></th><th>File</th><th>Live bytes</th>\
         <th>Objects</th></tr></thead>\n<tbody>\n",
    );
    for (i, file) in files.iter().enumerate() {
        let _ = writeln!(
            h,
            "<tr><th>{}</th><td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            if files.len() > 1 { LABELS[i] } else { "" },
            text(&file.display().to_string()),
            data.total_bytes[i],
            data.total_objects[i],
        );
    }
    h.push_str("</tbody>\n</table>\n");
    if !warnings.is_empty() {
        h.push_str("<ul class=\"warnings\">\n");
        for w in warnings {
            let _ = writeln!(h, "<li>warning: {}</li>", text(w));
        }
        h.push_str("</ul>\n");
    }
    let graph_title = if data.kind == "diff" {
        "Growth by caller (icicle: the width is the growth under that call path)"
    } else {
        "Live bytes by caller (icicle: the width is the live bytes under that call path)"
    };
    let _ = write!(
        h,
        "</header>\n<main>\n<h2>{}</h2>\n<p class=\"note\">Click a frame to zoom into it, \
         the top frame to zoom out; exact numbers on hover.</p>\n\
         <div id=\"icicle\" class=\"icicle\"></div>\n<noscript><p>This report draws with \
         JavaScript; the data is in the page source.</p></noscript>\n\
         <h2>{}</h2>\n<div class=\"scroll\"><table id=\"sites\" class=\"rows\"></table></div>\n\
         <p id=\"shown\" class=\"note\"></p>\n",
        text(graph_title),
        if data.kind == "diff" {
            "Allocation sites by growth (bottom-up)"
        } else {
            "Allocation sites (bottom-up)"
        }
    );
    if data.kind == "diff" {
        h.push_str("<h2>Allocation stacks of the growing sites</h2>\n<div id=\"stacks\"></div>\n");
    }
    let _ = write!(
        h,
        "<h2>Reproduce</h2>\n<pre>{}\n</pre>\n</main>\n\
         <script type=\"application/json\" id=\"heapgate-data\">{json}</script>\n\
         <script>{SCRIPT}</script>\n</body>\n</html>\n",
        text(command)
    );
    Ok(h)
}
