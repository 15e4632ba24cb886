//! `heapgate inspect FILE [@ID]`: one object, the objects matching a filter (with who holds a
//! class), or the largest objects of the largest classes; text, `--json` or `--html`.

use heapgate_snapshot::{
    ClassInstances, Holders, ObjectOptions, ObjectRef, ObjectView, Page, Paging, Query,
    QueryAnswer, SnapshotError, Strings, render_holders, render_largest, render_object,
    render_query,
};
use serde::Serialize;

use crate::args::InspectArgs;
use crate::{Error, Io, html, output_error};

/// Everything `inspect` answers, as `--json` prints it; the parts not asked for are absent.
#[derive(Serialize)]
pub(crate) struct Answer {
    /// The snapshot, as given.
    pub(crate) file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) object: Option<ObjectView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) holders: Option<Holders>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) objects: Option<Page<ObjectRef>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) largest: Option<Vec<ClassInstances>>,
}

pub(crate) fn run(args: &InspectArgs, io: &mut Io<'_>) -> Result<(), Error> {
    if let Some(out) = &args.html {
        html::check_target(out, std::slice::from_ref(&args.file))?;
    }
    let snapshot = crate::cache::open(&args.file, &args.cache, io)?;
    let strings = if args.show_keys {
        Strings::Shown
    } else {
        Strings::Hidden
    };
    let paging = Paging {
        offset: args.offset,
        limit: args.limit,
    };
    // The engine names the file it read (a pipe, for s3://); the user named the argument.
    let failed = |e: SnapshotError| {
        Error::Failed(match e {
            SnapshotError::NoSuchObject { id, .. } => {
                format!("no object @{id} in {}", args.file.display())
            }
            SnapshotError::NoSuchClass { name, .. } => {
                format!("no class {name:?} in {}", args.file.display())
            }
            e => e.to_string(),
        })
    };
    let mut answer = Answer {
        file: args.file.display().to_string(),
        object: None,
        holders: None,
        objects: None,
        largest: None,
    };
    if let Some(id) = args.object {
        let options = ObjectOptions {
            edges: paging,
            retainers: paging,
            paths: args.paths,
            strings,
        };
        answer.object = Some(snapshot.object(id, &options).map_err(failed)?);
    } else if args.class.is_some() || args.property.is_some() || args.min_retained.is_some() {
        if let Some(class) = &args.class {
            answer.holders = Some(
                snapshot
                    .holders(class, args.location.as_deref(), args.paths)
                    .map_err(failed)?,
            );
        }
        let query = Query {
            class: args.class.clone(),
            location: args.location.clone(),
            edge: args.property.clone(),
            min_retained_size: args.min_retained.unwrap_or(0),
            paging,
            strings,
        };
        answer.objects = Some(snapshot.query(&query).map_err(failed)?.objects);
    } else {
        answer.largest = Some(snapshot.largest(args.top, args.limit));
    }

    let text = if args.json {
        let mut json =
            serde_json::to_string_pretty(&answer).map_err(|e| Error::Failed(e.to_string()))?;
        json.push('\n');
        json
    } else {
        let mut text = String::new();
        if let Some(object) = &answer.object {
            text.push_str(&render_object(object, args.full_paths));
        }
        if let Some(holders) = &answer.holders {
            text.push_str(&render_holders(holders, args.full_paths));
            text.push('\n');
        }
        if let Some(objects) = &answer.objects {
            text.push_str(&render_query(&QueryAnswer {
                objects: objects.clone(),
            }));
        }
        if let Some(largest) = &answer.largest {
            text.push_str(&render_largest(largest));
        }
        text
    };
    io.stdout
        .write_all(text.as_bytes())
        .map_err(|e| output_error(&e))?;
    if let Some(out) = &args.html {
        let mut words = vec![
            "heapgate".to_owned(),
            "inspect".to_owned(),
            args.file.display().to_string(),
        ];
        if let Some(id) = args.object {
            words.push(format!("@{id}"));
        }
        for (flag, value) in [
            ("--class", args.class.clone()),
            ("--location", args.location.clone()),
            ("--property", args.property.clone()),
            ("--min-retained", args.min_retained.map(|v| v.to_string())),
        ] {
            if let Some(value) = value {
                words.push(flag.to_owned());
                words.push(value);
            }
        }
        words.push("--html".to_owned());
        words.push(out.display().to_string());
        let page = crate::html_inspect::page(&answer, &html::command_line(words), (io.now)())?;
        html::write(out, std::slice::from_ref(&args.file), &page, io)?;
    }
    Ok(())
}
