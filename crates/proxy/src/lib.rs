//! heapgate-proxy: a sidecar in front of a Node.js service that passes all traffic through and
//! serves token-guarded heap snapshots itself, taken from the Node inspector on loopback, so
//! the app needs no code change beyond `node --inspect=127.0.0.1:9229`.
//!
//! The API: a [`Config`] (from the command line's [`Args`], or built in code with
//! [`Config::builder`]), a [`Proxy`] bound from it and run until a shutdown future resolves, and
//! [`Signals`] for that future. Embedding it, as `heapgate demo` does:
//!
//! ```no_run
//! # async fn demo(keys: heapgate_token::Keys) -> Result<(), Box<dyn std::error::Error>> {
//! use heapgate_proxy::{Config, Environment, Proxy, Signals};
//!
//! let config = Config::builder("http://127.0.0.1:3000", keys)
//!     .inspector("http://127.0.0.1:9229")
//!     .build()?;
//! let proxy = Proxy::bind(config).await?;
//! println!("listening on {}", proxy.local_addr());
//! let mut signals = Signals::new()?;
//! proxy.run(Environment::from_process(), async move { signals.recv().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! Inside, layers read top to bottom: [`launch`](Proxy) wires a validated config into a running
//! server; `workers` serve the public listener, one service per connection; `handlers` answer
//! the snapshot path (taking a snapshot, or as a gateway routing it to a chosen task);
//! `passthrough` passes the rest to the app (the lane, the general path, one rulebook); `body`
//! shapes a snapshot's stream (redaction, heartbeat, compression); `source` produces it (the
//! inspector, or the app's own endpoint).

mod admin;
mod body;
mod config;
mod conn_pool;
mod ecs;
mod gate;
mod guard;
mod handlers;
mod headroom;
mod launch;
mod log_text;
mod metrics;
mod passthrough;
mod server;
mod source;
mod task;
mod watch;
mod workers;

pub use config::{Args, Config, ConfigBuilder, ConfigError, LogFormat, TaskIdSource};
pub use heapgate_signals::Signals;
pub use launch::{Environment, Proxy, StartError};

/// What the integration tests and the fuzzers drive directly; not a stable API.
#[doc(hidden)]
pub mod testing {
    use std::sync::Arc;

    use chrono::{DateTime, Utc};
    use heapgate_protocol::TaskId;

    pub use crate::body::encoding::Coding;
    pub use crate::guard::{GuardedPaths, MAX_RESOLVED_PATH, Refusal, Verdict};
    pub use crate::metrics::Metrics;
    pub use crate::source::inspector::{
        DEFAULT_SPILL_MEM_LIMIT, HeapUsage, InspectorSource, SamplingConfig,
    };
    pub use crate::source::{Capture, ChunkStream, Source, SourceError};

    pub use crate::workers::InProcess;

    /// Spellings of `/heapdump` that a decode-first app reads as a scheme-relative target (an
    /// escaped slash or backslash after the first `/`, `/%2fx/heapdump` → `//x/heapdump`), each also
    /// with a decoded `?`, `#` or space after it: 63 paths the guard must never pass. Shared by the
    /// guard's unit test and the end-to-end hostile table.
    pub fn decoded_scheme_relative_spellings() -> Vec<String> {
        const PATHS: [&str; 9] = [
            "/%2fx/heapdump",
            "/%2F%2Fx/heapdump",
            "/%2F/x/heapdump",
            "/%2f127.0.0.1/heapdump",
            "/%5cx/heapdump",
            "/%5c%5cx/heapdump",
            "/%2fuser@x/heapdump",
            "/%2fx:80/heapdump",
            "/%2fx/x/../heapdump",
        ];
        const SUFFIXES: [&str; 7] = ["", "%3f", "%3fx", "%23", "%23x", "%20", "%3f/../x"];
        PATHS
            .iter()
            .flat_map(|path| SUFFIXES.map(|suffix| format!("{path}{suffix}")))
            .collect()
    }

    /// An in-process connection to the public service `config` gives — the one the workers run
    /// — with `source` as its snapshot source and `now` as its clock; with the metrics it
    /// records. Must be called inside a Tokio runtime (the snapshot path runs on it).
    pub fn app(
        config: &crate::Config,
        task: &TaskId,
        source: Arc<dyn Source>,
        now: fn() -> DateTime<Utc>,
    ) -> (InProcess, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let gate = crate::gate::SnapshotGate::new(config.snapshot.min_interval);
        let routes = crate::launch::Routes::new(
            config,
            task,
            gate,
            &metrics,
            now,
            Some(source),
            &crate::launch::Own::default(),
        );
        let public = Arc::new(routes.into_public(config));
        let client = std::net::SocketAddr::from(([127, 0, 0, 1], 40_000));
        (InProcess::new(public, client), metrics)
    }
}
