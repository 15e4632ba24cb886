//! `heapgate mcp`: the analyses as Model Context Protocol tools, over stdio, on the official
//! Rust SDK (`rmcp`).
//!
//! This layer owns only the rules of the conversation, never an analysis: which paths a call may
//! name ([`roots`]), how big an answer may be and how the rest is paged ([`page`]), progress
//! and cancellation, and turning the engine's results into small structured answers
//! ([`tools`]). Every answer starts with a one-sentence verdict; a failure is a tool error with
//! one actionable line, never a dead server.

mod capture;
mod page;
mod roots;
mod tools;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use heapgate_snapshot::{Cache, Progress as EngineProgress, Snapshot, Work};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ProgressToken,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler, ServiceExt};
use tokio::sync::Semaphore;

use self::page::Answers;
use self::roots::Roots;
use crate::args::McpArgs;
use crate::{Error, Io};

/// What the operator allowed, fixed at start.
pub(crate) struct Config {
    roots: Roots,
    /// `--allow-strings`.
    strings: bool,
    /// `--capture` sidecars and where their snapshots land, with the keys to sign for them.
    capture: Option<tools::Capture>,
    /// `--max-bytes`.
    max_bytes: usize,
    /// Where indexes are kept (`None`: `--no-cache`, or no home to put them in).
    cache: Option<Cache>,
}

impl Config {
    fn new(args: &McpArgs, io: &Io<'_>) -> Result<Config, Error> {
        let roots = Roots::new(&args.roots).map_err(Error::Config)?;
        let capture = tools::Capture::new(args, &roots, io.env)?;
        let cache = crate::cache::cache(&args.cache, io);
        Ok(Config {
            roots,
            strings: args.allow_strings,
            capture,
            max_bytes: usize::try_from(args.max_bytes).unwrap_or(usize::MAX),
            cache,
        })
    }
}

pub(crate) fn run(args: &McpArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let config = Config::new(args, io)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the async runtime: {e}")))?;
    // stdout carries the protocol; anything for people goes to stderr.
    let _ = writeln!(
        io.stderr,
        "heapgate mcp: serving on stdio; roots: {}{}{}",
        config.roots.describe(),
        if config.strings {
            "; string values allowed"
        } else {
            ""
        },
        config
            .capture
            .as_ref()
            .map(|c| format!("; take_snapshot from {}", c.describe()))
            .unwrap_or_default()
    );
    runtime.block_on(async {
        let server = Server::new(config);
        let service = server
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| Error::Failed(format!("MCP session did not start: {e}")))?;
        service
            .waiting()
            .await
            .map_err(|e| Error::Failed(format!("MCP session failed: {e}")))?;
        Ok(())
    })
}

/// The MCP server: the configuration, the answers kept for cursors, and one permit for heavy
/// work (two 2 GB analyses at once would double the memory an operator planned for).
#[derive(Clone)]
pub(crate) struct Server {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    answers: Answers,
    heavy: Arc<Semaphore>,
    /// The last snapshot opened for drill-down, by file identity: the handle later calls on
    /// the same file use (one, so that memory stays one snapshot's graph).
    opened: std::sync::Mutex<Option<(String, Arc<Snapshot>)>>,
}

impl Server {
    pub(crate) fn new(config: Config) -> Server {
        Server {
            inner: Arc::new(Inner {
                config,
                answers: Answers::default(),
                heavy: Arc::new(Semaphore::new(1)),
                opened: std::sync::Mutex::new(None),
            }),
        }
    }
}

/// A tool call's view of the session: the operator's rules, progress to the client and
/// whether the client cancelled.
pub(crate) struct Call {
    inner: Arc<Inner>,
    progress: Option<(Peer<RoleServer>, ProgressToken)>,
    cancelled: Arc<AtomicBool>,
    ct: tokio_util::sync::CancellationToken,
}

impl Call {
    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn answers(&self) -> &Answers {
        &self.inner.answers
    }

    /// What a blocking job needs to open snapshots: the cache, the kept handle.
    pub(crate) fn opener(&self) -> Opener {
        Opener {
            inner: self.inner.clone(),
        }
    }

    /// The flag the engine polls; set when the client cancels.
    pub(crate) fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancelled.clone()
    }

    /// Runs `job` (blocking: parsing, analysing) on a worker thread, one heavy job at a time,
    /// forwarding the engine's progress, and gives up when the client cancels.
    pub(crate) async fn heavy<T: Send + 'static>(
        &self,
        what: &str,
        job: impl FnOnce(Work) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let permit = tokio::select! {
            permit = self.inner.heavy.clone().acquire_owned() => permit.map_err(|_| "server shutting down".to_owned())?,
            () = self.ct.cancelled() => return Err(CANCELLED.to_owned()),
        };
        // The permit goes with the job: a cancelled job holds it until the engine has stopped,
        // so the next one never runs beside it.
        self.blocking(what, move |work| {
            let result = job(work);
            drop(permit);
            result
        })
        .await
    }

    /// Runs `job` on a blocking thread with a [`Work`] whose progress reaches the client and
    /// whose flag the client's cancellation sets, without waiting for heavy work (listing a
    /// store). Without engine progress, a line every second says it is still running.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        what: &str,
        job: impl FnOnce(Work) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let started = Instant::now();
        let (sender, mut reports) = tokio::sync::mpsc::unbounded_channel::<EngineProgress>();
        let work = Work::new()
            .on_progress(move |p| {
                let _ = sender.send(p);
            })
            .cancel_when(self.cancelled.clone());
        let mut job = tokio::task::spawn_blocking(move || job(work));
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        // MCP progress must grow with every notification: count them.
        let mut sent = 0u32;
        let mut last: Option<EngineProgress> = None;
        loop {
            tokio::select! {
                joined = &mut job => {
                    return joined.map_err(|e| format!("{what} failed unexpectedly: {e}"))?;
                }
                () = self.ct.cancelled() => {
                    // The engine polls the flag and stops; the answer is not waited for.
                    self.cancelled.store(true, Ordering::Relaxed);
                    return Err(CANCELLED.to_owned());
                }
                Some(report) = reports.recv() => last = Some(report),
                _ = tick.tick() => {
                    let seconds = started.elapsed().as_secs();
                    let message = match last.take() {
                        Some(p) => match p.total {
                            Some(total) if total > 0 => format!(
                                "{what}: {} {}% ({seconds} s)",
                                p.stage.describe(),
                                p.done.saturating_mul(100) / total
                            ),
                            _ => format!("{what}: {} ({seconds} s)", p.stage.describe()),
                        },
                        None => format!("{what}: {seconds} s"),
                    };
                    sent += 1;
                    self.progress(f64::from(sent), None, message).await;
                }
            }
        }
    }

    /// One progress notification, when the client asked for them.
    pub(crate) async fn progress(&self, done: f64, total: Option<f64>, message: String) {
        if let Some((peer, token)) = &self.progress {
            let mut param = ProgressNotificationParam::new(token.clone(), done);
            if let Some(total) = total {
                param = param.with_total(total);
            }
            param.message = Some(message);
            let _ = peer.notify_progress(param).await;
        }
    }
}

/// Opens snapshots for drill-down inside a blocking job, keeping the last one.
pub(crate) struct Opener {
    inner: Arc<Inner>,
}

impl Opener {
    pub(crate) fn cache(&self) -> Option<Cache> {
        self.inner.config.cache.clone()
    }

    /// The snapshot `key` names, opened now (from its index when there is one) unless it is
    /// the one kept.
    pub(crate) fn open(
        &self,
        key: &str,
        open: impl FnOnce() -> Result<Snapshot, String>,
    ) -> Result<Arc<Snapshot>, String> {
        let lock = || {
            self.inner
                .opened
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some((kept, snapshot)) = lock().as_ref()
            && kept == key
        {
            return Ok(snapshot.clone());
        }
        // Drop the kept graph before reading another: one graph in memory at a time.
        *lock() = None;
        let snapshot = Arc::new(open()?);
        *lock() = Some((key.to_owned(), snapshot.clone()));
        Ok(snapshot)
    }
}

/// The answer to a cancelled call (the client has stopped waiting; rmcp drops it).
pub(crate) const CANCELLED: &str = "cancelled by the client";

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("heapgate", env!("HEAPGATE_VERSION"));
        info.instructions = Some(INSTRUCTIONS.to_owned());
        info
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(tools::list(
            &self.inner.config,
        )))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let token = request
            .meta
            .as_ref()
            .and_then(rmcp::model::RequestMetaObject::get_progress_token)
            .or_else(|| context.meta.get_progress_token());
        let call = Call {
            inner: self.inner.clone(),
            progress: token.map(|t| (context.peer.clone(), t)),
            cancelled: Arc::new(AtomicBool::new(false)),
            ct: context.ct.clone(),
        };
        let arguments = serde_json::Value::Object(request.arguments.unwrap_or_default());
        let result = match tools::call(&call, &request.name, arguments).await {
            Ok(Some(answer)) => answer,
            Ok(None) => {
                return Err(McpError::invalid_params(
                    format!(
                        "unknown tool {}; tools/list names the tools",
                        roots::quoted(&request.name)
                    ),
                    None,
                ));
            }
            Err(message) => CallToolResult::error(vec![ContentBlock::text(one_line(&message))]),
        };
        Ok(result.into())
    }
}

/// Errors are one line: the first line of `message`, without control characters.
fn one_line(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

const INSTRUCTIONS: &str = "heapgate answers 'what is leaking in this Node.js process, and who \
holds it?' from heap snapshots and sampling heap profiles. Start with list_evidence; diff two or \
three snapshots of one process (oldest first) to see which class grew and the path that holds it; \
then query the largest objects of that class and open one with object. Every answer starts with \
a verdict sentence; pass next_cursor back as cursor for more.";
