//! `heapgate diff BASE NEW` / `heapgate diff A B C`: DevTools' Comparison view, headless, with
//! retained sizes, `# Kept` and who holds the objects.

use heapgate_snapshot::{CompareOptions, SortBy, compare, render_retainers, render_table};

use crate::args::DiffArgs;
use crate::{Error, Io, output_error, warn};

pub(crate) fn run(args: &DiffArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let sort: Option<SortBy> = args
        .sort
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| Error::Config(format!("--sort: {e}")))?;
    let options = CompareOptions {
        sort,
        // Paths only for classes the table shows.
        retainer_classes: args.retainers.min(args.top),
        groups_per_class: 3,
    };
    let inputs = crate::stored::inputs(&args.files)?;
    let comparison = compare(&inputs.paths, &options).map_err(|e| Error::Failed(e.to_string()))?;
    for (pair, check) in args.files.windows(2).zip(&comparison.checks) {
        if check.is_warning() {
            let message = if args.files.len() == 3 {
                format!(
                    "{} → {}: {}",
                    pair[0].display(),
                    pair[1].display(),
                    check.message
                )
            } else {
                check.message.clone()
            };
            warn(io, &message);
        }
    }
    let rows = &comparison.diff;
    let text = if args.json {
        let mut json =
            serde_json::to_string_pretty(rows).map_err(|e| Error::Failed(e.to_string()))?;
        json.push('\n');
        json
    } else {
        let mut text = render_table(rows, Some(args.top));
        text.push_str(&render_retainers(rows));
        text
    };
    io.stdout
        .write_all(text.as_bytes())
        .map_err(|e| output_error(&e))?;

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
