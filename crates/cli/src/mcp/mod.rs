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
}

impl Config {
    fn new(args: &McpArgs, io: &Io<'_>) -> Result<Config, Error> {
        let roots = Roots::new(&args.roots).map_err(Error::Config)?;
        let capture = tools::Capture::new(args, &roots, io.env)?;
        Ok(Config {
            roots,
            strings: args.allow_strings,
            capture,
            max_bytes: usize::try_from(args.max_bytes).unwrap_or(usize::MAX),
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
}

impl Server {
    pub(crate) fn new(config: Config) -> Server {
        Server {
            inner: Arc::new(Inner {
                config,
                answers: Answers::default(),
                heavy: Arc::new(Semaphore::new(1)),
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

    /// The flag the engine polls; set when the client cancels.
    pub(crate) fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancelled.clone()
    }

    /// Runs `work` (blocking: parsing, analysing) on a worker thread, one heavy job at a time,
    /// reporting progress every second while it runs, and gives up when the client cancels.
    pub(crate) async fn heavy<T: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let permit = tokio::select! {
            permit = self.inner.heavy.clone().acquire_owned() => permit.map_err(|_| "server shutting down".to_owned())?,
            () = self.ct.cancelled() => return Err(CANCELLED.to_owned()),
        };
        // The permit goes with the work: a cancelled job holds it until the engine has stopped,
        // so the next one never runs beside it.
        self.blocking(what, move || {
            let result = work();
            drop(permit);
            result
        })
        .await
    }

    /// Runs `work` on a blocking thread with progress and cancellation, without waiting for
    /// heavy work to finish (listing a store, a small profile).
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let started = Instant::now();
        let mut job = tokio::task::spawn_blocking(work);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
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
                _ = tick.tick() => {
                    let seconds = started.elapsed().as_secs();
                    self.progress(seconds as f64, None, format!("{what}: {seconds} s")).await;
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

/// The answer to a cancelled call (the client has stopped waiting; rmcp drops it).
const CANCELLED: &str = "cancelled by the client";

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
            .and_then(|m| m.get_progress_token())
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
