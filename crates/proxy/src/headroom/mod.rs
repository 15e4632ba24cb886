//! Whether a heap snapshot fits in the app's memory: the rule every snapshot passes, on-demand or
//! from the leak watch.
//!
//! A snapshot costs the app far more than its heap: V8 builds the whole graph in the app's own
//! process. Measured here (NOTES.md) on ~1 M small objects, the peak RSS rose by 13.9× the heap
//! used on Node 20 (186 MiB heap: 284 → 2,868 MiB), 12.3× on Node 24, 6.8× with 4 KiB strings,
//! and 10× on a 10 MiB heap. So before the first snapshot the rule expects
//! `RSS + DEFAULT_COST_FACTOR × heap used`, above every one of those.
//!
//! After each snapshot it learns the app's own cost: the peak RSS the app reports
//! (`process.resourceUsage().maxRSS`) minus the RSS before, per byte of heap used before. maxRSS is
//! the peak of the process's whole life, so when an earlier peak was higher the figure is an upper
//! bound — never an underestimate. The next prediction is that cost (with [`LEARNED_MARGIN`]) on
//! the heap used now, from the RSS the app had before the learned snapshot grown by the heap's
//! growth since; and never less than the RSS now. (A snapshot leaves the RSS up — the allocator
//! keeps the pages — and the next snapshot reuses them, so "RSS now + cost" would over-count.)
//!
//! The arithmetic is pure (readings and the limit in, a [`Prediction`] out); [`SnapshotRule`] does
//! the reading: the app's memory over the inspector, the limit from [`limit`].

pub(crate) mod limit;

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use crate::source::inspector::{HeapSample, HeapUsage, InspectorSource};

/// Extra memory a first snapshot is expected to cost, per byte of heap used: 15×, above the
/// 13.9× measured on Node 20 with small objects, the worst case seen.
pub(crate) const DEFAULT_COST_FACTOR: f64 = 15.0;

/// Margin on a learned cost: the next snapshot may cost a little more than the last (measured
/// here: the second snapshot of the same 178 MiB heap peaked 3–4 % above the first's
/// prediction basis, `bench/profile/headroom.sh`), and a grown heap a little more per byte.
pub(crate) const LEARNED_MARGIN: f64 = 1.15;

/// The app's own cost, learned from its last snapshot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Learned {
    /// Peak RSS increase per byte of heap used.
    pub(crate) factor: f64,
    /// The RSS before that snapshot, and the heap used then.
    pub(crate) rss_before: u64,
    pub(crate) heap_before: u64,
    /// The peak it reached.
    pub(crate) peak: u64,
}

/// What a snapshot is expected to need, and what the limit allows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Prediction {
    /// The app's expected peak RSS during the snapshot, bytes.
    pub(crate) need: u64,
    pub(crate) limit: u64,
    /// Where the limit comes from (`--app-memory-limit`, the ECS task, the app's cgroup).
    pub(crate) limit_from: String,
    pub(crate) rss: u64,
    pub(crate) heap_used: u64,
    /// The cost factor used (learned ones include the margin).
    pub(crate) factor: f64,
    pub(crate) learned: bool,
}

impl Prediction {
    pub(crate) fn fits(&self) -> bool {
        self.need <= self.limit
    }
}

impl fmt::Display for Prediction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected peak {} (RSS {}, heap used {}, cost {:.1}× the heap, {}) against the limit {} ({})",
            mib(self.need),
            mib(self.rss),
            mib(self.heap_used),
            self.factor,
            if self.learned {
                "learned from this app's last snapshot"
            } else {
                "default before a first snapshot"
            },
            mib(self.limit),
            self.limit_from,
        )
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / f64::from(1u32 << 20))
}

/// The expected peak RSS of a snapshot taken now.
pub(crate) fn predict(usage: &HeapUsage, learned: Option<&Learned>) -> (u64, f64) {
    let rss = usage.rss.unwrap_or(usage.total);
    match learned {
        None => {
            let need = rss as f64 + DEFAULT_COST_FACTOR * usage.used as f64;
            (need as u64, DEFAULT_COST_FACTOR)
        }
        Some(learned) => {
            let factor = learned.factor * LEARNED_MARGIN;
            // The baseline is the RSS before the learned snapshot (grown with the heap since); a
            // process that has not had one here yet (`heap_before` 0) is its own baseline.
            let base = if learned.heap_before == 0 {
                rss as f64
            } else {
                let grown = usage.used as f64 - learned.heap_before as f64;
                (learned.rss_before as f64 + grown).max(0.0)
            };
            let need = (base + factor * usage.used as f64).max(rss as f64);
            (need as u64, factor)
        }
    }
}

/// What the snapshot taken at `before` cost, read at `after` (`None` without the readings).
pub(crate) fn learn(before: &HeapUsage, after: &HeapUsage) -> Option<Learned> {
    let rss_before = before.rss?;
    let peak = after.max_rss?;
    if before.used == 0 {
        return None;
    }
    let factor = peak.saturating_sub(rss_before) as f64 / before.used as f64;
    Some(Learned {
        factor,
        rss_before,
        heap_before: before.used,
        peak,
    })
}

/// The rule with its state: the limit and the cost learned on the current session.
#[derive(Debug, Default)]
pub(crate) struct Headroom {
    learned: Mutex<Option<(String, Learned)>>,
}

impl Headroom {
    pub(crate) fn new() -> Headroom {
        Headroom::default()
    }

    /// The prediction for a snapshot of the app read as `usage` on session `session`, under
    /// `limit` (bytes, with where it comes from).
    pub(crate) fn check(
        &self,
        usage: &HeapUsage,
        session: &str,
        limit: (u64, String),
    ) -> Prediction {
        let learned = self.learned_for(session);
        let (need, factor) = predict(usage, learned.as_ref());
        Prediction {
            need,
            limit: limit.0,
            limit_from: limit.1,
            rss: usage.rss.unwrap_or(usage.total),
            heap_used: usage.used,
            factor,
            learned: learned.is_some(),
        }
    }

    /// Records what a snapshot on session `session` cost. A cost learned on another session (the app
    /// restarted) keeps its factor but not its baseline: the RSS before is the new process's.
    pub(crate) fn record(&self, session: &str, learned: Learned) {
        *self.lock() = Some((session.to_owned(), learned));
    }

    fn learned_for(&self, session: &str) -> Option<Learned> {
        let guard = self.lock();
        let (on, learned) = guard.as_ref()?;
        if on == session {
            return Some(*learned);
        }
        // Another process: its own RSS is the baseline, the cost per byte carries over.
        Some(Learned {
            rss_before: 0,
            heap_before: 0,
            ..*learned
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(String, Learned)>> {
        self.learned.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The rule as snapshots meet it: reads the app's memory and the limit, admits or refuses, and
/// learns from each snapshot taken.
pub(crate) struct SnapshotRule {
    inspector: Arc<InspectorSource>,
    headroom: Headroom,
    /// `--app-memory-limit` or the ECS task's, with where it came from; else the app's cgroup.
    fixed_limit: Option<(u64, String)>,
    unsafe_override: bool,
}

/// A snapshot the rule let through: what the app looked like just before.
#[derive(Debug)]
pub(crate) struct Admitted {
    before: Option<HeapSample>,
}

/// Why the rule refused a snapshot: the text of the answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refused {
    /// It would not fit.
    TooBig(Prediction),
    /// The app's memory could not be read, so nothing says the snapshot fits.
    Unreadable { why: String },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::TooBig(p) => write!(
                f,
                "a heap snapshot would not fit in this task's memory: {p}"
            ),
            Refused::Unreadable { why } => write!(
                f,
                "the app's memory could not be read ({why}), so nothing says a heap snapshot would fit in this task's memory"
            ),
        }
    }
}

impl SnapshotRule {
    pub(crate) fn new(
        inspector: Arc<InspectorSource>,
        fixed_limit: Option<(u64, String)>,
        unsafe_override: bool,
    ) -> SnapshotRule {
        SnapshotRule {
            inspector,
            headroom: Headroom::new(),
            fixed_limit,
            unsafe_override,
        }
    }

    /// Whether a snapshot may start now. With the override, a refusal is logged and ignored.
    pub(crate) async fn admit(&self) -> Result<Admitted, Refused> {
        let sample = match self.inspector.sample_heap().await {
            Ok(sample) => sample,
            // Fail closed: the limit may be near, and the snapshot would read the same inspector.
            Err(e) if !self.unsafe_override => {
                return Err(Refused::Unreadable { why: e.to_string() });
            }
            Err(e) => {
                tracing::warn!(error = %e, "headroom rule: the app's memory could not be read; snapshot taken anyway (--unsafe-snapshot-without-headroom)");
                return Ok(Admitted { before: None });
            }
        };
        let limit = self.fixed_limit.clone().or_else(|| {
            sample
                .usage
                .pid
                .and_then(|pid| limit::cgroup_memory_limit(Path::new("/"), pid, sample.usage.rss))
        });
        let Some(limit) = limit else {
            tracing::debug!("no memory limit known for the app; the headroom rule cannot refuse");
            return Ok(Admitted {
                before: Some(sample),
            });
        };
        let prediction = self.headroom.check(&sample.usage, &sample.session, limit);
        if prediction.fits() {
            tracing::info!(
                %prediction,
                need = prediction.need,
                limit = prediction.limit,
                factor = prediction.factor,
                learned = prediction.learned,
                "headroom rule: the snapshot fits"
            );
            return Ok(Admitted {
                before: Some(sample),
            });
        }
        if self.unsafe_override {
            tracing::warn!(%prediction, "headroom rule: the snapshot would not fit; taken anyway (--unsafe-snapshot-without-headroom)");
            return Ok(Admitted {
                before: Some(sample),
            });
        }
        Err(Refused::TooBig(prediction))
    }

    /// After a complete snapshot: reads the app's peak RSS and learns what the snapshot cost.
    pub(crate) async fn learn(&self, admitted: Admitted) {
        let Some(before) = admitted.before else {
            return;
        };
        let after = match self.inspector.sample_heap().await {
            Ok(after) if after.session == before.session => after,
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(error = %e, "headroom rule: cannot read the app's memory after the snapshot");
                return;
            }
        };
        if let Some(learned) = learn(&before.usage, &after.usage) {
            tracing::info!(
                factor = learned.factor,
                rss_before = learned.rss_before,
                heap_before = learned.heap_before,
                peak = learned.peak,
                rss_after = after.usage.rss,
                "headroom rule: learned what a snapshot costs this app"
            );
            self.headroom.record(&before.session, learned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn usage(used: u64, rss: u64, max_rss: u64) -> HeapUsage {
        HeapUsage {
            used: used * MIB,
            total: used * MIB + 10 * MIB,
            rss: Some(rss * MIB),
            max_rss: Some(max_rss * MIB),
            pid: None,
        }
    }

    /// The cgroup case: 151 MiB of heap, 208 MiB RSS, 800 MiB limit → refused; the
    /// default covers every cost measured (NOTES.md).
    #[test]
    fn the_default_refuses_what_killed_the_app_and_covers_the_measured_costs() {
        let (need, factor) = predict(&usage(151, 208, 208), None);
        assert_eq!(factor, DEFAULT_COST_FACTOR);
        assert!(need > 800 * MIB, "{need}");
        // (heap, rss before, measured peak) from NOTES.md, all MiB.
        for (heap, rss, peak) in [
            (186, 284, 2868),
            (187, 295, 2593),
            (192, 346, 1657),
            (10, 40, 140),
        ] {
            let (need, _) = predict(&usage(heap, rss, rss), None);
            assert!(need >= peak * MIB, "{heap} MiB heap: {need} < {peak} MiB");
        }
    }

    #[test]
    fn learns_the_apps_cost_and_predicts_the_next_peak() {
        // First snapshot: 186 MiB heap, 284 → peak 2,868 MiB.
        let before = usage(186, 284, 290);
        let after = usage(186, 1900, 2868);
        let learned = learn(&before, &after).unwrap();
        assert!((learned.factor - (2868.0 - 284.0) / 186.0).abs() < 1e-9);
        let headroom = Headroom::new();
        headroom.record("s1", learned);
        // Second snapshot, same heap, RSS still up at 1,900 MiB: about the same peak, not
        // 1,900 + 2,584.
        let p = headroom.check(&usage(186, 1900, 2868), "s1", (4096 * MIB, "test".into()));
        assert!(p.learned);
        let expected = 2868.0 * MIB as f64;
        let ratio = p.need as f64 / expected;
        assert!((1.0..1.2).contains(&ratio), "{ratio}");
        // Never less than the RSS now.
        let tiny = headroom.check(&usage(1, 1900, 2868), "s1", (4096 * MIB, "t".into()));
        assert!(tiny.need >= 1900 * MIB);
        // Another process: the factor carries over, the baseline is its own RSS.
        let other = headroom.check(&usage(100, 150, 150), "s2", (4096 * MIB, "t".into()));
        assert!(other.learned);
        let fresh = 150.0 + learned.factor * LEARNED_MARGIN * 100.0;
        assert!((other.need as f64 / MIB as f64 - fresh).abs() < 1.0);
        let no_rss = HeapUsage {
            rss: None,
            ..before
        };
        assert_eq!(learn(&no_rss, &after), None);
    }

    #[test]
    fn the_refusal_says_why() {
        let p = Headroom::new().check(&usage(151, 208, 208), "s", (800 * MIB, "cgroup".into()));
        assert!(!p.fits());
        let text = p.to_string();
        assert!(
            text.contains("against the limit 800 MiB (cgroup)"),
            "{text}"
        );
        assert!(text.contains("heap used 151 MiB"), "{text}");
    }
}
