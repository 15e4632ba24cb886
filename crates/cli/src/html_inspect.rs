//! `inspect --html FILE`: the answer as one static page (no script at all), with the report
//! pages' style and rules: every name from the snapshot escaped ([`html::text`]), a
//! Content-Security-Policy that allows only the inline style, no string values from the heap.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use heapgate_snapshot::{EdgeView, ObjectRef, Page, RetainerGroup};

use crate::Error;
use crate::html::{self, STYLE, text};
use crate::inspect::Answer;

fn object_cell(o: &ObjectRef) -> String {
    format!(
        "<span class=\"mono\">@{}</span> {}{}",
        o.id,
        text(&o.class),
        o.location
            .as_deref()
            .map(|l| format!(" <span class=\"note\">{}</span>", text(l)))
            .unwrap_or_default()
    )
}

fn object_row(h: &mut String, o: &ObjectRef) {
    let _ = writeln!(
        h,
        "<td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
        object_cell(o),
        o.self_size,
        o.retained_size,
        o.distance
    );
}

fn page_note<T>(page: &Page<T>) -> String {
    match page.next {
        Some(next) => format!(
            "{}–{} of {} (more with --offset {next})",
            page.offset + 1,
            page.offset + page.items.len(),
            page.total
        ),
        None => format!("{} of {}", page.items.len(), page.total),
    }
}

const OBJECT_HEAD: &str =
    "<th>Object</th><th>Self size</th><th>Retained size</th><th>Distance</th>";

fn edges(h: &mut String, title: &str, page: &Page<EdgeView>) {
    let _ = writeln!(
        h,
        "<h2>{title}</h2>\n<p class=\"note\">{}</p>\n<div class=\"scroll\"><table class=\"rows\">\
         <thead><tr><th>Type</th><th>Name</th>{OBJECT_HEAD}</tr></thead><tbody>",
        text(&page_note(page))
    );
    for e in &page.items {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"mono\">{}</td>",
            text(&e.edge_type),
            text(&e.name)
        );
        object_row(h, &e.node);
    }
    h.push_str("</tbody></table></div>\n");
}

fn groups(h: &mut String, title: &str, unit: &str, groups: &[RetainerGroup]) {
    let _ = writeln!(h, "<h2>{title}</h2>");
    for g in groups {
        let _ = writeln!(
            h,
            "<h3>{} {unit}, {} bytes retained{}</h3>\n<ol class=\"path\">",
            g.count,
            g.retained_size,
            g.holder
                .as_ref()
                .map(|holder| format!(", held by {}", text(&holder.describe())))
                .unwrap_or_default()
        );
        for step in &g.path {
            let edge = if step.edge.is_empty() {
                String::new()
            } else {
                format!(
                    "<span class=\"mono\">{}</span> ({}) → ",
                    text(&step.edge),
                    text(&step.edge_type)
                )
            };
            let _ = writeln!(
                h,
                "<li>{edge}{}{}</li>",
                text(&step.node),
                step.location
                    .as_deref()
                    .map(|l| format!(" <span class=\"note\">{}</span>", text(l)))
                    .unwrap_or_default()
            );
        }
        h.push_str("</ol>\n");
    }
}

/// The page for `answer`; `command` reproduces it.
pub(crate) fn page(answer: &Answer, command: &str, now: DateTime<Utc>) -> Result<String, Error> {
    let title = match &answer.object {
        Some(o) => format!("heapgate inspect: @{} {}", o.object.id, o.object.class),
        None => format!("heapgate inspect: {}", answer.file),
    };
    let csp = format!(
        "default-src 'none'; style-src {}; img-src 'none'; base-uri 'none'; form-action 'none'",
        html::csp_hash(STYLE)
    );
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <meta name=\"generator\" content=\"heapgate {version}\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<header>\n\
         <h1>{title}</h1>\n<p class=\"sub\">{file}. Generated {now} by heapgate {version}. Only \
         class, property and edge names appear here, never string values from the heap.</p>\n\
         </header>\n<main>\n",
        csp = text(&csp),
        version = text(env!("HEAPGATE_VERSION")),
        title = text(&title),
        file = text(&answer.file),
        now = text(&now.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
    );
    if let Some(view) = &answer.object {
        let o = &view.object;
        let _ = writeln!(
            h,
            "<table class=\"files\"><tbody>\
             <tr><th>Object</th><td>{}</td></tr>\
             <tr><th>Type</th><td>{}</td></tr>\
             <tr><th>Self size</th><td class=\"num\">{} bytes</td></tr>\
             <tr><th>Retained size</th><td class=\"num\">{} bytes</td></tr>\
             <tr><th>Distance</th><td class=\"num\">{}</td></tr>{}{}\
             </tbody></table>",
            object_cell(o),
            text(&view.node_type),
            o.self_size,
            o.retained_size,
            o.distance,
            view.name
                .as_deref()
                .map(|n| format!("<tr><th>Name</th><td>{}</td></tr>", text(n)))
                .unwrap_or_default(),
            view.dominator
                .as_ref()
                .map(|d| format!("<tr><th>Dominated by</th><td>{}</td></tr>", object_cell(d)))
                .unwrap_or_default(),
        );
        edges(&mut h, "Edges", &view.edges);
        edges(&mut h, "Retainers", &view.retainers);
        groups(&mut h, "Retainer paths", "retainers", &view.paths);
    }
    if let Some(holders) = &answer.holders {
        groups(
            &mut h,
            &format!("Who holds {} ({} objects)", holders.class, holders.count),
            "objects",
            &holders.groups,
        );
    }
    if let Some(objects) = &answer.objects {
        let _ = writeln!(
            h,
            "<h2>Objects</h2>\n<p class=\"note\">{}</p>\n<div class=\"scroll\"><table \
             class=\"rows\"><thead><tr>{OBJECT_HEAD}</tr></thead><tbody>",
            text(&page_note(objects))
        );
        for o in &objects.items {
            h.push_str("<tr>");
            object_row(&mut h, o);
        }
        h.push_str("</tbody></table></div>\n");
    }
    if let Some(largest) = &answer.largest {
        h.push_str("<h2>Largest objects of the largest classes</h2>\n");
        for c in largest {
            let _ = writeln!(
                h,
                "<h3>{} — {} objects, {} bytes retained</h3>\n<div class=\"scroll\"><table \
                 class=\"rows\"><thead><tr>{OBJECT_HEAD}</tr></thead><tbody>",
                text(&c.class.name),
                c.class.count,
                c.class.retained_size
            );
            for o in &c.largest {
                h.push_str("<tr>");
                object_row(&mut h, o);
            }
            h.push_str("</tbody></table></div>\n");
        }
    }
    let _ = write!(
        h,
        "<h2>Reproduce</h2>\n<pre>{}</pre>\n</main>\n</body>\n</html>\n",
        text(command)
    );
    Ok(h)
}
