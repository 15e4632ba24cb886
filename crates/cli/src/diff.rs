//! `heapgate diff BASE NEW` / `heapgate diff A B C`: DevTools' Comparison view, headless, with
//! retained sizes, `# Kept` and who holds the objects.

use std::path::{Path, PathBuf};

use heapgate_snapshot::{
    Comparability, CompareOptions, Comparison, OpenOptions, SortBy, compare, compare_with,
    render_answer, render_retainers, render_table,
};

use crate::args::DiffArgs;
use crate::{Error, Io, html, output_error, warn};

/// The warnings for files that do not look like one series, naming the pair when there are
/// three files.
pub(crate) fn warnings(files: &[PathBuf], checks: &[Comparability]) -> Vec<String> {
    files
        .windows(2)
        .zip(checks)
        .filter(|(_, check)| check.is_warning())
        .map(|(pair, check)| {
            if files.len() == 3 {
                format!(
                    "{} → {}: {}",
                    pair[0].display(),
                    pair[1].display(),
                    check.message
                )
            } else {
                check.message.clone()
            }
        })
        .collect()
}

/// Writes the HTML report of `comparison` to `out` and says so on stderr.
pub(crate) fn write_report(
    out: &Path,
    comparison: &Comparison,
    sort: Option<SortBy>,
    fail_on_growth: Option<u64>,
    context: &html::Context<'_>,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let page = html::diff_page(comparison, sort, fail_on_growth, context)?;
    html::write(out, context.files, &page, io)
}

pub(crate) fn run(args: &DiffArgs, io: &mut Io<'_>) -> Result<(), Error> {
    if crate::profiles::are_profiles(&args.files)? {
        return crate::profiles::diff(args, io);
    }
    let sort: Option<SortBy> = args
        .sort
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| Error::Config(format!("--sort: {e}")))?;
    if let Some(out) = &args.html {
        html::check_target(out, &args.files)?;
    }
    let options = CompareOptions {
        sort,
        // Paths only for classes the table shows.
        retainer_classes: args.retainers.min(args.top),
        groups_per_class: 3,
    };
    // s3:// objects stream in through named pipes; local files are read in place.
    let inputs = crate::stored::inputs(&args.files)?;
    let comparison = match crate::cache::cache(&args.cache, io) {
        None => compare(&inputs.paths, &options).map_err(|e| Error::Failed(e.to_string()))?,
        Some(cache) => {
            // Through the index: files analysed before load in a fraction of the time.
            let identities = crate::cache::identities(&args.files, Some(&cache))?;
            let (work, bar) = crate::cache::work(io);
            let open = OpenOptions::new().cache(Some(cache)).work(work);
            let result = compare_with(&inputs.paths, &identities, &options, &open);
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            let (comparison, cache_warnings) = result.map_err(|e| Error::Failed(e.to_string()))?;
            for message in &cache_warnings {
                warn(io, message);
            }
            comparison
        }
    };
    drop(inputs);
    let warnings = warnings(&args.files, &comparison.checks);
    for message in &warnings {
        warn(io, message);
    }
    let rows = &comparison.diff;
    let text = if args.json {
        let mut json =
            serde_json::to_string_pretty(rows).map_err(|e| Error::Failed(e.to_string()))?;
        json.push('\n');
        json
    } else {
        let mut text = render_table(rows, Some(args.top));
        if let Some(answer) = render_answer(rows) {
            text.push_str(&format!("\nWho holds it: {answer}\n"));
        }
        text.push_str(&render_retainers(rows, args.full_paths));
        text
    };
    io.stdout
        .write_all(text.as_bytes())
        .map_err(|e| output_error(&e))?;

    // The report is written before the gate decides: a failed CI job is when it is read.
    if let Some(out) = &args.html {
        let command =
            html::diff_command(&args.files, sort, args.retainers, args.fail_on_growth, out);
        let report = html::Context {
            files: &args.files,
            warnings: &warnings,
            commands: &[command],
            now: (io.now)(),
        };
        write_report(out, &comparison, sort, args.fail_on_growth, &report, io)?;
    }

    if let Some(limit) = args.fail_on_growth {
        let three = args.files.len() == 3;
        let offending: Vec<String> = rows
            .classes
            .iter()
            .filter_map(|c| {
                let growth = if three {
                    c.kept_retained_size.unwrap_or_default() as i64
                } else {
                    c.retained_size_delta
                };
                (growth > limit as i64).then(|| format!("{} (+{growth} bytes)", c.name))
            })
            .collect();
        if !offending.is_empty() {
            let what = if three {
                "kept objects retain"
            } else {
                "retained size grew by"
            };
            return Err(Error::Growth(format!(
                "--fail-on-growth {limit}: {what} more than {limit} bytes in {} class{}: {}",
                offending.len(),
                if offending.len() == 1 { "" } else { "es" },
                offending.join(", ")
            )));
        }
    }
    Ok(())
}
