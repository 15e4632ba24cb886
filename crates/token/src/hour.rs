//! The hour a token is minted for, printed the way JavaScript's `Date#toISOString` prints it.

use std::fmt;

use chrono::{DateTime, Datelike, Timelike, Utc};

pub(crate) const MILLIS_PER_HOUR: i64 = 3_600_000;

/// A whole UTC hour: the unit a token is valid for.
///
/// Held as an hour count since the Unix epoch, so window arithmetic on the verify hot path is
/// integer arithmetic; calendar fields are computed only when the hour is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hour {
    index: i64,
}

impl Hour {
    /// The hour that contains `instant` (what `moment.utc(instant).startOf('hour')` yields).
    pub fn containing(instant: DateTime<Utc>) -> Hour {
        Hour::containing_millis(instant.timestamp_millis())
    }

    /// The hour that contains the instant `millis` milliseconds after the Unix epoch.
    pub(crate) fn containing_millis(millis: i64) -> Hour {
        Hour {
            index: millis.div_euclid(MILLIS_PER_HOUR),
        }
    }

    /// Milliseconds since the Unix epoch at the start of the hour.
    pub(crate) fn start_millis(self) -> i64 {
        self.index.saturating_mul(MILLIS_PER_HOUR)
    }

    /// The first instant of the hour (clamped to chrono's range at its extremes).
    pub fn start(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.start_millis()).unwrap_or(if self.index < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
    }

    /// The first instant after the hour.
    pub fn end(self) -> DateTime<Utc> {
        self.offset(1).start()
    }

    /// The hour `n` hours later (earlier for negative `n`).
    pub fn offset(self, n: i64) -> Hour {
        Hour {
            index: self.index.saturating_add(n),
        }
    }

    /// The hour as `toISOString()` prints it, on the stack: `2021-06-01T10:00:00.000Z`, or with
    /// a signed six-digit year outside 0000–9999 (`+010000-01-01T00:00:00.000Z`).
    pub fn iso(self) -> IsoHour {
        let mut out = IsoHour {
            bytes: [0; IsoHour::MAX_LEN],
            len: 0,
        };
        let start = self.start();
        let year = start.year();
        if (0..=9999).contains(&year) {
            out.push_digits(year.unsigned_abs(), 4);
        } else {
            out.push(if year < 0 { b'-' } else { b'+' });
            out.push_digits(year.unsigned_abs(), 6);
        }
        out.push(b'-');
        out.push_digits(start.month(), 2);
        out.push(b'-');
        out.push_digits(start.day(), 2);
        out.push(b'T');
        out.push_digits(start.hour(), 2);
        out.extend(b":00:00.000Z");
        out
    }
}

impl fmt::Display for Hour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.iso().as_str())
    }
}

/// An hour in ISO form, formatted without allocating.
#[derive(Clone, Copy)]
pub struct IsoHour {
    bytes: [u8; IsoHour::MAX_LEN],
    len: usize,
}

impl IsoHour {
    /// `+YYYYYY-MM-DDTHH:00:00.000Z`
    const MAX_LEN: usize = 27;

    /// The text, e.g. `2021-06-01T10:00:00.000Z`.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation are ever pushed.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The text as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn push(&mut self, byte: u8) {
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    fn extend(&mut self, bytes: &[u8]) {
        self.bytes[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn push_digits(&mut self, mut n: u32, width: usize) {
        for i in (0..width).rev() {
            self.bytes[self.len + i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        self.len += width;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn truncates_to_the_hour() {
        let hour = Hour::containing(at("2024-02-29T23:59:59.999Z"));
        assert_eq!(hour.to_string(), "2024-02-29T23:00:00.000Z");
        assert_eq!(hour.end(), at("2024-03-01T00:00:00Z"));
    }

    #[test]
    fn before_the_epoch_rounds_down() {
        let hour = Hour::containing(at("1969-12-31T23:30:00Z"));
        assert_eq!(hour.to_string(), "1969-12-31T23:00:00.000Z");
    }

    #[test]
    fn years_outside_four_digits_use_the_expanded_form() {
        assert_eq!(
            Hour::containing(at("+10000-01-01T04:30:00Z")).to_string(),
            "+010000-01-01T04:00:00.000Z"
        );
        assert_eq!(
            Hour::containing(at("-0001-06-01T00:00:00Z")).to_string(),
            "-000001-06-01T00:00:00.000Z"
        );
        assert_eq!(
            Hour::containing(at("0000-01-01T00:00:00Z")).to_string(),
            "0000-01-01T00:00:00.000Z"
        );
    }
}
