//! Which instrument a token opens: a heap snapshot or the sampling heap profile.
//!
//! Both are signed with the same secret and hour, but over different values, so a token that
//! opens the profile never opens the snapshot and vice versa. A leaked profile URL shows which
//! lines allocate what is still alive (no values from the heap) and costs the app a few
//! milliseconds; a leaked snapshot URL shows every string in the heap and costs the app seconds
//! and several times its heap in memory. The snapshot signs the configured value unchanged, so
//! tokens stay byte-compatible with the Node.js one-liner servers already run; the profile signs
//! that value with [`PROFILE_SUFFIX`] appended:
//!
//! ```text
//! JSON.stringify({date: <UTC start of the hour>, value: VALUE + ':heapprofile'})
//! ```

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// Appended to the configured value to form the value a profile token signs.
pub const PROFILE_SUFFIX: &str = ":heapprofile";

/// What a signed URL opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Instrument {
    /// A full heap snapshot (`.heapsnapshot`): every object, who holds it, its strings.
    #[default]
    Snapshot,
    /// V8's sampling heap profile: live bytes and objects by allocation stack.
    Profile,
}

impl Instrument {
    /// Every instrument, in a fixed order.
    pub const ALL: [Instrument; 2] = [Instrument::Snapshot, Instrument::Profile];

    /// The value a token for this instrument signs, given the configured value: the snapshot
    /// signs `value` unchanged, the profile signs `value + ":heapprofile"`.
    pub fn signed_value(self, value: &str) -> Cow<'_, str> {
        match self {
            Instrument::Snapshot => Cow::Borrowed(value),
            Instrument::Profile => Cow::Owned(format!("{value}{PROFILE_SUFFIX}")),
        }
    }

    /// `snapshot` or `profile`, as the command line and logs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Instrument::Snapshot => "snapshot",
            Instrument::Profile => "profile",
        }
    }

    /// The path a sidecar serves it on unless configured otherwise.
    pub fn default_path(self) -> &'static str {
        match self {
            Instrument::Snapshot => "/heapdump",
            Instrument::Profile => "/heapprofile",
        }
    }
}

impl fmt::Display for Instrument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not `snapshot` or `profile`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown instrument (use snapshot or profile)")]
pub struct UnknownInstrument;

impl FromStr for Instrument {
    type Err = UnknownInstrument;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "snapshot" => Ok(Instrument::Snapshot),
            "profile" => Ok(Instrument::Profile),
            _ => Err(UnknownInstrument),
        }
    }
}

/// The encodings the profile path serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProfileFormat {
    /// DevTools' `.heapprofile` JSON (V8's `HeapProfiler.SamplingHeapProfile`): Chrome DevTools'
    /// Memory tab loads it.
    #[default]
    HeapProfile,
    /// pprof's `profile.proto`, gzipped, with sample types `space/bytes` and `objects/count`:
    /// `go tool pprof`, Grafana Pyroscope and speedscope open it.
    Pprof,
}

impl ProfileFormat {
    /// The query value: `heapprofile` or `pprof`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileFormat::HeapProfile => "heapprofile",
            ProfileFormat::Pprof => "pprof",
        }
    }

    /// The file name extension a saved profile gets.
    pub fn extension(self) -> &'static str {
        match self {
            ProfileFormat::HeapProfile => "heapprofile",
            ProfileFormat::Pprof => "pb.gz",
        }
    }
}

impl fmt::Display for ProfileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not `heapprofile` or `pprof`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown profile format (use heapprofile or pprof)")]
pub struct UnknownFormat;

impl FromStr for ProfileFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "heapprofile" => Ok(ProfileFormat::HeapProfile),
            "pprof" => Ok(ProfileFormat::Pprof),
            _ => Err(UnknownFormat),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_signs_the_value_unchanged_and_the_profile_a_distinct_one() {
        assert_eq!(Instrument::Snapshot.signed_value("heapdump"), "heapdump");
        assert_eq!(
            Instrument::Profile.signed_value("heapdump"),
            "heapdump:heapprofile"
        );
        assert_ne!(
            Instrument::Snapshot.signed_value("x:heapprofile"),
            Instrument::Profile.signed_value("x:heapprofile")
        );
        for instrument in Instrument::ALL {
            assert_eq!(instrument.as_str().parse::<Instrument>(), Ok(instrument));
        }
        assert!("Profile".parse::<Instrument>().is_err());
        for format in [ProfileFormat::HeapProfile, ProfileFormat::Pprof] {
            assert_eq!(format.as_str().parse::<ProfileFormat>(), Ok(format));
        }
        assert!("json".parse::<ProfileFormat>().is_err());
    }
}
