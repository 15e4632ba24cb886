//! The tools: their input and output schemas, and how each turns an engine result into an
//! [`Answer`]. Every analysis is the engine's (`heapgate-snapshot`, `heapgate-profile`) or a
//! command's own function (`stored`, `profiles`, `fetch`); nothing is computed twice here.

use std::path::PathBuf;
use std::sync::Arc;

use heapgate_snapshot::{
    ClassDiff, CompareOptions, ObjectOptions, ObjectRef, OpenOptions, Paging, PathStep, Query,
    RetainerGroup, Snapshot, SnapshotError, Strings, Work, render_answer,
};
use rmcp::model::{CallToolResult, JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::page::Answer;
use super::roots::{Allowed, Root, quoted};
use super::{CANCELLED, Call, Config, Opener};

pub(crate) use super::capture::Capture;

/// The tools this server offers (`take_snapshot` only with `--capture`).
pub(crate) fn list(config: &Config) -> Vec<Tool> {
    let read_only = ToolAnnotations::new()
        .read_only(true)
        .destructive(false)
        .idempotent(true)
        .open_world(false);
    let mut tools = vec![
        tool::<ListInput, Paged<ListHead, EvidenceItem>>(
            "list_evidence",
            "List the heap snapshots and sampling heap profiles under the server's roots (or one \
             folder or s3:// prefix under them): path, kind, size, time, and for series the leak \
             watch stored, task, start, end and heap growth. Start here.",
        ),
        tool::<SummaryInput, Paged<SummaryHead, ClassItem>>(
            "summary",
            "DevTools' Summary view of one snapshot: classes by retained size (count, shallow \
             size, retained size). For a heap profile: live bytes by allocation site.",
        ),
        tool::<DiffInput, Paged<DiffHead, DiffItem>>(
            "diff",
            "Compare 2 or 3 snapshots of one process, oldest first (or 2-3 heap profiles): which \
             classes grew (with 3 files: objects new in the 2nd still alive in the 3rd, the \
             leak) and who holds them, with the retainer path from the GC root. One call answers \
             'what leaks and who holds it'.",
        ),
        tool::<HoldersInput, Paged<HoldersHead, HolderItem>>(
            "holders",
            "Who holds the objects of one class in one snapshot: their retainer paths from the GC \
             root, grouped, with the holding variable or property and the collection.",
        ),
        tool::<QueryInput, Paged<QueryHead, ObjectItem>>(
            "query",
            "Objects of one snapshot by class (and constructor location), property name and \
             minimum retained size, largest retained size first: ids to open with object.",
        ),
        tool::<ObjectInput, Paged<ObjectHead, EdgeItem>>(
            "object",
            "One object by id (@12345, from query, holders or diff on the same file): class, \
             sizes, distance, dominator, its retainer paths, then its retainers and outgoing \
             references.",
        ),
    ];
    for tool in &mut tools {
        tool.annotations = Some(read_only.clone());
    }
    if config.capture.is_some() {
        tools.push(
            tool::<CaptureInput, Paged<CaptureHead, EvidenceItem>>(
                "take_snapshot",
                "Take heap snapshots (or, with profile, sampling heap profiles: cheap, safe near \
                 the memory limit) from one task of a service through its heapgate sidecar, as \
                 `heapgate fetch` does; the files land under a root for the other tools. A \
                 snapshot pauses the app for seconds and can double its memory.",
            )
            .with_annotations(
                ToolAnnotations::new()
                    .read_only(false)
                    .destructive(false)
                    .idempotent(false)
                    .open_world(true),
            ),
        );
    }
    tools
}

fn tool<I: JsonSchema, O: JsonSchema>(name: &'static str, description: &'static str) -> Tool {
    Tool::new(name, description, schema::<I>(false)).with_raw_output_schema(schema::<O>(true))
}

/// A draft-07 schema with every definition inlined, no `format` keywords (validators differ on
/// the integer formats schemars writes) and one `type` per property: an optional field is
/// absent rather than null, the most portable spelling across clients and model providers.
fn schema<T: JsonSchema>(output: bool) -> Arc<JsonObject> {
    let settings = SchemaSettings::draft07().with(|s| {
        s.inline_subschemas = true;
        s.meta_schema = None;
    });
    let settings = if output {
        settings.for_serialize()
    } else {
        settings.for_deserialize()
    };
    let mut value: Value = settings.into_generator().into_root_schema_for::<T>().into();
    strip(&mut value);
    match value {
        Value::Object(mut object) => {
            object.remove("title");
            Arc::new(object)
        }
        _ => Arc::new(JsonObject::new()),
    }
}

fn strip(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if object.get("format").is_some_and(Value::is_string) {
                object.remove("format");
            }
            if let Some(Value::Array(types)) = object.get("type") {
                let single: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                if let [one] = single.as_slice() {
                    object.insert("type".into(), one.clone());
                }
            }
            object.values_mut().for_each(strip);
        }
        Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

/// Runs tool `name`; `Ok(None)` when there is no such tool, `Err` a tool error's line.
pub(crate) async fn call(
    call: &Call,
    name: &str,
    arguments: Value,
) -> Result<Option<CallToolResult>, String> {
    let max = call.config().max_bytes;
    // A cursor names a kept answer: the same list, further on.
    if let Some(cursor) = arguments.get("cursor").and_then(Value::as_str)
        && matches!(
            name,
            "list_evidence" | "summary" | "diff" | "holders" | "query" | "object" | "take_snapshot"
        )
    {
        return call.answers().page(cursor, max).map(Some);
    }
    let answer = match name {
        "list_evidence" => list_evidence(call, parse(name, arguments)?).await?,
        "summary" => summary(call, parse(name, arguments)?).await?,
        "diff" => diff(call, parse(name, arguments)?).await?,
        "holders" => holders(call, parse(name, arguments)?).await?,
        "query" => query(call, parse(name, arguments)?).await?,
        "object" => object(call, parse(name, arguments)?).await?,
        "take_snapshot" if call.config().capture.is_some() => {
            super::capture::take(call, parse(name, arguments)?).await?
        }
        _ => return Ok(None),
    };
    Ok(Some(answer))
}

/// A tool's arguments, or one line saying what is wrong with them.
fn parse<T: DeserializeOwned>(tool: &str, arguments: Value) -> Result<T, String> {
    serde_json::from_value(arguments).map_err(|e| format!("{tool}: bad arguments: {e}"))
}

/// The first page of `answer`, reusing an identical earlier answer when there is one.
/// The first page of an answer: its verdict, its head fields, its paged items, and (when later
/// calls may reuse it) its key.
fn reply(
    call: &Call,
    verdict: String,
    head: impl Serialize,
    items: Vec<Value>,
    key: Option<String>,
) -> CallToolResult {
    let answer = Answer {
        verdict,
        head: to_map(head),
        items,
        key,
    };
    call.answers().first_page(answer, call.config().max_bytes)
}

/// A kept answer for `key` (the same files, unchanged), as its first page.
fn reuse(call: &Call, key: &str) -> Option<CallToolResult> {
    let (handle, answer) = call.answers().find(key)?;
    Some(
        call.answers()
            .again(handle, &answer, 0, call.config().max_bytes),
    )
}

/// What a page looks like; the schema every tool's output follows.
#[derive(Serialize, JsonSchema)]
struct Paged<H, I> {
    /// One sentence: the answer, or what was found.
    verdict: String,
    #[serde(flatten)]
    head: H,
    /// This page of the list.
    items: Vec<I>,
    /// The index of the first item of this page in the whole list.
    offset: usize,
    /// Items in the whole list.
    total: usize,
    /// Pass as `cursor` (to the same tool) for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

fn to_map(value: impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn to_values<T: Serialize>(items: impl IntoIterator<Item = T>) -> Vec<Value> {
    items
        .into_iter()
        .filter_map(|item| serde_json::to_value(item).ok())
        .collect()
}

/// A file's identity for reuse: path, size and modification time (`s3://` objects by URL).
fn identity(file: &Allowed) -> String {
    match file {
        Allowed::Local(path) => {
            let meta = std::fs::metadata(path).ok();
            let size = meta.as_ref().map_or(0, std::fs::Metadata::len);
            let modified = meta
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{}\u{0}{size}\u{0}{modified}", path.display())
        }
        Allowed::S3(url) => url.clone(),
    }
}

// ---- list_evidence ----

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListInput {
    /// A folder or s3:// prefix under a root; by default every root.
    store: Option<String>,
    /// next_cursor from the previous page.
    #[allow(dead_code)]
    cursor: Option<String>,
}

#[derive(Serialize, JsonSchema)]
struct ListHead {
    /// The places listed.
    roots: Vec<String>,
}

/// One evidence file.
#[derive(Serialize, JsonSchema)]
pub(crate) struct EvidenceItem {
    /// The path or s3:// URL to pass to summary or diff.
    pub(crate) path: String,
    /// `snapshot` or `profile`.
    pub(crate) kind: &'static str,
    /// Bytes as stored (compressed files are larger once read).
    pub(crate) size: u64,
    /// When it was written (UTC).
    pub(crate) modified: String,
    /// The folder it is in.
    pub(crate) folder: String,
    /// Set for a series the leak watch stored: the folder's series name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) series: Option<String>,
    /// The task that was snapshotted (stored series, or a `heapgate fetch` file name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) task: Option<String>,
    /// When the series started (UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) started: Option<String>,
    /// How the series ended (`running` while it runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ended: Option<String>,
    /// The heap floor's growth that started the series, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) heap_growth_bytes: Option<u64>,
}

fn kind_of(name: &str) -> &'static str {
    if name.ends_with(".heapprofile") || name.ends_with(".pb.gz") {
        "profile"
    } else {
        "snapshot"
    }
}

async fn list_evidence(call: &Call, input: ListInput) -> Result<CallToolResult, String> {
    let roots = call.config().roots.clone();
    let places: Vec<heapgate_store::StoreLocation> = match &input.store {
        Some(store) => {
            let allowed = roots.resolve(store)?;
            vec![match allowed {
                Allowed::Local(dir) if dir.is_dir() => heapgate_store::StoreLocation::Dir(dir),
                Allowed::Local(file) => {
                    return Err(format!(
                        "{} is a file, not a folder; pass it to summary or diff",
                        file.display()
                    ));
                }
                Allowed::S3(url) => heapgate_store::StoreLocation::parse(&url)
                    .map_err(|e| format!("{}: {e}", quoted(&url)))?,
            }]
        }
        None => roots
            .all()
            .iter()
            .map(|root| match root {
                Root::Dir(dir) => heapgate_store::StoreLocation::Dir(dir.clone()),
                Root::S3 { bucket, prefix } => heapgate_store::StoreLocation::S3 {
                    bucket: bucket.clone(),
                    prefix: prefix.clone(),
                },
            })
            .collect(),
    };
    let listed: Vec<String> = places.iter().map(ToString::to_string).collect();
    let (items, series) = call
        .blocking("listing", move |_work| {
            let mut items = Vec::new();
            let mut series = 0usize;
            for place in &places {
                let folders = crate::stored::folders(place).map_err(|e| e.to_string())?;
                for folder in folders {
                    let manifest = folder.manifest.as_ref().and_then(|m| m.as_ref().ok());
                    series += usize::from(manifest.is_some());
                    for file in folder.files {
                        // A symlink inside a root may lead out of it: what cannot be read is
                        // not shown either.
                        if roots.resolve(&file.name).is_err() {
                            continue;
                        }
                        let base = file.name.rsplit('/').next().unwrap_or_default();
                        items.push(EvidenceItem {
                            kind: kind_of(&file.name),
                            size: file.size,
                            modified: file.modified.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                            folder: folder.name.trim_end_matches('/').to_owned(),
                            series: manifest.map(|m| m.series.clone()),
                            task: manifest.map(|m| m.task.clone()).or_else(|| {
                                crate::fetch::task_from_filename(base).map(str::to_owned)
                            }),
                            started: manifest.map(|m| crate::stored::utc_seconds(&m.started_at)),
                            ended: manifest.map(|m| {
                                m.ended
                                    .as_ref()
                                    .map_or("running".to_owned(), |e| e.reason.clone())
                            }),
                            heap_growth_bytes: manifest.map(|m| {
                                m.trigger
                                    .floor_to_bytes
                                    .saturating_sub(m.trigger.floor_from_bytes)
                            }),
                            path: file.name,
                        });
                    }
                }
            }
            Ok((items, series))
        })
        .await?;
    let snapshots = items.iter().filter(|i| i.kind == "snapshot").count();
    let profiles = items.len() - snapshots;
    let verdict = if items.is_empty() {
        format!("No heap snapshots or profiles under {}.", listed.join(", "))
    } else {
        let newest = items
            .iter()
            .max_by(|a, b| a.modified.cmp(&b.modified))
            .map(|i| i.folder.clone())
            .unwrap_or_default();
        format!(
            "{snapshots} snapshot(s) and {profiles} profile(s) in {} folder(s), {series} of them \
             series stored by the leak watch; the newest is in {newest}: diff 2 or 3 snapshots \
             of one folder, oldest first.",
            items
                .iter()
                .map(|i| &i.folder)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        )
    };
    Ok(reply(
        call,
        verdict,
        ListHead { roots: listed },
        to_values(items),
        None,
    ))
}

// ---- summary ----

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SummaryInput {
    /// A snapshot or heap profile (path or s3:// URL from list_evidence).
    file: Option<String>,
    /// next_cursor from the previous page (the other arguments are then ignored).
    #[allow(dead_code)]
    cursor: Option<String>,
}

#[derive(Serialize, JsonSchema)]
struct SummaryHead {
    /// The file summarised.
    file: String,
    /// `snapshot` or `profile`.
    kind: &'static str,
    /// Snapshot: nodes in the graph.
    #[serde(skip_serializing_if = "Option::is_none")]
    node_count: Option<u64>,
    /// Snapshot: total self size of the counted objects; profile: live bytes.
    total_bytes: u64,
}

/// One class (snapshot) or allocation site (profile).
#[derive(Serialize, JsonSchema)]
struct ClassItem {
    /// Class name as DevTools shows it; for a profile, the allocating function.
    name: String,
    /// `file:line:column` of the constructor (or the allocation site).
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    /// Objects (profile: live objects, estimated).
    count: u64,
    /// Their self sizes in bytes (profile: live bytes allocated here).
    self_size: u64,
    /// DevTools' Retained Size of the class, in bytes (snapshots only).
    #[serde(skip_serializing_if = "Option::is_none")]
    retained_size: Option<u64>,
}

async fn summary(call: &Call, input: SummaryInput) -> Result<CallToolResult, String> {
    let Some(file) = input.file else {
        return Err("summary needs file: a path from list_evidence".to_owned());
    };
    let file = call.config().roots.resolve(&file)?;
    let key = format!("summary\u{0}{}", identity(&file));
    if let Some(page) = reuse(call, &key) {
        return Ok(page);
    }
    let shown = file.display();
    let what = format!("summary of {shown}");
    let opener = call.opener();
    let answer = call
        .heavy(&what, move |work| {
            let path = file.path();
            let paths = std::slice::from_ref(&path);
            if crate::profiles::are_profiles(paths).map_err(|e| e.to_string())? {
                let profile = crate::profiles::read(&path).map_err(|e| e.to_string())?;
                let summary = heapgate_profile::summarize(&profile);
                let items: Vec<ClassItem> = summary
                    .sites
                    .iter()
                    .map(|site| ClassItem {
                        name: site.frame.function.clone(),
                        location: place(&site.frame),
                        count: site.objects,
                        self_size: site.bytes,
                        retained_size: None,
                    })
                    .collect();
                let verdict = match summary.sites.first() {
                    Some(top) => format!(
                        "{} live bytes sampled; the most at {} ({} bytes, {} objects).",
                        summary.total_bytes, top.frame, top.bytes, top.objects
                    ),
                    None => "The profile holds no live samples.".to_owned(),
                };
                return Ok((
                    verdict,
                    SummaryHead {
                        file: file.display(),
                        kind: "profile",
                        node_count: None,
                        total_bytes: summary.total_bytes,
                    },
                    to_values(items),
                ));
            }
            let snapshot = open_snapshot(&opener, &file, work)?;
            let summary = snapshot.summary();
            let classes = summary.classes();
            let info = summary.info();
            let items: Vec<ClassItem> = classes
                .iter()
                .map(|c| ClassItem {
                    name: c.name.clone(),
                    location: c.location.map(|l| summary.format_location(l)),
                    count: c.count,
                    self_size: c.self_size,
                    retained_size: Some(c.retained_size),
                })
                .collect();
            let verdict = match items.first() {
                Some(top) => format!(
                    "{} objects, {} bytes; the largest retained: {}{} ({} objects, {} bytes \
                     retained).",
                    info.counted_nodes,
                    info.total_self_size,
                    top.name,
                    top.location
                        .as_ref()
                        .map(|l| format!(" at {l}"))
                        .unwrap_or_default(),
                    top.count,
                    top.retained_size.unwrap_or_default()
                ),
                None => "The snapshot holds no counted objects.".to_owned(),
            };
            Ok((
                verdict,
                SummaryHead {
                    file: file.display(),
                    kind: "snapshot",
                    node_count: Some(info.node_count as u64),
                    total_bytes: info.total_self_size,
                },
                to_values(items),
            ))
        })
        .await?;
    let (verdict, head, items) = answer;
    Ok(reply(call, verdict, head, items, Some(key)))
}

/// `file:line:column` of a profile frame, when it has a place.
fn place(frame: &heapgate_profile::Frame) -> Option<String> {
    (!frame.url.is_empty()).then(|| format!("{}:{}:{}", frame.url, frame.line, frame.column))
}

// ---- diff ----

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DiffInput {
    /// 2 or 3 snapshots (or heap profiles) of one process, oldest first.
    files: Option<Vec<String>>,
    /// For how many of the top classes to find who holds them (default 3, at most 10).
    retainers: Option<usize>,
    /// next_cursor from the previous page (the other arguments are then ignored).
    #[allow(dead_code)]
    cursor: Option<String>,
}

#[derive(Serialize, JsonSchema)]
struct DiffHead {
    /// The files compared, oldest first.
    files: Vec<String>,
    /// `snapshots` or `profiles`.
    kind: &'static str,
    /// Doubts about the comparison (files of different processes…).
    warnings: Vec<String>,
}

/// One class that changed (snapshots) or one allocation site (profiles).
#[derive(Serialize, JsonSchema)]
struct DiffItem {
    /// Class name (profiles: the allocating function).
    name: String,
    /// `file:line:column` of the constructor or allocation site.
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    /// Objects new since the first file (profiles: live objects in the last one).
    new_count: u64,
    /// Objects of the first file gone since.
    deleted_count: u64,
    /// Self size allocated minus freed, in bytes (profiles: growth in live bytes).
    size_delta: i64,
    /// Retained size in the newest file, in bytes (profiles: live bytes there).
    retained_size: u64,
    /// Its change since the oldest file.
    retained_size_delta: i64,
    /// Three files: objects new in the second still alive in the third.
    #[serde(skip_serializing_if = "Option::is_none")]
    kept_count: Option<u64>,
    /// Three files: what those kept objects retain, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    kept_retained_size: Option<u64>,
    /// Who holds the new (or kept) objects, largest group first; absent beyond `retainers`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    holders: Vec<HolderItem>,
}

/// Objects held by one retainer path.
#[derive(Serialize, JsonSchema)]
struct HolderItem {
    /// Objects on this path.
    count: u64,
    /// Their retained size in bytes.
    retained_size: u64,
    /// Who holds them, in one line: `variable cache (app.js:3:7) → Map, 4500 keys`.
    #[serde(skip_serializing_if = "Option::is_none")]
    holder: Option<String>,
    /// The path from the GC root side to the objects (the last steps when long).
    path: Vec<StepItem>,
    /// Steps left out at the root side of `path`.
    #[serde(skip_serializing_if = "is_zero")]
    elided_steps: usize,
}

/// One step of a retainer path.
#[derive(Serialize, JsonSchema)]
struct StepItem {
    /// The edge from the previous step (`[]` for array and collection entries; absent on the
    /// first step).
    #[serde(skip_serializing_if = "String::is_empty")]
    edge: String,
    /// `property`, `element`, `context`, `internal`…
    #[serde(skip_serializing_if = "String::is_empty")]
    edge_type: String,
    /// The class of the object at this step.
    node: String,
    /// A closure's function name.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// Where its function or constructor is defined.
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Path steps shown per group: enough to see the holder and the collection.
const SHOWN_STEPS: usize = 12;

fn holder_item(group: &RetainerGroup) -> HolderItem {
    // From the holder's step when it is near the end, else the last steps.
    let len = group.path.len();
    let from_holder = group
        .holder
        .as_ref()
        .map_or(len, |h| h.step.saturating_sub(1));
    let from = from_holder.min(len.saturating_sub(SHOWN_STEPS));
    let step = |s: &PathStep| StepItem {
        edge: s.edge.clone(),
        edge_type: s.edge_type.clone(),
        node: s.node.clone(),
        name: s.name.clone(),
        location: s.location.clone(),
    };
    HolderItem {
        count: group.count,
        retained_size: group.retained_size,
        holder: group
            .holder
            .as_ref()
            .map(heapgate_snapshot::Holder::describe),
        path: group.path[from..].iter().map(step).collect(),
        elided_steps: from,
    }
}

async fn diff(call: &Call, input: DiffInput) -> Result<CallToolResult, String> {
    let files = input.files.unwrap_or_default();
    if !(2..=3).contains(&files.len()) {
        return Err(format!(
            "diff takes 2 or 3 files (oldest first), got {}; list_evidence shows them",
            files.len()
        ));
    }
    let files = files
        .iter()
        .map(|f| call.config().roots.resolve(f))
        .collect::<Result<Vec<_>, _>>()?;
    let retainers = input.retainers.unwrap_or(3).min(10);
    let key = format!(
        "diff\u{0}{retainers}\u{0}{}",
        files.iter().map(identity).collect::<Vec<_>>().join("\u{0}")
    );
    if let Some(page) = reuse(call, &key) {
        return Ok(page);
    }
    let what = format!("diff of {} files", files.len());
    let (verdict, head, items) = call
        .heavy(&what, move |_work| {
            let paths: Vec<PathBuf> = files.iter().map(Allowed::path).collect();
            let shown: Vec<String> = files.iter().map(Allowed::display).collect();
            if crate::profiles::are_profiles(&paths).map_err(|e| e.to_string())? {
                return diff_profiles(&paths, shown);
            }
            let inputs = crate::stored::inputs(&paths).map_err(|e| e.to_string())?;
            let options = CompareOptions {
                sort: None,
                retainer_classes: retainers,
                groups_per_class: 3,
            };
            // The first question of a hunt: the streaming comparison (one graph in memory at a
            // time, no index written), half the memory of opening every file for drill-down.
            // The engine cannot be stopped mid-way here: a cancelled diff runs to its end in
            // the background, holding the heavy-work permit.
            let comparison = heapgate_snapshot::compare(&inputs.paths, &options)
                .map_err(|e| engine_error(&e))?;
            let warnings = crate::diff::warnings(&paths, &comparison.checks);
            let newest = &comparison.newest;
            let item = |c: &ClassDiff| DiffItem {
                name: c.name.clone(),
                location: c.location.map(|l| newest.format_location(l)),
                new_count: c.new_count,
                deleted_count: c.deleted_count,
                size_delta: c.size_delta,
                retained_size: c.retained_size,
                retained_size_delta: c.retained_size_delta,
                kept_count: c.kept_count,
                kept_retained_size: c.kept_retained_size,
                holders: c.retainers.iter().map(holder_item).collect(),
            };
            let items: Vec<DiffItem> = comparison.diff.classes.iter().map(item).collect();
            let verdict = match render_answer(&comparison.diff) {
                Some(answer) => format!("Grew: {answer}."),
                None => "No class gained objects between these snapshots.".to_owned(),
            };
            Ok((
                verdict,
                DiffHead {
                    files: shown,
                    kind: "snapshots",
                    warnings,
                },
                to_values(items),
            ))
        })
        .await?;
    Ok(reply(call, verdict, head, items, Some(key)))
}

fn diff_profiles(
    paths: &[PathBuf],
    shown: Vec<String>,
) -> Result<(String, DiffHead, Vec<Value>), String> {
    let profiles = paths
        .iter()
        .map(|p| crate::profiles::read(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let comparison = heapgate_profile::compare(&profiles);
    let last = |v: &[u64]| v.last().copied().unwrap_or_default();
    let first = |v: &[u64]| v.first().copied().unwrap_or_default();
    let items: Vec<DiffItem> = comparison
        .sites
        .iter()
        .map(|s| DiffItem {
            name: s.frame.function.clone(),
            location: place(&s.frame),
            new_count: last(&s.objects),
            deleted_count: 0,
            size_delta: s.growth_bytes,
            retained_size: last(&s.bytes),
            retained_size_delta: last(&s.bytes) as i64 - first(&s.bytes) as i64,
            kept_count: None,
            kept_retained_size: None,
            holders: Vec::new(),
        })
        .collect();
    let verdict = match comparison.sites.first().filter(|s| s.growth_bytes > 0) {
        Some(top) => format!(
            "Live bytes grew by {} in all; the most at {} (+{} bytes).",
            comparison.growth_bytes, top.frame, top.growth_bytes
        ),
        None => "No allocation site grew between these profiles.".to_owned(),
    };
    Ok((
        verdict,
        DiffHead {
            files: shown,
            kind: "profiles",
            warnings: comparison.warnings.clone(),
        },
        to_values(items),
    ))
}

// ---- drill-down: holders, query, object ----

/// The snapshot `file` names, from the kept handle, its index or the file.
fn open_snapshot(opener: &Opener, file: &Allowed, work: Work) -> Result<Arc<Snapshot>, String> {
    opener.open(&identity(file), || {
        let path = file.path();
        let paths = std::slice::from_ref(&path);
        let cache = opener.cache();
        let identity = crate::cache::identities(paths, cache.as_ref())
            .map_err(|e| e.to_string())?
            .pop()
            .flatten();
        let inputs = crate::stored::inputs(paths).map_err(|e| e.to_string())?;
        let mut options = OpenOptions::new().cache(cache).work(work);
        if let Some(identity) = identity {
            options = options.identity(identity);
        }
        let opened =
            Snapshot::open_with(&inputs.paths[0], &options).map_err(|e| engine_error(&e))?;
        for warning in &opened.warnings {
            eprintln!("heapgate mcp: {warning}");
        }
        Ok(opened.snapshot)
    })
}

/// The engine's error with what to do next.
fn engine_error(e: &SnapshotError) -> String {
    match e {
        SnapshotError::Cancelled => CANCELLED.to_owned(),
        SnapshotError::NoSuchObject { .. } => format!(
            "{e}; ids belong to one snapshot: take one from query, holders or object on this file"
        ),
        SnapshotError::NoSuchClass { .. } => {
            format!("{e}; summary lists the classes of this file")
        }
        _ => e.to_string(),
    }
}

fn strings(call: &Call) -> Strings {
    if call.config().strings {
        Strings::Shown
    } else {
        Strings::Hidden
    }
}

fn snapshot_file(call: &Call, file: Option<String>, tool: &str) -> Result<Allowed, String> {
    let Some(file) = file else {
        return Err(format!(
            "{tool} needs file: a snapshot path from list_evidence"
        ));
    };
    call.config().roots.resolve(&file)
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HoldersInput {
    /// A snapshot (path or s3:// URL from list_evidence).
    file: Option<String>,
    /// The class, as summary or diff names it (`Order`, `{id, url}`, `(string)`).
    class: Option<String>,
    /// Only the class's objects constructed at a location containing this text (`app.js:12`).
    location: Option<String>,
    /// next_cursor from the previous page (the other arguments are then ignored).
    #[allow(dead_code)]
    cursor: Option<String>,
}

#[derive(Serialize, JsonSchema)]
struct HoldersHead {
    /// The snapshot.
    file: String,
    /// The class.
    class: String,
    /// Objects of the class.
    count: u64,
    /// The class's retained size (all its constructor locations that matched), in bytes.
    retained_size: u64,
}

async fn holders(call: &Call, input: HoldersInput) -> Result<CallToolResult, String> {
    let file = snapshot_file(call, input.file, "holders")?;
    let Some(class) = input.class else {
        return Err("holders needs class: a class name from summary or diff".to_owned());
    };
    let key = format!(
        "holders\u{0}{}\u{0}{class}\u{0}{}",
        identity(&file),
        input.location.as_deref().unwrap_or_default()
    );
    if let Some(page) = reuse(call, &key) {
        return Ok(page);
    }
    let opener = call.opener();
    let location = input.location;
    let (verdict, head, items) = call
        .heavy(&format!("holders of {class}"), move |work| {
            let snapshot = open_snapshot(&opener, &file, work)?;
            let held = snapshot
                .holders(&class, location.as_deref(), 10)
                .map_err(|e| engine_error(&e))?;
            let items: Vec<HolderItem> = held.groups.iter().map(holder_item).collect();
            let verdict = match held.groups.first() {
                Some(g) => format!(
                    "{} {} objects; {} of them ({} bytes retained) held by {}.",
                    held.count,
                    held.class,
                    g.count,
                    g.retained_size,
                    g.holder.as_ref().map_or_else(
                        || "the path below".to_owned(),
                        heapgate_snapshot::Holder::describe
                    )
                ),
                None => format!(
                    "{} {} objects, none held on a path from the roots.",
                    held.count, held.class
                ),
            };
            let head = HoldersHead {
                file: file.display(),
                class: held.class.clone(),
                count: held.count,
                retained_size: held.rows.iter().map(|r| r.retained_size).sum(),
            };
            Ok((verdict, head, to_values(items)))
        })
        .await?;
    Ok(reply(call, verdict, head, items, Some(key)))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct QueryInput {
    /// A snapshot (path or s3:// URL from list_evidence).
    file: Option<String>,
    /// Only objects of this class.
    class: Option<String>,
    /// Only objects constructed at a location containing this text (`app.js:12`).
    location: Option<String>,
    /// Only objects with a property (or other named edge) of this name.
    edge: Option<String>,
    /// Only objects retaining at least this many bytes.
    min_retained_size: Option<u64>,
    /// How many of the largest to return (default 20, at most 500).
    limit: Option<usize>,
    /// Skip this many of the largest first.
    offset: Option<usize>,
    /// next_cursor from the previous page (the other arguments are then ignored).
    #[allow(dead_code)]
    cursor: Option<String>,
}

#[derive(Serialize, JsonSchema)]
struct QueryHead {
    /// The snapshot.
    file: String,
    /// Objects matching, in all.
    matching: usize,
}

/// An object in a list.
#[derive(Serialize, JsonSchema)]
struct ObjectItem {
    /// The node id (DevTools writes `@id`): pass it to object with the same file.
    id: u32,
    /// Its class.
    class: String,
    /// Where its constructor (or function) is defined.
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    /// Self size in bytes.
    self_size: u64,
    /// Retained size in bytes.
    retained_size: u64,
    /// Distance from the GC roots.
    distance: i32,
}

fn object_item(o: &ObjectRef) -> ObjectItem {
    ObjectItem {
        id: o.id,
        class: o.class.clone(),
        location: o.location.clone(),
        self_size: o.self_size,
        retained_size: o.retained_size,
        distance: o.distance,
    }
}

async fn query(call: &Call, input: QueryInput) -> Result<CallToolResult, String> {
    let file = snapshot_file(call, input.file, "query")?;
    let paging = Paging {
        offset: input.offset.unwrap_or(0),
        limit: input.limit.unwrap_or(20).clamp(1, 500),
    };
    let query = Query {
        class: input.class,
        location: input.location,
        edge: input.edge,
        min_retained_size: input.min_retained_size.unwrap_or(0),
        paging,
        strings: strings(call),
    };
    let opener = call.opener();
    let (verdict, head, items) = call
        .heavy("query", move |work| {
            let snapshot = open_snapshot(&opener, &file, work)?;
            let answer = snapshot.query(&query).map_err(|e| engine_error(&e))?;
            let page = answer.objects;
            let verdict = match page.items.first() {
                Some(o) => format!(
                    "{} objects match; the largest here: @{} {}{} retains {} bytes.",
                    page.total,
                    o.id,
                    o.class,
                    o.location
                        .as_ref()
                        .map(|l| format!(" ({l})"))
                        .unwrap_or_default(),
                    o.retained_size
                ),
                None => format!(
                    "{} objects match; none from offset {}.",
                    page.total, page.offset
                ),
            };
            let head = QueryHead {
                file: file.display(),
                matching: page.total,
            };
            Ok((verdict, head, to_values(page.items.iter().map(object_item))))
        })
        .await?;
    Ok(reply(call, verdict, head, items, None))
}

#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum IdArg {
    Number(u32),
    Text(String),
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ObjectInput {
    /// The snapshot the id comes from.
    file: Option<String>,
    /// The object's id: 12345 or "@12345".
    id: Option<IdArg>,
    /// next_cursor from the previous page (the other arguments are then ignored).
    #[allow(dead_code)]
    cursor: Option<String>,
}

#[derive(Serialize, JsonSchema)]
struct ObjectHead {
    /// The snapshot.
    file: String,
    /// The object.
    object: ObjectItem,
    /// Its V8 node type (`object`, `closure`, `array`…).
    node_type: String,
    /// A function's name (closures); never a string's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// The object that, freed, would free this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    dominator: Option<ObjectItem>,
    /// Its retainer paths from the GC roots, grouped.
    paths: Vec<HolderItem>,
    /// Retainers and outgoing references in all (the list pages through both).
    retainers: usize,
    edges: usize,
}

/// A reference to or from the object.
#[derive(Serialize, JsonSchema)]
struct EdgeItem {
    /// `retainer` (holds the object) or `edge` (held by it).
    direction: &'static str,
    /// The property name, variable name or index; names that may be data read `<key>`.
    name: String,
    /// `property`, `element`, `context`, `internal`…
    edge_type: String,
    /// The object at the other end.
    node: ObjectItem,
}

/// Retainers and outgoing references shown per object (the first of each).
const OBJECT_EDGES: usize = 200;

async fn object(call: &Call, input: ObjectInput) -> Result<CallToolResult, String> {
    let file = snapshot_file(call, input.file, "object")?;
    let id = match input.id {
        Some(IdArg::Number(n)) => n,
        Some(IdArg::Text(text)) => text
            .trim()
            .trim_start_matches('@')
            .parse()
            .map_err(|_| format!("id {} is not an object id such as @12345", quoted(&text)))?,
        None => return Err("object needs id: an id from query, holders or diff".to_owned()),
    };
    let options = ObjectOptions {
        edges: Paging::first(OBJECT_EDGES),
        retainers: Paging::first(OBJECT_EDGES),
        paths: 3,
        strings: strings(call),
    };
    let opener = call.opener();
    let (verdict, head, items) = call
        .heavy(&format!("object @{id}"), move |work| {
            let snapshot = open_snapshot(&opener, &file, work)?;
            let view = snapshot
                .object(id, &options)
                .map_err(|e| engine_error(&e))?;
            let o = &view.object;
            // The first path with a named holder (the nearest path may be a stack root's).
            let held = view
                .paths
                .iter()
                .find_map(|g| g.holder.as_ref())
                .map(|h| format!("; held by {}", h.describe()))
                .unwrap_or_default();
            let verdict = format!(
                "@{} {}{} retains {} bytes (self {}), {} steps from the roots{held}.",
                o.id,
                o.class,
                o.location
                    .as_ref()
                    .map(|l| format!(" ({l})"))
                    .unwrap_or_default(),
                o.retained_size,
                o.self_size,
                o.distance
            );
            let edge = |direction: &'static str| {
                move |e: &heapgate_snapshot::EdgeView| EdgeItem {
                    direction,
                    name: e.name.clone(),
                    edge_type: e.edge_type.clone(),
                    node: object_item(&e.node),
                }
            };
            let items: Vec<EdgeItem> = view
                .retainers
                .items
                .iter()
                .map(edge("retainer"))
                .chain(view.edges.items.iter().map(edge("edge")))
                .collect();
            let head = ObjectHead {
                file: file.display(),
                object: object_item(o),
                node_type: view.node_type.clone(),
                name: view.name.clone(),
                dominator: view.dominator.as_ref().map(object_item),
                paths: view.paths.iter().map(holder_item).collect(),
                retainers: view.retainers.total,
                edges: view.edges.total,
            };
            Ok((verdict, head, to_values(items)))
        })
        .await?;
    Ok(reply(call, verdict, head, items, None))
}

// ---- take_snapshot (inputs and head; the work is in `capture`) ----

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaptureInput {
    /// The sidecar's base URL, one the operator allowed (default: the first).
    pub(crate) sidecar: Option<String>,
    /// The task to take them from (default: the first that answers, kept for the series).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) task: Option<String>,
    /// How many to take, 1 to 3 (3 for a diff that shows what is kept).
    pub(crate) count: Option<u32>,
    /// Time between them: 30s, 5m (default 30s).
    pub(crate) interval: Option<String>,
    /// Take sampling heap profiles instead of snapshots.
    pub(crate) profile: Option<bool>,
    /// next_cursor from the previous page.
    #[allow(dead_code)]
    pub(crate) cursor: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct CaptureHead {
    /// Where the files were saved.
    pub(crate) folder: String,
}

/// `take_snapshot`'s answer (the work is in `capture`).
pub(crate) fn capture_answer(
    call: &Call,
    verdict: String,
    head: CaptureHead,
    items: Vec<EvidenceItem>,
) -> CallToolResult {
    reply(call, verdict, head, to_values(items), None)
}
