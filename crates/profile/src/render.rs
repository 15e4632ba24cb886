//! Plain-text tables for terminals and CI logs, in the style of the snapshot tables: exact bytes
//! and counts, signed growth, a totals line that covers every row even when only the top ones
//! are printed.

use std::fmt::Write as _;

use crate::analysis::{Comparison, Summary, TreeNode};

/// Longest site text, in characters; longer ones are shortened from the left of the path.
const MAX_SITE_WIDTH: usize = 100;

fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn shorten(text: &str) -> String {
    let count = text.chars().count();
    if count <= MAX_SITE_WIDTH {
        return text.to_owned();
    }
    let tail: String = text.chars().skip(count - (MAX_SITE_WIDTH - 1)).collect();
    format!("…{tail}")
}

/// Right-aligns every column but the last, which is left as is.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == columns {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:>w$}  ", w = widths[i]);
            }
        }
        out.push('\n');
    };
    let headers: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    line(&mut out, &headers);
    for row in rows {
        line(&mut out, row);
    }
    out
}

fn interval_text(interval: Option<u64>) -> String {
    interval.map_or_else(
        || "sampling interval unknown: object counts are sample counts".to_owned(),
        |i| format!("sampled every {i} bytes"),
    )
}

/// Top-down lines: nodes holding at least 1% of the root (or growing), depth-first, at most
/// `limit` of them.
fn tree_lines<'a>(
    root: &'a TreeNode,
    value: &dyn Fn(&TreeNode) -> i64,
    limit: usize,
) -> Vec<(usize, &'a TreeNode)> {
    let floor = (value(root).unsigned_abs() / 100).max(1) as i64;
    let mut out = Vec::new();
    let mut todo = vec![(0usize, root)];
    while let Some((depth, node)) = todo.pop() {
        if out.len() >= limit {
            break;
        }
        out.push((depth, node));
        todo.extend(
            node.children
                .iter()
                .rev()
                .filter(|c| value(c) >= floor)
                .map(|c| (depth + 1, c)),
        );
    }
    out
}

/// One profile: totals, bottom-up (the first `top` sites) and top-down.
pub fn render_summary(summary: &Summary, top: usize) -> String {
    let mut out = format!(
        "Live: {} bytes in {} objects ({}, {})\n\nBottom-up: where live objects were allocated\n",
        summary.total_bytes,
        summary.total_objects,
        summary.format.name(),
        interval_text(summary.interval),
    );
    let rows: Vec<Vec<String>> = summary
        .sites
        .iter()
        .take(top)
        .map(|s| {
            vec![
                s.bytes.to_string(),
                share(s.bytes, summary.total_bytes),
                s.objects.to_string(),
                shorten(&s.frame.to_string()),
            ]
        })
        .collect();
    out.push_str(&table(
        &["Live Bytes", "Share", "Objects", "Allocation site"],
        &rows,
    ));
    let hidden = summary.sites.len().saturating_sub(top);
    let _ = writeln!(
        out,
        "Total: {} sites{}",
        summary.sites.len(),
        if hidden > 0 {
            format!(", {hidden} not shown")
        } else {
            String::new()
        }
    );
    out.push_str("\nTop-down: live bytes under each caller (1% and up)\n");
    let lines = tree_lines(
        &summary.tree,
        &|n| *n.bytes.last().unwrap_or(&0) as i64,
        top * 3,
    );
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|(depth, n)| {
            let bytes = *n.bytes.last().unwrap_or(&0);
            vec![
                bytes.to_string(),
                share(bytes, summary.total_bytes),
                format!("{}{}", "  ".repeat(*depth), shorten(&n.frame.to_string())),
            ]
        })
        .collect();
    out.push_str(&table(&["Live Bytes", "Share", "Function"], &rows));
    out
}

/// Two or three profiles: growth by allocation site (the first `top` sites), the stacks of the
/// growing ones, and top-down growth.
pub fn render_diff(comparison: &Comparison, top: usize) -> String {
    let n = comparison.total_bytes.len();
    let mut out = String::new();
    let letters = ["A", "B", "C"];
    let _ = writeln!(
        out,
        "Live bytes: {}",
        comparison
            .total_bytes
            .iter()
            .zip(letters)
            .map(|(b, l)| format!("{l} {b}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if n == 3 {
        out.push_str(
            "Growth by allocation site: kept = what a site gained from A to B and still holds at C\n",
        );
    } else {
        out.push_str("Growth by allocation site: B − A\n");
    }
    let mut headers: Vec<String> = vec![
        if n == 3 { "Kept Bytes" } else { "Bytes Delta" }.to_owned(),
        if n == 3 {
            "Kept Objects"
        } else {
            "Objects Delta"
        }
        .to_owned(),
    ];
    headers.extend(letters[..n].iter().map(|l| format!("Live {l}")));
    headers.push("Allocation site".to_owned());
    let rows: Vec<Vec<String>> = comparison
        .sites
        .iter()
        .take(top)
        .map(|s| {
            let mut row = vec![signed(s.growth_bytes), signed(s.growth_objects)];
            row.extend(s.bytes.iter().map(u64::to_string));
            row.push(shorten(&s.frame.to_string()));
            row
        })
        .collect();
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    out.push_str(&table(&header_refs, &rows));
    let growing = comparison
        .sites
        .iter()
        .filter(|s| s.growth_bytes > 0)
        .count();
    let hidden = comparison.sites.len().saturating_sub(top);
    let _ = writeln!(
        out,
        "Total: {} {}, {growing} growing, {} sites{}",
        signed(comparison.growth_bytes),
        if n == 3 { "kept bytes" } else { "bytes" },
        comparison.sites.len(),
        if hidden > 0 {
            format!(", {hidden} not shown")
        } else {
            String::new()
        }
    );
    let stacks: Vec<_> = comparison
        .sites
        .iter()
        .take(top.min(5))
        .filter(|s| s.growth_bytes > 0)
        .collect();
    if !stacks.is_empty() {
        out.push_str("\nAllocation stacks of the growing sites (allocating function first)\n");
        for site in stacks {
            let _ = writeln!(
                out,
                "{} {}",
                signed(site.growth_bytes),
                shorten(&site.frame.to_string())
            );
            for frame in site.stack.iter().rev().skip(1) {
                let _ = writeln!(out, "    ← {}", shorten(&frame.to_string()));
            }
        }
    }
    let lines = tree_lines(&comparison.tree, &|n| n.growth, top * 3);
    if comparison.tree.growth > 0 {
        out.push_str("\nTop-down: growth under each caller (1% and up)\n");
        let rows: Vec<Vec<String>> = lines
            .iter()
            .map(|(depth, n)| {
                vec![
                    signed(n.growth),
                    format!("{}{}", "  ".repeat(*depth), shorten(&n.frame.to_string())),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                if n == 3 { "Kept Bytes" } else { "Bytes Delta" },
                "Function",
            ],
            &rows,
        ));
    }
    out
}
