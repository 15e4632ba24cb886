//! `--html FILE`: the leak hunt (or one snapshot's summary) as one self-contained page.
//!
//! The page is static HTML for what the CLI knows (files, times, warnings, the commands that
//! reproduce it), one JSON blob with the results the text report prints (the same structs,
//! serialized), and an inline script that turns the blob into the growth chart, the sortable
//! table and the retainer tree. Snapshot-derived strings are class, property and edge names
//! (never string values: the result structs carry none), and they are attacker-influenced, so:
//!
//! - in HTML text and attributes they are escaped ([`text`]); in the JSON blob `<`, `>`, `&`,
//!   U+2028 and U+2029 are `\u` escapes ([`json_for_script`]), so nothing can end the `<script>`
//!   element or start markup;
//! - the script puts them on the page with `textContent` and DOM properties only;
//! - a Content-Security-Policy meta tag (`default-src 'none'`) allows exactly the inline script
//!   and style by their SHA-256 hashes: even injected markup could neither run nor load anything.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use heapgate_snapshot::{ClassDiff, ClassSummary, Comparison, SnapshotInfo, SortBy};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Error;

const SCRIPT: &str = concat!(
    include_str!("html/common.js"),
    include_str!("html/report.js")
);
pub(crate) const STYLE: &str = include_str!("html/report.css");

/// Rows the page carries at most (the largest first; the totals cover all). Keeps the page
/// small on snapshots with thousands of plain-object shapes.
const MAX_ROWS: usize = 2000;
/// Classes drawn in the growth chart.
const CHART_CLASSES: usize = 6;

/// What the header says about one input file.
struct FileMeta {
    path: String,
    task: Option<String>,
    /// When it was taken (from the file name heapgate gives it), else when it was last modified.
    taken: Option<(DateTime<Utc>, &'static str)>,
}

impl FileMeta {
    fn of(path: &Path) -> FileMeta {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (task, stamp) = match task_and_stamp(&name) {
            Some((task, stamp)) => (Some(task), Some(stamp)),
            None => (None, None),
        };
        let taken = stamp.map(|s| (s, "taken")).or_else(|| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .map(|t| (DateTime::<Utc>::from(t), "file modified"))
        });
        FileMeta {
            path: path.display().to_string(),
            task,
            taken,
        }
    }
}

/// The task id and time in a name heapgate gives snapshots: `<task>-<YYYYMMDDTHHMMSSZ>…`
/// (fetch may add `-N` or a compression suffix).
fn task_and_stamp(name: &str) -> Option<(String, DateTime<Utc>)> {
    let bytes = name.as_bytes();
    (1..bytes.len()).rev().find_map(|i| {
        let stamp = bytes.get(i + 1..i + 17)?;
        let shaped = bytes[i] == b'-'
            && stamp[..8].iter().all(u8::is_ascii_digit)
            && stamp[8] == b'T'
            && stamp[9..15].iter().all(u8::is_ascii_digit)
            && stamp[15] == b'Z';
        if !shaped {
            return None;
        }
        let time = chrono::NaiveDateTime::parse_from_str(&name[i + 1..i + 16], "%Y%m%dT%H%M%S")
            .ok()?
            .and_utc();
        let task = &name[..i];
        (!task.is_empty()).then(|| (task.to_owned(), time))
    })
}

/// `s` escaped for HTML text and for double- or single-quoted attribute values.
pub(crate) fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `value` as JSON that can sit inside a `<script>` element: `<`, `>` and `&` (which could end
/// the element or open a comment) and U+2028/U+2029 are `\u` escapes. They only occur inside
/// JSON strings, where the escapes mean the same characters.
pub(crate) fn json_for_script(value: &impl Serialize) -> Result<String, Error> {
    let json = serde_json::to_string(value).map_err(|e| Error::Failed(e.to_string()))?;
    let mut out = String::with_capacity(json.len() + 64);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// A word for a POSIX shell: as is when it is plain, else single-quoted.
pub(crate) fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:=@%+,-".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A command line from words, each quoted for the shell.
pub(crate) fn command_line<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> String {
    words
        .into_iter()
        .map(|w| shell_word(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `heapgate diff FILES… [--sort S] [--retainers N] [--fail-on-growth B] --html OUT`.
pub(crate) fn diff_command(
    files: &[PathBuf],
    sort: Option<SortBy>,
    retainers: usize,
    fail_on_growth: Option<u64>,
    out: &Path,
) -> String {
    let mut words: Vec<String> = vec!["heapgate".into(), "diff".into()];
    words.extend(files.iter().map(|f| f.display().to_string()));
    if let Some(sort) = sort {
        words.extend(["--sort".to_owned(), sort.to_string()]);
    }
    if retainers != 3 {
        words.extend(["--retainers".to_owned(), retainers.to_string()]);
    }
    if let Some(limit) = fail_on_growth {
        words.extend(["--fail-on-growth".to_owned(), limit.to_string()]);
    }
    words.extend(["--html".to_owned(), out.display().to_string()]);
    command_line(words)
}

/// One class's numbers in one file, for the growth chart.
#[derive(Serialize, Default, Clone, Copy)]
struct Point {
    count: u64,
    self_size: u64,
    retained_size: u64,
}

#[derive(Serialize)]
struct Series<'a> {
    name: &'a str,
    location: Option<heapgate_snapshot::Location>,
    script: Option<&'a str>,
    points: Vec<Point>,
}

#[derive(Serialize)]
struct Growth<'a> {
    labels: Vec<String>,
    classes: Vec<Series<'a>>,
}

/// The JSON blob the script renders.
#[derive(Serialize)]
struct Data<'a> {
    kind: &'static str,
    three: bool,
    /// The column the rows are sorted by.
    sort_key: &'static str,
    /// Diff rows (the first [`MAX_ROWS`]), as `heapgate diff --json` prints them.
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<&'a [ClassDiff]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    totals: Option<&'a heapgate_snapshot::Totals>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kept_total: Option<u64>,
    /// Summary classes (the first [`MAX_ROWS`]), as `heapgate summary --json` prints them.
    #[serde(skip_serializing_if = "Option::is_none")]
    classes: Option<&'a [ClassSummary]>,
    rows_total: usize,
    growth: Growth<'a>,
    fail_on_growth: Option<u64>,
}

/// Everything a page shows besides the results.
pub(crate) struct Context<'a> {
    /// The snapshot files, oldest first.
    pub(crate) files: &'a [PathBuf],
    /// The warnings the CLI printed.
    pub(crate) warnings: &'a [String],
    /// Commands that reproduce the report.
    pub(crate) commands: &'a [String],
    pub(crate) now: DateTime<Utc>,
}

fn sort_key(sort: SortBy) -> &'static str {
    match sort {
        SortBy::SizeDelta => "size_delta",
        SortBy::CountDelta => "delta_count",
        SortBy::NewCount => "new_count",
        SortBy::RetainedDelta => "retained_size_delta",
        SortBy::Kept => "kept_retained_size",
        SortBy::NewRetained => "new_retained_size",
    }
}

/// The page for `heapgate diff` (two or three files); `sort` as given on the command line.
pub(crate) fn diff_page(
    comparison: &Comparison,
    sort: Option<SortBy>,
    fail_on_growth: Option<u64>,
    context: &Context<'_>,
) -> Result<String, Error> {
    let three = context.files.len() == 3;
    let sort = sort.unwrap_or(if three {
        SortBy::Kept
    } else {
        SortBy::NewRetained
    });
    let rows = &comparison.diff.classes;
    let labels: Vec<String> = if three {
        ["A", "B", "C"].map(str::to_owned).to_vec()
    } else {
        ["BASE", "NEW"].map(str::to_owned).to_vec()
    };
    let classes = rows
        .iter()
        .take(CHART_CLASSES)
        .map(|row| Series {
            name: &row.name,
            location: row.location,
            script: row.script.as_deref(),
            points: comparison
                .files
                .iter()
                .map(|file| {
                    file.classes
                        .iter()
                        .find(|c| c.name == row.name && c.location == row.location)
                        .map(|c| Point {
                            count: c.count,
                            self_size: c.self_size,
                            retained_size: c.retained_size,
                        })
                        .unwrap_or_default()
                })
                .collect(),
        })
        .collect();
    let data = Data {
        kind: "diff",
        three,
        sort_key: sort_key(sort),
        rows: Some(&rows[..rows.len().min(MAX_ROWS)]),
        totals: Some(&comparison.diff.totals),
        kept_total: three.then(|| rows.iter().filter_map(|c| c.kept_count).sum()),
        classes: None,
        rows_total: rows.len(),
        growth: Growth { labels, classes },
        fail_on_growth,
    };
    let infos: Vec<&SnapshotInfo> = comparison.files.iter().map(|f| &f.info).collect();
    let mut verdicts = Vec::new();
    for (pair, check) in labels_of(context.files.len())
        .windows(2)
        .zip(&comparison.checks)
    {
        verdicts.push(format!("{} → {}: {}", pair[0], pair[1], check.message));
    }
    let what = if three {
        "three snapshots: objects new in B and still alive in C (# Kept) are the leak"
    } else {
        "two snapshots: objects new in NEW, as DevTools' Comparison view counts them"
    };
    page(&data, &infos, &verdicts, what, context)
}

/// The page for `heapgate summary`.
pub(crate) fn summary_page(
    classes: &[ClassSummary],
    info: &SnapshotInfo,
    context: &Context<'_>,
) -> Result<String, Error> {
    let growth = Growth {
        labels: vec![file_name(&context.files[0])],
        classes: classes
            .iter()
            .take(CHART_CLASSES + 2)
            .map(|c| Series {
                name: &c.name,
                location: c.location,
                script: c.script.as_deref(),
                points: vec![Point {
                    count: c.count,
                    self_size: c.self_size,
                    retained_size: c.retained_size,
                }],
            })
            .collect(),
    };
    let data = Data {
        kind: "summary",
        three: false,
        sort_key: "retained_size",
        rows: None,
        totals: None,
        kept_total: None,
        classes: Some(&classes[..classes.len().min(MAX_ROWS)]),
        rows_total: classes.len(),
        growth,
        fail_on_growth: None,
    };
    page(
        &data,
        &[info],
        &[],
        "one snapshot: DevTools' Summary view",
        context,
    )
}

fn labels_of(files: usize) -> Vec<&'static str> {
    match files {
        1 => vec![""],
        2 => vec!["BASE", "NEW"],
        _ => vec!["A", "B", "C"],
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}

fn human_bytes(n: u64) -> String {
    bytesize::ByteSize(n).display().si().to_string()
}

pub(crate) fn csp_hash(source: &str) -> String {
    let digest = Sha256::digest(source.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The top of a report page, the same for every kind: the CSP that admits exactly this page's
/// script and style, the title, and one line on what the page shows.
#[derive(Clone, Copy)]
pub(crate) struct Head<'a> {
    pub title: &'a str,
    pub what: &'a str,
    pub note: &'a str,
    pub style: &'a str,
    pub script: &'a str,
    pub now: DateTime<Utc>,
}

pub(crate) fn head(h: &mut String, head: Head<'_>) {
    let csp = format!(
        "default-src 'none'; script-src {}; style-src {}; img-src 'none'; base-uri 'none'; form-action 'none'",
        csp_hash(head.script),
        csp_hash(head.style)
    );
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"heapgate {version}\">\n\
         <title>{title}</title>\n<style>{style}</style>\n</head>\n<body>\n<header>\n\
         <h1>{title}</h1>\n<p class=\"sub\">{what}. Generated <time datetime=\"{now}\">{now_h}</time> \
         by heapgate {version}. {note}</p>\n",
        csp = text(&csp),
        version = text(env!("HEAPGATE_VERSION")),
        title = text(head.title),
        style = head.style,
        what = text(head.what),
        now = text(&head.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        now_h = text(&head.now.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
        note = text(head.note),
    );
}

fn page(
    data: &Data<'_>,
    infos: &[&SnapshotInfo],
    verdicts: &[String],
    what: &str,
    context: &Context<'_>,
) -> Result<String, Error> {
    let json = json_for_script(data)?;
    let metas: Vec<FileMeta> = context.files.iter().map(|f| FileMeta::of(f)).collect();
    let summary = data.kind == "summary";
    let tasks: Vec<&str> = {
        let mut t: Vec<&str> = metas.iter().filter_map(|m| m.task.as_deref()).collect();
        t.dedup();
        t
    };
    let title = match (summary, tasks.as_slice()) {
        (true, _) => format!("heapgate summary: {}", file_name(&context.files[0])),
        (false, [task]) => format!("heapgate diff: task {task}, {} snapshots", metas.len()),
        (false, _) => format!("heapgate diff: {} snapshots", metas.len()),
    };
    let mut h = String::with_capacity(json.len() + SCRIPT.len() + STYLE.len() + 8192);
    head(
        &mut h,
        Head {
            title: &title,
            what,
            note: "Only class, property and edge names appear here, never string values from the heap.",
            style: STYLE,
            script: SCRIPT,
            now: context.now,
        },
    );
    h.push_str(
        "<table class=\"files\">\n<thead><tr><th></th><th>File</th><th>Task</th><th>Taken</th>\
         <th>Heap</th><th>Growth</th><th>Objects</th><th>Nodes</th></tr></thead>\n<tbody>\n",
    );
    let labels = labels_of(metas.len());
    let mut previous: Option<u64> = None;
    for ((meta, info), label) in metas.iter().zip(infos).zip(&labels) {
        let taken = match meta.taken {
            Some((t, how)) => format!(
                "<time datetime=\"{}\">{}</time>{}",
                text(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                text(&t.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
                if how == "taken" {
                    String::new()
                } else {
                    format!(" <span class=\"note\">({})</span>", text(how))
                }
            ),
            None => String::new(),
        };
        let heap = info.total_self_size;
        let growth = previous.map_or_else(String::new, |p| {
            let d = heap as i64 - p as i64;
            let sign = if d >= 0 { "+" } else { "−" };
            format!(
                "<span title=\"{d} bytes\">{sign}{}</span>",
                human_bytes(d.unsigned_abs())
            )
        });
        previous = Some(heap);
        let _ = writeln!(
            h,
            "<tr><th>{label}</th><td class=\"mono\">{path}</td><td class=\"mono\">{task}</td>\
             <td>{taken}</td><td class=\"num\" title=\"{heap} bytes (self sizes of the counted \
             objects)\">{heap_h}</td><td class=\"num\">{growth}</td><td class=\"num\">{objects}</td>\
             <td class=\"num\">{nodes}</td></tr>",
            label = text(label),
            path = text(&meta.path),
            task = text(meta.task.as_deref().unwrap_or("")),
            heap_h = human_bytes(heap),
            objects = info.counted_nodes,
            nodes = info.node_count,
        );
    }
    h.push_str("</tbody>\n</table>\n");
    if tasks.len() > 1 {
        h.push_str(
            "<p class=\"note\">The file names name different tasks: objects are matched by id, \
             which only means something within one process.</p>\n",
        );
    }
    if !context.warnings.is_empty() {
        h.push_str("<ul class=\"warnings\">\n");
        for w in context.warnings {
            let _ = writeln!(h, "<li>warning: {}</li>", text(w));
        }
        h.push_str("</ul>\n");
    }
    if !verdicts.is_empty() {
        h.push_str("<ul class=\"verdicts\">\n");
        for v in verdicts {
            let _ = writeln!(h, "<li>{}</li>", text(v));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</header>\n<main>\n");
    if summary {
        h.push_str("<h2>Largest classes</h2>\n");
    } else {
        h.push_str("<h2>Growth of the top classes</h2>\n");
    }
    h.push_str(
        "<div id=\"charts\" class=\"charts\"></div>\n<noscript><p>This report draws its \
         tables with JavaScript; the data is in the page source.</p></noscript>\n",
    );
    if !summary {
        h.push_str(
            "<h2>Who holds it</h2>\n<p class=\"note\">Objects of each top class grouped by the \
             retainer path DevTools' Retainers pane opens first, from the object up to a root. \
             Click, or use the arrow keys (→ opens, ← closes, Enter toggles).</p>\n\
             <ul id=\"holders\" class=\"tree\" role=\"tree\" aria-label=\"Who holds the top \
             classes\"></ul>\n",
        );
    }
    let _ = write!(
        h,
        "<h2>{}</h2>\n<div class=\"controls\"><label>Filter classes <input id=\"filter\" \
         type=\"search\" placeholder=\"class name or file\" autocomplete=\"off\"></label>\
         <span id=\"shown\" class=\"note\"></span><button id=\"more\" \
         type=\"button\" hidden></button></div>\n\
         <div class=\"scroll\"><table id=\"rows\" class=\"rows\"></table></div>\n",
        if summary { "Summary" } else { "Comparison" }
    );
    if !summary {
        h.push_str(
            "<p class=\"note\">Sizes are self sizes (Alloc., Freed, Size Delta) and DevTools' \
             Retained Size of the class in the newest file; exact bytes on hover. Click a column \
             to sort. Linked classes are the top classes, whose holders are above; those marked \
             <span class=\"badge\">leak</span> grew by at least a tenth of the most any of them \
             grew.</p>\n",
        );
    }
    h.push_str("<h2>Reproduce</h2>\n<pre>");
    for c in context.commands {
        let _ = writeln!(h, "{}", text(c));
    }
    h.push_str("</pre>\n</main>\n");
    let _ = write!(
        h,
        "<script type=\"application/json\" id=\"heapgate-data\">{json}</script>\n\
         <script>{SCRIPT}</script>\n</body>\n</html>\n"
    );
    Ok(h)
}

/// A usage error when `out` is one of the `inputs` (checked before any work, and again when
/// writing).
pub(crate) fn check_target(out: &Path, inputs: &[PathBuf]) -> Result<(), Error> {
    let Ok(target) = std::fs::canonicalize(out) else {
        return Ok(());
    };
    if inputs
        .iter()
        .any(|i| std::fs::canonicalize(i).is_ok_and(|i| i == target))
    {
        return Err(Error::Config(format!(
            "--html {}: that is one of the snapshots; choose another file",
            out.display()
        )));
    }
    Ok(())
}

/// Writes `page` to `out` (replacing an older report) through a temporary file renamed into
/// place, so a failure never leaves half a page. Refuses to replace one of the `inputs`.
/// Says so on stderr, with the page size.
pub(crate) fn write(
    out: &Path,
    inputs: &[PathBuf],
    page: &str,
    io: &mut crate::Io<'_>,
) -> Result<(), Error> {
    check_target(out, inputs)?;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let written = tempfile::Builder::new()
        .prefix(".heapgate-report-")
        .permissions(crate::mode::report())
        .tempfile_in(dir)
        .and_then(|mut file| {
            std::io::Write::write_all(&mut file, page.as_bytes())?;
            file.as_file().sync_all()?;
            file.persist(out).map_err(|e| e.error)?;
            Ok(())
        });
    written.map_err(|e| Error::Failed(format!("cannot write {}: {e}", out.display())))?;
    let _ = writeln!(
        io.stderr,
        "heapgate: wrote the report to {} ({})",
        out.display(),
        bytesize::ByteSize(page.len() as u64).display().si()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_cannot_end_the_script_element() {
        let hostile = "</script><script>alert(1)</script><!-- & \u{2028}\u{2029}";
        let json = json_for_script(&serde_json::json!({ "name": hostile })).unwrap();
        for bad in ['<', '>', '&', '\u{2028}', '\u{2029}'] {
            assert!(!json.contains(bad), "{json}");
        }
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["name"], hostile);
    }

    #[test]
    fn text_escapes_markup_and_quotes() {
        assert_eq!(
            text(r#"<img src=x onerror="a('1')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;1&#39;)&quot;&gt;&amp;"
        );
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("a/b-1.heapsnapshot"), "a/b-1.heapsnapshot");
        assert_eq!(shell_word("it's here"), r"'it'\''s here'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("$(rm)"), "'$(rm)'");
    }

    #[test]
    fn file_names_give_task_and_time() {
        let (task, time) = task_and_stamp("8f03e4-20261126T101500Z.heapsnapshot.zst").unwrap();
        assert_eq!(task, "8f03e4");
        assert_eq!(time.to_rfc3339(), "2026-11-26T10:15:00+00:00");
        let (task, _) = task_and_stamp("api-7f-20261126T101500Z-1.heapsnapshot").unwrap();
        assert_eq!(task, "api-7f");
        assert!(task_and_stamp("a.heapsnapshot").is_none());
        assert!(task_and_stamp("-20261126T101500Z.heapsnapshot").is_none());
        assert!(task_and_stamp("x-20261399T101500Z.heapsnapshot").is_none());
    }
}
