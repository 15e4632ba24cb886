//! The first step of every snapshot-path request, whichever mode answers it.

use axum::http::{Method, Uri};
use chrono::{DateTime, Utc};
use heapgate_protocol::{Instrument, SnapshotQuery};
use heapgate_token::{Keys, Rejection, Window, verify};

use super::Refusal;

/// Checks method, query and token for one instrument: a profile token never opens the snapshot
/// path, nor a snapshot token the profile path.
#[derive(Debug, Clone)]
pub(crate) struct Authorizer {
    keys: Keys,
    /// The value this instrument's tokens sign ([`Instrument::signed_value`]).
    value: String,
    window: Window,
    /// The wall clock tokens are checked against; a parameter so tests can fix it.
    now: fn() -> DateTime<Utc>,
}

/// A request whose token is valid now.
#[derive(Debug)]
pub(crate) struct Authorized {
    pub(crate) query: SnapshotQuery,
    /// The token, as the client sent it (a gateway forwards it).
    pub(crate) hash: String,
    /// When it was checked.
    pub(crate) at: DateTime<Utc>,
}

impl Authorizer {
    /// For `instrument`'s path; `value` is the configured value (`--value`).
    pub(crate) fn new(
        keys: Keys,
        value: &str,
        instrument: Instrument,
        window: Window,
        now: fn() -> DateTime<Utc>,
    ) -> Authorizer {
        Authorizer {
            keys,
            value: instrument.signed_value(value).into_owned(),
            window,
            now,
        }
    }

    /// `GET`, a strictly parsed query, and a token that verifies at this instant.
    pub(crate) fn check(&self, method: &Method, uri: &Uri) -> Result<Authorized, Refusal> {
        if method != Method::GET {
            return Err(Refusal::MethodNotAllowed);
        }
        let mut query =
            SnapshotQuery::parse(uri.query().unwrap_or_default()).map_err(Refusal::Query)?;
        let hash = query.hash.take().ok_or(Refusal::MissingHash)?;
        let at = (self.now)();
        match verify(&hash, &self.keys, &self.value, at, &self.window) {
            Ok(_) => Ok(Authorized { query, hash, at }),
            Err(Rejection::Malformed(why)) => Err(Refusal::MalformedHash(why.to_string())),
            Err(Rejection::NoMatch) => Err(Refusal::Forbidden),
        }
    }
}
