//! Are two snapshots from the same process? The comparison is meaningless otherwise.
//!
//! A diff matches objects by id. Within one process V8 gives every heap object an id the first
//! time a snapshot sees it, keeps it while the object lives (moves included) and never reuses it;
//! new objects get higher ids. A different process (or the same service after a restart) numbers
//! its heap again from 1, so its ids land on *other* objects: the diff then reports most of the
//! heap as new and deleted, and the totals mean nothing.
//!
//! Id overlap alone cannot tell the two apart: both processes use the dense range 1, 3, 5, …, so
//! almost every id of BASE also exists in NEW either way. What differs is what the id points to.
//! In the same process an id is the same object, with the same type, name and self size (strings
//! are immutable, and a string's name is its content; when either file is redacted, strings are
//! compared by type and size only, so a redacted copy still matches its original). In another process the same id is some
//! other object as soon as the two heaps diverge. So the check takes a sample of odd ids (V8 heap
//! objects; even ids are embedder objects, renumbered on every snapshot), fingerprints each
//! node's type, name and self size, and looks at the ids present in both files:
//!
//! - measured on Node.js 20: same process, with allocation churn between snapshots, 99.99% of
//!   shared ids agree; two processes running the same script 93% (only when nothing differs
//!   between them but a file name), two processes whose work differed 26–40%. The threshold
//!   is 98%.
//! - if fewer than 2% of BASE's sampled objects are in NEW, the files are not a series either
//!   (a live process keeps its code, builtins and long-lived state between snapshots; 64% of
//!   objects survived in the churn test).
//! - ids only grow, so a NEW whose highest id is below BASE's was taken first: the arguments are
//!   probably swapped.
//!
//! Fingerprints of 1 in 64 odd ids are kept (all of them for small snapshots), chosen by a hash
//! of the id so that both files sample the same ids.

use serde::Serialize;

/// The least share of shared ids whose type, name and size agree, for the same process.
const MIN_AGREEMENT: f64 = 0.98;
/// The least share of BASE's objects still in NEW, for the same process.
const MIN_SURVIVAL: f64 = 0.02;
/// Snapshots up to this many nodes fingerprint every odd id.
const SAMPLE_ALL_UP_TO: usize = 200_000;
/// Larger snapshots keep 1 in 2^6 odd ids.
const SAMPLE_SHIFT: u32 = 6;

/// Which ids a snapshot fingerprints: odd ids whose top `shift` hash bits are zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SampleRate {
    shift: u32,
}

impl SampleRate {
    pub(crate) fn for_node_count(nodes: usize) -> SampleRate {
        SampleRate {
            shift: if nodes <= SAMPLE_ALL_UP_TO {
                0
            } else {
                SAMPLE_SHIFT
            },
        }
    }

    /// The rate as stored in an index.
    pub(crate) fn shift(self) -> u32 {
        self.shift
    }

    /// A rate read back from an index; `None` if out of range.
    pub(crate) fn from_shift(shift: u32) -> Option<SampleRate> {
        (shift < 32).then_some(SampleRate { shift })
    }

    pub(crate) fn includes(self, id: u32) -> bool {
        // Fibonacci hashing spreads consecutive ids evenly over the top bits.
        id % 2 == 1 && (self.shift == 0 || id.wrapping_mul(0x9E37_79B1) >> (32 - self.shift) == 0)
    }

    /// The sparser of two rates: its ids are a subset of both.
    fn sparser(self, other: SampleRate) -> SampleRate {
        SampleRate {
            shift: self.shift.max(other.shift),
        }
    }
}

/// Fingerprints of the sampled heap objects of one snapshot, sorted by id.
#[derive(Clone, Debug)]
pub(crate) struct IdentitySample {
    pub(crate) rate: SampleRate,
    pub(crate) entries: Vec<(u32, Fingerprint)>,
    /// Whether string values were redacted (`heapgate redact`, the proxy's `--redact strings`):
    /// then strings can only be matched by type and size.
    pub(crate) redacted: bool,
}

/// One sampled node's fingerprints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    /// Type, name and self size.
    pub(crate) exact: u64,
    /// The same, leaving out a string's name (its content, which redaction replaces): what a
    /// redacted copy still has in common with its original.
    pub(crate) unnamed_strings: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a: stable across runs and platforms, which a std hasher does not promise.
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// A node's identity fingerprint from its type name, name hash and raw self size.
pub(crate) fn fingerprint(type_name: &str, name_hash: u64, self_size: u32) -> u64 {
    let h = hash_bytes(type_name.as_bytes());
    let h = (h ^ name_hash).wrapping_mul(FNV_PRIME);
    (h ^ u64::from(self_size)).wrapping_mul(FNV_PRIME)
}

/// What the check concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// BASE and NEW are snapshots of one process, BASE first: the diff is meaningful.
    SameSeries,
    /// The ids were handed out by different processes (or a restart): the diff is not
    /// meaningful.
    DifferentSessions,
    /// Same process, but NEW was taken before BASE: the arguments look swapped.
    Reversed,
    /// Too few heap objects to tell (tiny or synthetic files).
    Unknown,
}

/// The outcome of [`crate::comparability`], with the numbers behind it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparability {
    /// The conclusion.
    pub verdict: Verdict,
    /// Sampled heap objects in BASE.
    pub sampled_base: usize,
    /// Sampled heap objects in NEW.
    pub sampled_new: usize,
    /// Sampled ids present in both.
    pub shared: usize,
    /// Shared ids whose node has the same type, name and self size in both.
    pub identical: usize,
    /// `shared / sampled_base`: how much of BASE is still in NEW.
    pub survival: f64,
    /// `identical / shared`: whether an id means the same object in both.
    pub agreement: f64,
    /// One sentence for people: the verdict and why.
    pub message: String,
}

impl Comparability {
    /// Whether a user should be warned before trusting the diff.
    pub fn is_warning(&self) -> bool {
        matches!(self.verdict, Verdict::DifferentSessions | Verdict::Reversed)
    }
}

/// Whether two snapshots, `base` first, look like snapshots of the same process, from their
/// samples and highest JavaScript object ids (see [`crate::comparability`]).
pub(crate) fn compare_samples(
    (base, base_max_js_id): (&IdentitySample, u32),
    (new, new_max_js_id): (&IdentitySample, u32),
) -> Comparability {
    let rate = base.rate.sparser(new.rate);
    // A redacted file's strings all read `<redacted>`: compare them by type and size only.
    let redacted = base.redacted || new.redacted;
    let pick = |s: &IdentitySample| -> Vec<(u32, u64)> {
        s.entries
            .iter()
            .filter(|&&(id, _)| rate.includes(id))
            .map(|&(id, fp)| {
                (
                    id,
                    if redacted {
                        fp.unnamed_strings
                    } else {
                        fp.exact
                    },
                )
            })
            .collect()
    };
    let (a, b) = (pick(base), pick(new));
    let (mut i, mut j, mut shared, mut identical) = (0, 0, 0usize, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                identical += usize::from(a[i].1 == b[j].1);
                i += 1;
                j += 1;
            }
        }
    }
    let ratio = |x: usize, y: usize| if y == 0 { 0.0 } else { x as f64 / y as f64 };
    let survival = ratio(shared, a.len());
    let agreement = ratio(identical, shared);
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let (verdict, message) = if a.is_empty() || b.is_empty() {
        (
            Verdict::Unknown,
            "cannot tell whether the snapshots come from the same process: too few heap objects"
                .to_owned(),
        )
    } else if shared == 0 {
        (
            Verdict::DifferentSessions,
            "not the same process: no object of BASE is in NEW (ids from another process or a \
             restart make every object look new)"
                .to_owned(),
        )
    } else if agreement < MIN_AGREEMENT {
        (
            Verdict::DifferentSessions,
            format!(
                "not the same process: {} of the ids found in both files name a different object \
                 (another process or a restart numbered its heap again; every object looks new)",
                pct(1.0 - agreement)
            ),
        )
    } else if survival < MIN_SURVIVAL {
        (
            Verdict::DifferentSessions,
            format!(
                "probably not the same process: only {} of BASE's objects are in NEW",
                pct(survival)
            ),
        )
    } else if new_max_js_id < base_max_js_id {
        (
            Verdict::Reversed,
            "same process, but NEW was taken before BASE (its newest object id is lower): swap \
             the files?"
                .to_owned(),
        )
    } else {
        (
            Verdict::SameSeries,
            format!(
                "same process: {} of BASE's objects are in NEW, {} of them unchanged",
                pct(survival),
                pct(agreement)
            ),
        )
    };
    Comparability {
        verdict,
        sampled_base: a.len(),
        sampled_new: b.len(),
        shared,
        identical,
        survival,
        agreement,
        message,
    }
}
