//! Pass-through to the app: everything that is not the proxy's own path reaches the app as if the
//! sidecar were not there.
//!
//! Two paths do it. The plain-request lane ([`lane`]) passes ordinary HTTP/1.1 requests by hand
//! from the received bytes; the general path ([`general`]) passes everything else through
//! hyper's server and client. Which one serves a request is the lane's split
//! ([`lane::Split`]), counted by reason in `heapgate_passthrough_split_total`. Both follow one
//! rulebook ([`rules`]) and reach the app through one [`upstream::Upstream`]; neither imports
//! the other.

use std::sync::Arc;

use crate::metrics::Metrics;
use crate::passthrough::rules::OwnPaths;
use crate::passthrough::upstream::Upstream;

pub(crate) mod general;
pub(crate) mod lane;
pub(crate) mod rules;
pub(crate) mod upstream;

/// What pass-through needs, shared by every connection.
pub(crate) struct Passthrough {
    pub(crate) upstream: Upstream,
    /// The paths the proxy answers itself.
    pub(crate) own: OwnPaths,
    pub(crate) metrics: Arc<Metrics>,
    /// Whether plain requests take the lane (`--lane`); off, every connection goes to the
    /// general path.
    pub(crate) lane: bool,
}
