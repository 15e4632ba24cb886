//! `heapgate fetch --html FILE`: the report of the series just taken, as `heapgate diff` (or,
//! for a single snapshot, `heapgate summary`) would write it.

use std::path::{Path, PathBuf};

use heapgate_snapshot::{CompareOptions, compare, load};

use crate::args::FetchArgs;
use crate::{Error, Io, html, warn};

/// The files a report of `saved` compares: all of two or three; of more, the first and the
/// last two (objects new since the first that are still alive in the last).
fn chosen(saved: &[PathBuf]) -> Vec<PathBuf> {
    match saved.len() {
        0..=3 => saved.to_vec(),
        n => vec![saved[0].clone(), saved[n - 2].clone(), saved[n - 1].clone()],
    }
}

/// The fetch command that took the series (the base URL without credentials, the task that
/// was pinned).
fn fetch_command(args: &FetchArgs, task: Option<&str>, out: &Path) -> String {
    let mut words = vec![
        "heapgate".to_owned(),
        "fetch".to_owned(),
        heapgate_keys::redact_userinfo(&args.base_url).into_owned(),
    ];
    if let Some(task) = task {
        words.extend(["--task".to_owned(), task.to_owned()]);
    }
    words.extend([
        "--count".to_owned(),
        args.count.to_string(),
        "--interval".to_owned(),
        args.interval.to_string(),
        "--out".to_owned(),
        args.out.display().to_string(),
    ]);
    if let Some(path) = &args.path {
        words.extend(["--path".to_owned(), path.clone()]);
    }
    if args.profile {
        words.push("--profile".to_owned());
    }
    if let Some(format) = &args.format {
        words.extend(["--format".to_owned(), format.clone()]);
    }
    if args.keep_compressed {
        words.push("--keep-compressed".to_owned());
    }
    if args.no_compression {
        words.push("--no-compression".to_owned());
    }
    words.extend(["--html".to_owned(), out.display().to_string()]);
    html::command_line(words)
}

pub(super) fn write(
    args: &FetchArgs,
    out: &Path,
    saved: &[PathBuf],
    task: Option<&str>,
    fetch_warnings: &[String],
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let files = chosen(saved);
    let fetch = fetch_command(args, task, out);
    if args.profile {
        return crate::profiles::write_report(&files, &fetch, out, io);
    }
    if let [file] = files.as_slice() {
        let summary = load(file).map_err(|e| Error::Failed(e.to_string()))?;
        let classes = summary.classes();
        return crate::summary::write_report(file, out, &summary, &classes, io);
    }
    let comparison = compare(&files, &CompareOptions::default())
        .map_err(|e| Error::Failed(format!("cannot compare the snapshots for --html: {e}")))?;
    let mut warnings = fetch_warnings.to_vec();
    for message in crate::diff::warnings(&files, &comparison.checks) {
        warn(io, &message);
        warnings.push(message);
    }
    let commands = [fetch, html::diff_command(&files, None, 3, None, out)];
    let context = html::Context {
        files: &files,
        warnings: &warnings,
        commands: &commands,
        now: (io.now)(),
    };
    crate::diff::write_report(out, &comparison, None, None, &context, io)
}
