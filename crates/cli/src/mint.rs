//! `heapgate mint`.

use heapgate_protocol::{SnapshotQuery, TaskId};
use heapgate_token::{Keys, mint};

use crate::args::MintArgs;
use crate::url::snapshot_url;
use crate::{Error, Io, output_error};

/// `--json` output, fields in this order.
#[derive(serde::Serialize)]
struct Minted<'a> {
    hash: &'a str,
    hour: String,
    expires: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
}

pub(crate) fn run(args: &MintArgs, keys: &Keys, value: &str, io: &mut Io<'_>) -> Result<(), Error> {
    let value = args.instrument.signed_value(value);
    let token = mint(keys.signing(), &value, args.at.unwrap_or_else(io.now));
    let hash = token.to_string();
    let task = match args.task.as_deref() {
        Some(task) => Some(TaskId::new(task).map_err(|e| Error::Config(format!("--task: {e}")))?),
        None => None,
    };
    let query = SnapshotQuery {
        hash: Some(hash.clone()),
        task,
        ..SnapshotQuery::default()
    };
    let url = args
        .url
        .as_deref()
        .map(|base| {
            let path = args
                .path
                .as_deref()
                .unwrap_or(args.instrument.default_path());
            snapshot_url(base, path, &query)
        })
        .transpose()?;

    let line = if args.json {
        let minted = Minted {
            hash: &hash,
            hour: token.hour().to_string(),
            expires: token.hour().offset(1).to_string(),
            url: url.as_deref(),
        };
        serde_json::to_string(&minted).map_err(|e| Error::Failed(e.to_string()))?
    } else {
        url.unwrap_or(hash)
    };
    writeln!(io.stdout, "{line}").map_err(|e| output_error(&e))
}
