//! Where heapgate's secrets come from, shared by every heapgate binary so that `heapgate mint`
//! and `heapgate-proxy` read them the same way.
//!
//! Precedence: `--secret-file` (repeatable; the first signs, all verify), else the
//! `HEAPGATE_SECRET` environment variable, else `--secret`. Files come first because they are
//! the safest (mounted from a secrets manager, never copied into child processes' environment);
//! `--secret` comes last because anyone on the machine can read a process's argv, so using it
//! draws a warning. A lower-precedence source that is also set is ignored with a warning, never
//! silently.

mod secret;
mod userinfo;

pub use secret::{KeyLoadError, LoadedKeys, MIN_RECOMMENDED_LEN, SecretArgs, load};
pub use userinfo::redact_userinfo;
