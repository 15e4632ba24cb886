//! The Comparison view as aligned plain text, for terminals and CI logs.
//!
//! Numbers are exact bytes and counts, as DevTools shows them, with the deltas signed so that
//! growth stands out; the totals row always covers every class, also when only the top rows are
//! printed. Names longer than [`MAX_NAME_WIDTH`] characters are shortened with `…` (plain-object
//! shapes can be long).

use std::fmt::Write as _;

use crate::diff::{ClassDiff, Diff};

/// Widest class column, in characters.
pub const MAX_NAME_WIDTH: usize = 60;

const HEADERS: [&str; 7] = [
    "Class",
    "# New",
    "# Deleted",
    "# Delta",
    "Alloc. Size",
    "Freed Size",
    "Size Delta",
];

/// The rows of `diff` (the first `top` of them, if given) as a table with a header and a totals
/// row, each line ending in `\n`.
pub fn render_table(diff: &Diff, top: Option<usize>) -> String {
    let shown = match top {
        Some(n) => diff.top(n),
        None => &diff.classes[..],
    };
    let t = &diff.totals;
    let mut rows: Vec<[String; 7]> = shown.iter().map(row).collect();
    let hidden = diff.classes.len() - shown.len();
    rows.push([
        if hidden > 0 {
            format!("Total ({} classes, {hidden} not shown)", diff.classes.len())
        } else {
            format!("Total ({} classes)", diff.classes.len())
        },
        t.new_count.to_string(),
        t.deleted_count.to_string(),
        signed(t.delta_count),
        t.alloc_size.to_string(),
        t.freed_size.to_string(),
        signed(t.size_delta),
    ]);

    let mut widths = HEADERS.map(|h| h.chars().count());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String; 7]| {
        let _ = write!(out, "{:<w$}", cells[0], w = widths[0]);
        for (cell, w) in cells[1..].iter().zip(&widths[1..]) {
            let _ = write!(out, "  {cell:>w$}");
        }
        out.push('\n');
    };
    line(&mut out, &HEADERS.map(str::to_owned));
    let (body, total) = rows.split_at(rows.len() - 1);
    for r in body {
        line(&mut out, r);
    }
    line(&mut out, &total[0]);
    out
}

fn row(c: &ClassDiff) -> [String; 7] {
    let mut name = shorten(&c.name);
    if let Some(location) = c.location {
        let _ = write!(name, " ({location})");
    }
    [
        name,
        c.new_count.to_string(),
        c.deleted_count.to_string(),
        signed(c.delta_count),
        c.alloc_size.to_string(),
        c.freed_size.to_string(),
        signed(c.size_delta),
    ]
}

fn shorten(name: &str) -> String {
    // Control characters (names can be string contents) would break the layout.
    let clean: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() <= MAX_NAME_WIDTH {
        return clean;
    }
    let mut short: String = clean.chars().take(MAX_NAME_WIDTH - 1).collect();
    short.push('…');
    short
}

fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}
