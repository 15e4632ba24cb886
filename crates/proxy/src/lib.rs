//! heapgate-proxy: a sidecar in front of a Node.js service that passes all traffic through and
//! serves token-guarded heap snapshots itself, taken from the Node inspector on loopback, so
//! the app needs no code change beyond `node --inspect=127.0.0.1:9229`.
//!
//! The pieces: [`config`] validates flags; [`app`] routes the public port ([`snapshot`] for the
//! snapshot path, [`passthrough`] for everything else); [`source`] abstracts where snapshots
//! come from ([`inspector`] by default); [`gate`] allows one snapshot at a time; [`admin`] serves
//! health and [`metrics`]; [`server`] runs listeners with limits and graceful shutdown;
//! [`launch`] wires a validated configuration into a running proxy; [`gateway`] routes to a
//! chosen task behind a balancer.

pub mod admin;
pub mod app;
pub mod config;
mod conn_pool;
pub mod encoding;
pub mod gate;
pub mod gateway;
pub mod guard;
pub mod inspector;
mod keepalive;
pub mod launch;
mod log_text;
pub mod metrics;
pub mod passthrough;
mod redaction;
pub mod server;
pub mod snapshot;
pub mod source;
mod spill;
pub mod task;
pub mod upstream_source;
pub mod workers;
