//! Tables as aligned plain text, for terminals and CI logs: the Comparison view (with retained
//! sizes and, for three snapshots, `# Kept`), the retainer paths under it, and the Summary view.
//!
//! Numbers are exact bytes and counts, as DevTools shows them, with the deltas signed so that
//! growth stands out; the totals row always covers every class, also when only the top rows are
//! printed. Names longer than [`MAX_NAME_WIDTH`] characters are shortened with `…` (plain-object
//! shapes can be long).

use std::fmt::Write as _;

use crate::diff::{ClassDiff, Diff};
use crate::holder;
use crate::model::PathStep;
use crate::model::{ClassSummary, Location};

/// Widest class column, in characters.
pub const MAX_NAME_WIDTH: usize = 60;

const HEADERS: [&str; 9] = [
    "Class",
    "# New",
    "# Deleted",
    "# Delta",
    "Alloc. Size",
    "Freed Size",
    "Size Delta",
    "Retained Size",
    "Retained Delta",
];

const KEPT_HEADERS: [&str; 2] = ["# Kept", "Kept Retained"];

/// Two snapshots: what the new objects retain (the default order).
const NEW_RETAINED_HEADER: &str = "New Retained";

/// The rows of `diff` (the first `top` of them, if given) as a table with a header and a totals
/// row, each line ending in `\n`. Rows with `# Kept` (three snapshots) get its two columns.
pub fn render_table(diff: &Diff, top: Option<usize>) -> String {
    let shown = match top {
        Some(n) => diff.top(n),
        None => &diff.classes[..],
    };
    let kept = diff.classes.iter().any(|c| c.kept_count.is_some());
    let held = diff.classes.iter().any(|c| c.new_retained_size.is_some());
    let t = &diff.totals;
    let mut headers: Vec<String> = HEADERS.iter().map(|h| (*h).to_owned()).collect();
    if kept {
        headers.extend(KEPT_HEADERS.iter().map(|h| (*h).to_owned()));
    } else if held {
        headers.push(NEW_RETAINED_HEADER.to_owned());
    }
    let mut rows: Vec<Vec<String>> = shown.iter().map(|c| row(c, kept, held)).collect();
    let hidden = diff.classes.len() - shown.len();
    let mut total = vec![
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
        // Retained sizes of classes overlap; their sum means nothing.
        String::new(),
        String::new(),
    ];
    if kept {
        let count: u64 = diff.classes.iter().filter_map(|c| c.kept_count).sum();
        total.extend([count.to_string(), String::new()]);
    } else if held {
        total.push(String::new());
    }
    rows.push(total);
    aligned(&headers, &rows)
}

/// Lines of cells, the first column left-aligned and the others right-aligned.
fn aligned(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let _ = write!(out, "{:<w$}", cells[0], w = widths[0]);
        for (cell, w) in cells[1..].iter().zip(&widths[1..]) {
            let _ = write!(out, "  {cell:>w$}");
        }
        // Padding of an empty last cell is noise.
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    };
    line(&mut out, headers);
    for r in rows {
        line(&mut out, r);
    }
    out
}

/// `Name (file:line:column)`, or the name alone.
fn class_label(name: &str, location: Option<Location>, script: Option<&str>) -> String {
    let mut label = shorten(name);
    if let Some(l) = location {
        match script {
            Some(script) => {
                let _ = write!(
                    label,
                    " ({script}:{}:{})",
                    u64::from(l.line) + 1,
                    u64::from(l.column) + 1
                );
            }
            None => {
                let _ = write!(label, " ({l})");
            }
        }
    }
    label
}

fn row(c: &ClassDiff, kept: bool, held: bool) -> Vec<String> {
    let mut cells = vec![
        class_label(&c.name, c.location, c.script.as_deref()),
        c.new_count.to_string(),
        c.deleted_count.to_string(),
        signed(c.delta_count),
        c.alloc_size.to_string(),
        c.freed_size.to_string(),
        signed(c.size_delta),
        c.retained_size.to_string(),
        signed(c.retained_size_delta),
    ];
    if kept {
        cells.push(c.kept_count.unwrap_or_default().to_string());
        cells.push(c.kept_retained_size.unwrap_or_default().to_string());
    } else if held {
        cells.push(c.new_retained_size.unwrap_or_default().to_string());
    }
    cells
}

/// How many steps of a path the default view shows at most (with its two header lines and the
/// line for the cut prefix, a group fits in 25 lines).
pub const SHOWN_STEPS: usize = 21;

/// The retainer groups of the rows that have them, each with its holder line and its path from
/// the root side to the object. Unless `full_paths`, a path's prefix through Node.js and package
/// internals (before the first step in user code or the holder's owner) is one line with its
/// step count, and at most [`SHOWN_STEPS`] steps are shown. Empty when no row has any.
pub fn render_retainers(diff: &Diff, full_paths: bool) -> String {
    let mut out = String::new();
    for c in diff.classes.iter().filter(|c| !c.retainers.is_empty()) {
        let (what, count) = match c.kept_count {
            Some(kept) => ("kept", kept),
            None => ("new", c.new_count),
        };
        let _ = writeln!(
            out,
            "\n{}: {count} {what} objects, held by:",
            class_label(&c.name, c.location, c.script.as_deref())
        );
        render_groups(&mut out, &c.retainers, "objects", full_paths);
    }
    out
}

/// The one-line answer for the first row with retainers: `Quote (app.js:5:26): 3000 kept objects
/// (576000 bytes), held by variable priceFor (…) → lodash memoized → Hash, 3000 keys`; `None`
/// when no row has retainers.
pub fn render_answer(diff: &Diff) -> Option<String> {
    let c = diff.classes.iter().find(|c| !c.retainers.is_empty())?;
    let group = &c.retainers[0];
    let (what, count, size) = match (c.kept_count, c.kept_retained_size) {
        (Some(kept), Some(size)) => ("kept", kept, size),
        _ => ("new", c.new_count, c.new_retained_size.unwrap_or_default()),
    };
    let mut line = format!(
        "{}: {count} {what} objects ({size} bytes retained)",
        class_label(&c.name, c.location, c.script.as_deref())
    );
    match &group.holder {
        Some(h) => {
            let _ = write!(line, ", held by {}", h.describe());
        }
        None => line.push_str(", held by the path below"),
    }
    if group.count != count {
        let _ = write!(line, " ({} of them)", group.count);
    }
    Some(line)
}

fn node_label(step: &PathStep) -> String {
    let mut label = shorten(&step.node);
    if let Some(name) = &step.name {
        let _ = write!(label, " {}", shorten(name));
    }
    if let Some(location) = &step.location {
        let _ = write!(label, " ({location})");
    }
    label
}

/// The Summary view: the first `top` classes (all if `None`), with Count, Shallow Size and
/// Retained Size, and a totals row for count and shallow size.
pub fn render_summary(classes: &[ClassSummary], top: Option<usize>) -> String {
    let shown = &classes[..top.unwrap_or(classes.len()).min(classes.len())];
    let headers: Vec<String> = ["Class", "Count", "Shallow Size", "Retained Size"]
        .iter()
        .map(|h| (*h).to_owned())
        .collect();
    let mut rows: Vec<Vec<String>> = shown
        .iter()
        .map(|c| {
            vec![
                class_label(&c.name, c.location, c.script.as_deref()),
                c.count.to_string(),
                c.self_size.to_string(),
                c.retained_size.to_string(),
            ]
        })
        .collect();
    let hidden = classes.len() - shown.len();
    rows.push(vec![
        if hidden > 0 {
            format!("Total ({} classes, {hidden} not shown)", classes.len())
        } else {
            format!("Total ({} classes)", classes.len())
        },
        classes.iter().map(|c| c.count).sum::<u64>().to_string(),
        classes.iter().map(|c| c.self_size).sum::<u64>().to_string(),
        String::new(),
    ]);
    aligned(&headers, &rows)
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

/// Writes retainer `groups` as [`render_retainers`] does: a header line per group (`count`
/// `unit`, bytes retained, the holder) and its path, shortened unless `full_paths`.
pub(crate) fn render_groups(
    out: &mut String,
    groups: &[crate::RetainerGroup],
    unit: &str,
    full_paths: bool,
) {
    for group in groups {
        let _ = write!(
            out,
            "  {} {unit}, {} bytes retained",
            group.count, group.retained_size
        );
        match &group.holder {
            Some(h) => {
                let _ = writeln!(out, ", held by {}:", h.describe());
            }
            None => out.push_str(":\n"),
        }
        let from = if full_paths {
            0
        } else {
            holder::shown_from(&group.path, group.holder.as_ref(), SHOWN_STEPS)
        };
        if from > 0 {
            let owners = holder::owners(&group.path[1..from]);
            let _ = writeln!(
                out,
                "    {} ─ … {from} steps{} … (--full-paths shows them)",
                node_label(&group.path[0]),
                if owners.is_empty() {
                    String::new()
                } else {
                    format!(" through {}", owners.join(", "))
                }
            );
        }
        for (i, step) in group.path.iter().enumerate().skip(from) {
            if i == from {
                let _ = writeln!(out, "    {}", node_label(step));
            } else {
                let _ = writeln!(
                    out,
                    "    {}─ {} ({}) → {}",
                    " ".repeat(2 * (i - from - 1)),
                    shorten(&step.edge),
                    step.edge_type,
                    node_label(step)
                );
            }
        }
    }
}
