//! `heapgate diff BASE NEW`: DevTools' Comparison view, headless.

use heapgate_snapshot::{SortBy, comparability, diff, load, render_table};

use crate::args::DiffArgs;
use crate::{Error, Io, output_error, warn};

pub(crate) fn run(args: &DiffArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let sort: SortBy = args
        .sort
        .parse()
        .map_err(|e| Error::Config(format!("--sort: {e}")))?;
    let open = |path: &std::path::Path| {
        load(path).map_err(|e| Error::Failed(format!("{}: {e}", path.display())))
    };
    let base = open(&args.base)?;
    let new = open(&args.new)?;
    let check = comparability(&base, &new);
    if check.is_warning() {
        warn(io, &check.message);
    }
    let mut rows = diff(&base, &new);
    rows.sort(sort);
    let text = if args.json {
        let mut json =
            serde_json::to_string_pretty(&rows).map_err(|e| Error::Failed(e.to_string()))?;
        json.push('\n');
        json
    } else {
        render_table(&rows, Some(args.top))
    };
    io.stdout
        .write_all(text.as_bytes())
        .map_err(|e| output_error(&e))
}
