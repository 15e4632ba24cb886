//! Which hours a verifier accepts at a given instant, and verification itself.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::{Hour, Keys, Malformed, decode};

/// The longest grace or skew a window accepts; anything longer defeats hour-scoping.
const MAX_SLACK: Duration = Duration::from_secs(24 * 3600);

/// The tolerance around the current hour.
///
/// A token for hour `H` is accepted while `H.start - skew <= now < H.end + grace`: the previous
/// hour's token keeps working for `grace` after the hour turns (a URL minted at 10:59 is not
/// dead on arrival), and the next hour's token is accepted `skew` early (the minter's clock runs
/// a little ahead). Both ends are half-open in the same direction, so a boundary instant never
/// belongs to two readings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    grace_millis: i64,
    skew_millis: i64,
}

/// A window that was asked for more slack than makes sense.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("grace and skew must each be at most 24h")]
pub struct WindowError;

impl Window {
    /// Default grace after an hour ends: 5 minutes.
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(5 * 60);
    /// Default acceptance of the next hour's token before it starts: 1 minute.
    pub const DEFAULT_SKEW: Duration = Duration::from_secs(60);

    /// A window with the given grace and skew (each at most 24 h).
    pub fn new(grace: Duration, skew: Duration) -> Result<Window, WindowError> {
        let millis = |d: Duration| {
            if d > MAX_SLACK {
                return Err(WindowError);
            }
            i64::try_from(d.as_millis()).map_err(|_| WindowError)
        };
        Ok(Window {
            grace_millis: millis(grace)?,
            skew_millis: millis(skew)?,
        })
    }

    /// Whether a token for `hour` is acceptable at `now`.
    pub fn accepts(&self, hour: Hour, now: DateTime<Utc>) -> bool {
        let now = now.timestamp_millis();
        hour.start_millis() - self.skew_millis <= now
            && now < hour.offset(1).start_millis() + self.grace_millis
    }

    /// The hours acceptable at `now`, the current one first (the common case on the hot path).
    pub fn hours(&self, now: DateTime<Utc>) -> impl Iterator<Item = Hour> + use<> {
        let now = now.timestamp_millis();
        let current = Hour::containing_millis(now);
        let earliest = Hour::containing_millis(now.saturating_sub(self.grace_millis));
        let latest = Hour::containing_millis(now.saturating_add(self.skew_millis));
        std::iter::once(current).chain(
            std::iter::successors(Some(earliest), |h| Some(h.offset(1)))
                .take_while(move |&h| h <= latest)
                .filter(move |&h| h != current),
        )
    }
}

impl Default for Window {
    fn default() -> Window {
        Window {
            grace_millis: 5 * 60 * 1000,
            skew_millis: 60 * 1000,
        }
    }
}

/// A token that checked out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The hour it was minted for.
    pub hour: Hour,
    /// Which key matched (0 is the signing key).
    pub key_index: usize,
}

/// Why a presented token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rejection {
    /// Not a token: not exactly 64 hex digits.
    #[error("malformed token: {0}")]
    Malformed(#[from] Malformed),
    /// Well-formed, but no key and value produce it for any hour the window accepts now.
    #[error("the token does not match any key for the accepted hours")]
    NoMatch,
}

/// Verifies `presented` against every key for every hour `window` accepts at `now`.
///
/// The tag comparison is constant-time (`hmac`'s `verify_slice` on decoded bytes).
pub fn verify(
    presented: &str,
    keys: &Keys,
    value: &str,
    now: DateTime<Utc>,
    window: &Window,
) -> Result<Verified, Rejection> {
    let tag = decode(presented)?;
    window
        .hours(now)
        .find_map(|hour| matching_key(&tag, keys, value, hour))
        .ok_or(Rejection::NoMatch)
}

/// Searches `radius_hours` either side of the hour containing `around` for the hour a token was
/// minted for, regardless of any window: this tells "expired" or "not yet valid" apart from
/// "wrong secret or value" when explaining a rejection.
pub fn locate(
    presented: &str,
    keys: &Keys,
    value: &str,
    around: DateTime<Utc>,
    radius_hours: u32,
) -> Result<Option<Verified>, Malformed> {
    let tag = decode(presented)?;
    let center = Hour::containing(around);
    let radius = i64::from(radius_hours);
    Ok((0..=radius)
        .flat_map(|n| [n, -n])
        .find_map(|n| matching_key(&tag, keys, value, center.offset(n))))
}

fn matching_key(tag: &[u8; 32], keys: &Keys, value: &str, hour: Hour) -> Option<Verified> {
    keys.iter()
        .position(|key| key.matches(hour, value, tag))
        .map(|key_index| Verified { hour, key_index })
}
