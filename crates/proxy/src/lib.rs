//! heapgate-proxy: a sidecar in front of a Node.js service.

pub mod inspector;
pub mod source;
mod spill;
