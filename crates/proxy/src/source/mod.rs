//! Where snapshots come from, behind one interface so the HTTP layer does not care.
//!
//! A source hands back a [`Capture`] as soon as it knows it can produce one (connected, command
//! accepted); the bytes follow as a stream. That split lets the handler answer 502 when the
//! source is unreachable, yet send a 200 head at once for a snapshot that takes a minute to build.

pub(crate) mod inspector;
pub(crate) mod spill;
pub(crate) mod upstream;

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::future::BoxFuture;

/// The snapshot's bytes in order. The stream ends after the last byte of a complete snapshot; an
/// `Err` item means the snapshot failed part-way and the transfer must be aborted, never ended
/// cleanly.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Bytes, SourceError>> + Send>>;

/// A heap snapshot being taken: the inspector session it comes from and its bytes as they come.
pub struct Capture {
    /// The session the snapshot came from, when the source knows it. Snapshots with the same
    /// session share V8's object ids, so DevTools' Comparison (and `heapgate diff`) can match
    /// objects between them.
    pub session: Option<String>,
    /// The `.heapsnapshot` JSON, or, when `content_encoding` is set, that JSON as the app
    /// encoded it.
    pub body: ChunkStream,
    /// The `Content-Encoding` an app answered with (`--source upstream`); such a body is passed
    /// through untouched.
    pub content_encoding: Option<http::HeaderValue>,
}

/// Why a snapshot could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source cannot be reached at all (no inspector listening, connection refused).
    #[error("snapshot source unreachable: {0}")]
    Unreachable(String),
    /// The source was reached but the snapshot failed (protocol error, connection lost mid-way).
    #[error("snapshot failed: {0}")]
    Failed(String),
}

/// Something that can take a snapshot. Object-safe so the app holds any source (and tests a stub).
pub trait Source: Send + Sync + 'static {
    /// Starts a snapshot. `query` is the verified request's query string, which a source that
    /// forwards to the app's own endpoint passes on (that endpoint checks the token itself).
    /// Resolves once the source has accepted the request; the bytes follow in the body.
    fn take<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Capture, SourceError>>;
}
