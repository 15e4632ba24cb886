//! `heapgate summary FILE`: DevTools' Summary view, headless.

use heapgate_snapshot::{load, render_summary};

use crate::args::SummaryArgs;
use crate::{Error, Io, output_error};

pub(crate) fn run(args: &SummaryArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let inputs = crate::stored::inputs(std::slice::from_ref(&args.file))?;
    let summary = load(&inputs.paths[0]).map_err(|e| Error::Failed(e.to_string()))?;
    let classes = summary.classes();
    let text = if args.json {
        let mut json = serde_json::to_string_pretty(&serde_json::json!({
            "info": summary.info(),
            "classes": classes,
        }))
        .map_err(|e| Error::Failed(e.to_string()))?;
        json.push('\n');
        json
    } else {
        render_summary(&classes, Some(args.top))
    };
    io.stdout
        .write_all(text.as_bytes())
        .map_err(|e| output_error(&e))
}
