//! Every piece of `heapgate_proxy`'s library API that the proxy's tests use in-process, in one
//! place: the tests that need them (`inspector.rs`: the inspector source against real Node;
//! `snapshot_path.rs`: the public service the workers run, with a scripted source and an injected clock) import
//! them from here. Everything else drives the real binary through `heapgate_tests`.
//!
//! Each test file uses only some of them.
#![allow(unused_imports)]

pub(crate) use heapgate_protocol::TaskId;
pub(crate) use heapgate_proxy::Config;
pub(crate) use heapgate_proxy::testing::{
    Capture, ChunkStream, DEFAULT_SPILL_MEM_LIMIT, InProcess, InspectorSource, Metrics, Source,
    SourceError, app,
};
