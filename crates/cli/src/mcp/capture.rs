//! `take_snapshot`: `heapgate fetch` for an agent, only when the operator started the server
//! with `--capture BASE_URL` and a secret in its environment. The agent picks among the
//! operator's sidecars (never an address of its own: that would be a request forgery hole), and
//! the files land in a folder under a root, where the other tools read them.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use heapgate_keys::{LoadedKeys, SecretArgs};
use heapgate_protocol::SnapshotQuery;
use heapgate_token::Keys;
use rmcp::model::CallToolResult;

use super::Call;
use super::roots::{Allowed, Roots, quoted};
use super::tools::{CaptureHead, CaptureInput, EvidenceItem, capture_answer};
use crate::Error;
use crate::args::{FetchArgs, McpArgs};

/// The operator's permission to take snapshots.
pub(crate) struct Capture {
    sidecars: Vec<String>,
    dir: PathBuf,
    keys: Arc<Keys>,
    value: String,
}

impl Capture {
    /// `None` without `--capture`; a configuration error when a URL, the secret or the folder
    /// is wrong.
    pub(crate) fn new(
        args: &McpArgs,
        roots: &Roots,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Option<Capture>, Error> {
        if args.capture.is_empty() {
            return Ok(None);
        }
        let mut sidecars = Vec::new();
        for url in &args.capture {
            crate::url::snapshot_url(url, "/heapdump", &SnapshotQuery::default())?;
            sidecars.push(url.trim_end_matches('/').to_owned());
        }
        // The secret only from the environment: argv is visible to every user of the machine.
        let secrets = SecretArgs {
            secret_file: env("HEAPGATE_SECRET_FILE")
                .map(|files| {
                    files
                        .to_string_lossy()
                        .split(',')
                        .filter(|f| !f.is_empty())
                        .map(PathBuf::from)
                        .collect()
                })
                .unwrap_or_default(),
            secret: None,
        };
        let LoadedKeys { keys, .. } = heapgate_keys::load(&secrets, env).map_err(|e| {
            Error::Config(format!(
                "--capture: {e} (the secret comes from the environment only)"
            ))
        })?;
        let dir = match &args.capture_dir {
            Some(dir) => dir.clone(),
            None => roots.first_dir().map(PathBuf::from).ok_or_else(|| {
                Error::Config("--capture needs a local --root or --capture-dir".to_owned())
            })?,
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Config(format!("--capture-dir {}: {e}", dir.display())))?;
        let Ok(Allowed::Local(dir)) = roots.resolve(&dir.display().to_string()) else {
            return Err(Error::Config(format!(
                "--capture-dir {} is not under a --root; the other tools could not read it",
                dir.display()
            )));
        };
        let value = env("HEAPGATE_VALUE")
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_else(|| crate::args::DEFAULT_VALUE.to_owned());
        Ok(Some(Capture {
            sidecars,
            dir,
            keys: Arc::new(keys),
            value,
        }))
    }

    pub(crate) fn describe(&self) -> String {
        self.sidecars.join(", ")
    }
}

pub(crate) async fn take(call: &Call, input: CaptureInput) -> Result<CallToolResult, String> {
    let Some(capture) = call.config().capture.as_ref() else {
        return Err("take_snapshot is off: start the server with --capture".to_owned());
    };
    let sidecar = match &input.sidecar {
        Some(url) => {
            let url = url.trim_end_matches('/');
            capture
                .sidecars
                .iter()
                .find(|s| s.as_str() == url)
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "sidecar {} is not one the operator allowed ({})",
                        quoted(url),
                        capture.describe()
                    )
                })?
        }
        None => capture.sidecars[0].clone(),
    };
    let count = input.count.unwrap_or(1);
    if !(1..=3).contains(&count) {
        return Err(format!("count is 1 to 3, got {count}"));
    }
    let interval: Duration = match &input.interval {
        Some(text) => humantime::parse_duration(text)
            .map_err(|e| format!("interval {}: {e}; e.g. 30s or 5m", quoted(text)))?,
        None => Duration::from_secs(30),
    };
    if interval > Duration::from_secs(3600) {
        return Err("interval is at most 1h".to_owned());
    }
    let profile = input.profile.unwrap_or(false);
    let args = FetchArgs {
        base_url: sidecar.clone(),
        task: input.task.clone(),
        count,
        interval: interval.into(),
        out: capture.dir.clone(),
        path: None,
        profile,
        format: None,
        max_attempts: 30,
        keep_compressed: false,
        no_compression: false,
        html: None,
    };
    let (keys, value) = (capture.keys.clone(), capture.value.clone());
    let stop = call.cancel_flag();
    let noun = if profile { "profile" } else { "snapshot" };
    let saved = call
        .heavy(&format!("taking {count} {noun}(s)"), move |_work| {
            let env = |name: &str| std::env::var_os(name);
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let mut io = crate::Io {
                now: &chrono::Utc::now,
                env: &env,
                stdout: &mut out,
                stderr: &mut err,
                stderr_is_terminal: false,
            };
            crate::fetch::take(
                &args,
                &keys,
                &value,
                &mut io,
                &crate::fetch::Stop::Flag(stop),
            )
            .map_err(|e| e.to_string())
        })
        .await?;
    let items: Vec<EvidenceItem> = saved
        .iter()
        .map(|path| {
            let meta = std::fs::metadata(path).ok();
            let name = path.display().to_string();
            let base = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            EvidenceItem {
                kind: if profile { "profile" } else { "snapshot" },
                size: meta.as_ref().map_or(0, std::fs::Metadata::len),
                modified: meta
                    .and_then(|m| m.modified().ok())
                    .map(|t| {
                        chrono::DateTime::<chrono::Utc>::from(t)
                            .format("%Y-%m-%dT%H:%M:%SZ")
                            .to_string()
                    })
                    .unwrap_or_default(),
                folder: capture.dir.display().to_string(),
                series: None,
                task: crate::fetch::task_from_filename(&base).map(str::to_owned),
                started: None,
                ended: None,
                heap_growth_bytes: None,
                path: name,
            }
        })
        .collect();
    let verdict = format!(
        "Saved {} {noun}(s) from {sidecar} in {}; {}.",
        items.len(),
        capture.dir.display(),
        if items.len() >= 2 {
            "diff them oldest first"
        } else {
            "summary reads it"
        }
    );
    let head = CaptureHead {
        folder: capture.dir.display().to_string(),
    };
    Ok(capture_answer(call, verdict, head, items))
}
