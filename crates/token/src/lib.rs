//! Hour-scoped HMAC-SHA256 tokens, byte-compatible with the Node.js one-liner that teams already
//! run on their servers:
//!
//! ```js
//! crypto.createHmac('sha256', SECRET)
//!   .update(JSON.stringify({ date: moment.utc().startOf('hour').toISOString(), value: VALUE }))
//!   .digest('hex')
//! ```
//!
//! Compatibility is the whole point: a token minted here must be accepted by an existing Node.js
//! verifier and the other way round, so the signed payload is rebuilt byte for byte
//! ([`payload`]): key order `date`, `value`; no whitespace; the hour as JavaScript's
//! `toISOString()` prints it; the value escaped exactly as `JSON.stringify` escapes it.
//!
//! The crate does no I/O and never reads the clock: the caller passes `now`, which keeps the
//! logic testable at any instant (hour boundaries, leap days, year 9999).
//!
//! ```
//! use chrono::{DateTime, Utc};
//! use heapgate_token::{mint, verify, Key, Keys, Window};
//!
//! let now: DateTime<Utc> = "2021-06-01T10:15:00Z".parse().unwrap();
//! let key = Key::new(b"secret-key").unwrap();
//! let token = mint(&key, "[obfuscated]", now);
//! assert_eq!(
//!     token.to_string(),
//!     "5a9988916f64085e97a58d8e81e49765642694d4a4cbf4bfaa5929a259bcbf05"
//! );
//!
//! let keys = Keys::new(vec![key]).unwrap();
//! let verified = verify(&token.to_string(), &keys, "[obfuscated]", now, &Window::default()).unwrap();
//! assert_eq!(verified.hour.to_string(), "2021-06-01T10:00:00.000Z");
//! ```

mod hour;
mod key;
mod payload;
mod token;
mod window;

pub use hour::Hour;
pub use key::{Key, KeyError, Keys};
pub use payload::payload;
pub use token::{Malformed, Token, decode, mint};
pub use window::{Rejection, Verified, Window, WindowError, locate, verify};

/// The Rust examples of the README and of `docs/tokens.md`, compiled and run as doctests so they
/// stay true (`crates/cli/tests/readme.rs` fails when another page gets a Rust example).
#[doc = include_str!("../../../README.md")]
#[doc = include_str!("../../../docs/tokens.md")]
#[cfg(doctest)]
pub struct DocsDoctests;
