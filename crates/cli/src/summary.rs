//! `heapgate summary FILE`: DevTools' Summary view, headless.

use std::path::Path;

use heapgate_snapshot::{ClassSummary, Summary, load, render_summary};

use crate::args::SummaryArgs;
use crate::{Error, Io, html, output_error};

pub(crate) fn run(args: &SummaryArgs, io: &mut Io<'_>) -> Result<(), Error> {
    if crate::profiles::are_profiles(std::slice::from_ref(&args.file))? {
        return crate::profiles::summary(args, io);
    }
    if let Some(out) = &args.html {
        html::check_target(out, std::slice::from_ref(&args.file))?;
    }
    let summary = if crate::cache::cache(&args.cache, io).is_some() {
        // Through the index: the first summary of a file writes it, later ones load it.
        crate::cache::open_summary(&args.file, &args.cache, io)?
    } else {
        let inputs = crate::stored::inputs(std::slice::from_ref(&args.file))?;
        load(&inputs.paths[0]).map_err(|e| Error::Failed(e.to_string()))?
    };
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
        .map_err(|e| output_error(&e))?;
    if let Some(out) = &args.html {
        write_report(&args.file, out, &summary, &classes, io)?;
    }
    Ok(())
}

/// Writes the HTML summary of `file` to `out` and says so on stderr.
pub(crate) fn write_report(
    file: &Path,
    out: &Path,
    summary: &Summary,
    classes: &[ClassSummary],
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let files = [file.to_owned()];
    let command = html::command_line([
        "heapgate".to_owned(),
        "summary".to_owned(),
        file.display().to_string(),
        "--html".to_owned(),
        out.display().to_string(),
    ]);
    let context = html::Context {
        files: &files,
        warnings: &[],
        commands: &[command],
        now: (io.now)(),
    };
    let page = html::summary_page(classes, summary.info(), &context)?;
    html::write(out, &files, &page, io)
}
