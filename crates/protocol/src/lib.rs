//! The HTTP contract between heapgate's clients (`heapgate fetch`, a gateway) and its sidecars,
//! written once so both ends agree:
//!
//! - the header names a sidecar answers with ([`TASK_HEADER`], [`SESSION_HEADER`],
//!   [`REDACTED_HEADER`]);
//! - [`TaskId`], the syntax of task and session ids;
//! - [`Instrument`], what a token opens (snapshot or sampling heap profile), and the value each
//!   signs; [`ProfileFormat`], the encodings the profile path serves;
//! - [`SnapshotQuery`], the snapshot and profile paths' query, parsed strictly and written back;
//! - [`Landing`], the land-on-a-task policy: what to do with each answer on the way to one chosen
//!   task behind a load balancer, as a pure state machine (no I/O, no clock: it returns delays
//!   and the caller sleeps).
//!
//! ```
//! use heapgate_protocol::{Answer, Head, Landing, Step, TaskId};
//!
//! let t2 = TaskId::new("t2").unwrap();
//! let mut landing = Landing::new(Some(t2.clone()), false, 3, 7);
//! assert_eq!(landing.next_attempt(), Some(1));
//! // Another task answered: try again at once, on a new connection.
//! let other = Answer::Head(Head::new(421, Some(TaskId::new("t1").unwrap()), None));
//! assert!(matches!(landing.answer(&other), Step::Retry { .. }));
//! assert_eq!(landing.next_attempt(), Some(2));
//! let ours = Answer::Head(Head::new(200, Some(t2.clone()), None));
//! assert_eq!(landing.answer(&ours), Step::Deliver(t2));
//! ```

mod instrument;
mod landing;
mod query;
mod task;

pub use instrument::{Instrument, PROFILE_SUFFIX, ProfileFormat, UnknownFormat, UnknownInstrument};
pub use landing::{
    Answer, BACKOFF_FIRST, BACKOFF_MAX, DEFAULT_ATTEMPTS, Head, Landing, MAX_RETRY_AFTER,
    NOT_HEAPGATE, NotReached, Retry, Step,
};
pub use query::{QueryError, SnapshotQuery};
pub use task::{InvalidTaskId, MAX_ID_LEN, TaskId, is_id_text};

/// The task that answered, on the snapshot and profile paths' answers (200, 204, 421, 429, 502,
/// 507).
pub const TASK_HEADER: http::HeaderName = http::HeaderName::from_static("x-heapgate-task");
/// The inspector session a snapshot or profile came from: equal values mean comparable object
/// ids. Set with [`set_session`], read with [`session_of`].
pub const SESSION_HEADER: http::HeaderName = http::HeaderName::from_static("x-heapgate-session");
/// [`SESSION_HEADER`]'s name until 0.1, when "series" also named a leak-watch batch. Deprecated:
/// sidecars send it too, with the same value, for one more release (clients written against it
/// keep working), and clients read it when an older sidecar answers.
pub const LEGACY_SESSION_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-heapgate-series");
/// What the sidecar redacted from the snapshot (`strings`); absent when nothing was.
pub const REDACTED_HEADER: http::HeaderName = http::HeaderName::from_static("x-heapgate-redacted");
/// Names the session `id` on an answer: [`SESSION_HEADER`], and [`LEGACY_SESSION_HEADER`] for this
/// release.
pub fn set_session(headers: &mut http::HeaderMap, id: http::HeaderValue) {
    headers.insert(LEGACY_SESSION_HEADER, id.clone());
    headers.insert(SESSION_HEADER, id);
}

/// The session an answer names: [`SESSION_HEADER`], else (an older sidecar)
/// [`LEGACY_SESSION_HEADER`].
pub fn session_of(headers: &http::HeaderMap) -> Option<&http::HeaderValue> {
    headers
        .get(SESSION_HEADER)
        .or_else(|| headers.get(LEGACY_SESSION_HEADER))
}

/// Every header a sidecar may set starts with this; a sidecar strips such headers from its app's
/// answers so they cannot be forged.
pub const RESERVED_HEADER_PREFIX: &str = "x-heapgate-";

/// Statuses whose `X-Heapgate-Task` a client believes: only the snapshot and profile paths' own
/// answers name a task (507: a snapshot that would not fit in the task's memory).
pub fn names_task(status: u16) -> bool {
    matches!(status, 200 | 204 | 421 | 429 | 502 | 507)
}
