//! Every piece of `heapgate_proxy`'s library API that the proxy's tests use in-process, in one
//! place: the tests that need them (`inspector.rs`: the inspector source against real Node;
//! `snapshot_path.rs`: the snapshot handler with a scripted source and an injected clock) import
//! them from here. Everything else drives the real binary through `heapgate_tests`.
//!
//! Each test file uses only some of them.
#![allow(unused_imports)]

pub(crate) use heapgate_proxy::app::{AppState, Snapshots, app};
pub(crate) use heapgate_proxy::config::SnapshotConfig;
pub(crate) use heapgate_proxy::encoding::Coding;
pub(crate) use heapgate_proxy::gate::SnapshotGate;
pub(crate) use heapgate_proxy::guard::GuardedPaths;
pub(crate) use heapgate_proxy::inspector::{DEFAULT_SPILL_MEM_LIMIT, InspectorSource};
pub(crate) use heapgate_proxy::metrics::Metrics;
pub(crate) use heapgate_proxy::passthrough::Upstream;
pub(crate) use heapgate_proxy::source::{ChunkStream, Snapshot, SnapshotSource, SourceError};
pub(crate) use heapgate_proxy::task::TaskId;
