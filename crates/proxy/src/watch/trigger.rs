//! When to take a series: the heap's floor grew by `growth` within `window`, and no guard holds.
//! Memory is not a guard here: a series always stores sampling heap profiles, and each of its
//! snapshots passes the headroom rule ([`crate::headroom`]) on its own.
//!
//! A pure state machine: samples and the time come in as parameters, decisions go out, so every
//! rule is unit-tested without a clock or an app.
//!
//! The floor: the heap used rises between garbage collections and falls at each (the sawtooth),
//! so a single sample says little. The floor at a sample is the minimum over the last
//! [`FLOOR_SAMPLES`] samples, which a collection pulls down; a leak lifts it. The trigger fires
//! when the current floor is at least `growth` above the lowest floor seen within the window.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::source::inspector::HeapUsage;

/// Samples the floor is the minimum of (one minute at the default 15 s polling).
pub(crate) const FLOOR_SAMPLES: usize = 4;

/// The trigger's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TriggerConfig {
    /// Growth of the floor that fires a series, bytes.
    pub(crate) growth: u64,
    pub(crate) window: Duration,
    /// No new series until this long after the last one ended.
    pub(crate) cooldown: Duration,
}

/// How much the floor grew, and over how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Growth {
    pub(crate) from: u64,
    pub(crate) to: u64,
    pub(crate) over: Duration,
}

/// What holds a series back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guard {
    /// A series is being taken.
    SeriesRunning,
    /// The last series ended less than the cooldown ago.
    Cooldown { left: Duration },
}

impl Guard {
    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Guard::SeriesRunning => "series_running",
            Guard::Cooldown { .. } => "cooldown",
        }
    }
}

/// The outcome of one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// No growth worth a series.
    Quiet,
    /// Take a series now.
    Fire(Growth),
    /// Growth worth a series, held back.
    Held(Guard, Growth),
}

/// The trigger's state.
#[derive(Debug)]
pub(crate) struct Trigger {
    config: TriggerConfig,
    /// The last [`FLOOR_SAMPLES`] heap-used samples within the window.
    recent: VecDeque<(Instant, u64)>,
    /// The floor at each sample within the window, oldest first.
    floors: VecDeque<(Instant, u64)>,
    running: bool,
    last_ended: Option<Instant>,
}

impl Trigger {
    pub(crate) fn new(config: TriggerConfig) -> Trigger {
        Trigger {
            config,
            recent: VecDeque::with_capacity(FLOOR_SAMPLES),
            floors: VecDeque::new(),
            running: false,
            last_ended: None,
        }
    }

    /// Forgets the samples (the app restarted: its heap starts over).
    pub(crate) fn reset(&mut self) {
        self.recent.clear();
        self.floors.clear();
    }

    /// A series started at `now`.
    pub(crate) fn series_started(&mut self) {
        self.running = true;
    }

    /// The series ended at `now`: the cooldown starts, and growth is measured afresh (a
    /// snapshot's collections move the heap).
    pub(crate) fn series_ended(&mut self, now: Instant) {
        self.running = false;
        self.last_ended = Some(now);
        self.reset();
    }

    /// Takes a sample read at `now`.
    pub(crate) fn observe(&mut self, now: Instant, usage: HeapUsage) -> Decision {
        if self.recent.len() == FLOOR_SAMPLES {
            self.recent.pop_front();
        }
        self.recent.push_back((now, usage.used));
        let window = self.config.window;
        let stale = |at: Instant| now.saturating_duration_since(at) > window;
        self.recent.retain(|&(at, _)| !stale(at));
        self.floors.retain(|&(at, _)| !stale(at));
        if self.recent.len() < FLOOR_SAMPLES {
            return Decision::Quiet;
        }
        let floor = self
            .recent
            .iter()
            .map(|&(_, used)| used)
            .min()
            .unwrap_or(usage.used);
        self.floors.push_back((now, floor));
        let Some(&(since, lowest)) = self.floors.iter().min_by_key(|(_, floor)| *floor) else {
            return Decision::Quiet;
        };
        if floor.saturating_sub(lowest) < self.config.growth {
            return Decision::Quiet;
        }
        let growth = Growth {
            from: lowest,
            to: floor,
            over: now.saturating_duration_since(since),
        };
        if self.running {
            return Decision::Held(Guard::SeriesRunning, growth);
        }
        if let Some(ended) = self.last_ended {
            let ready = ended + self.config.cooldown;
            if now < ready {
                return Decision::Held(Guard::Cooldown { left: ready - now }, growth);
            }
        }
        Decision::Fire(growth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const EVERY: Duration = Duration::from_secs(15);

    fn config() -> TriggerConfig {
        TriggerConfig {
            growth: 20 * MIB,
            window: Duration::from_secs(30 * 60),
            cooldown: Duration::from_secs(6 * 3600),
        }
    }

    fn used(mib: u64) -> HeapUsage {
        HeapUsage {
            used: mib * MIB,
            total: mib * MIB + 8 * MIB,
            rss: Some(mib * MIB + 40 * MIB),
            max_rss: None,
            pid: None,
        }
    }

    /// Feeds `samples` (MiB used) one `EVERY` apart from `start`; the decisions and the time after.
    fn feed(
        trigger: &mut Trigger,
        start: Instant,
        samples: impl IntoIterator<Item = u64>,
    ) -> (Vec<Decision>, Instant) {
        let mut now = start;
        let decisions = samples
            .into_iter()
            .map(|mib| {
                now += EVERY;
                trigger.observe(now, used(mib))
            })
            .collect();
        (decisions, now)
    }

    fn fired(decisions: &[Decision]) -> usize {
        decisions
            .iter()
            .filter(|d| matches!(d, Decision::Fire(_)))
            .count()
    }

    #[test]
    fn steady_growth_fires_once_the_floor_rose_enough() {
        let mut trigger = Trigger::new(config());
        // 1 MiB per sample: the floor lags FLOOR_SAMPLES - 1 behind, and reaches +20 MiB at
        // sample 24 (floor 120 - 100).
        let (decisions, _) = feed(&mut trigger, Instant::now(), (0..30).map(|i| 100 + i));
        let first = decisions
            .iter()
            .position(|d| matches!(d, Decision::Fire(_)))
            .expect("fires");
        assert_eq!(first, 23);
        assert_eq!(
            decisions[first],
            Decision::Fire(Growth {
                from: 100 * MIB,
                to: 120 * MIB,
                over: EVERY * 20,
            })
        );
    }

    #[test]
    fn the_gc_sawtooth_does_not_fire() {
        let mut trigger = Trigger::new(config());
        // Peaks 60 MiB above a flat floor every third sample, for two hours.
        let saw = (0..480).map(|i| if i % 3 == 2 { 160 } else { 100 + (i % 3) * 20 });
        let (decisions, _) = feed(&mut trigger, Instant::now(), saw);
        assert_eq!(fired(&decisions), 0);
    }

    #[test]
    fn growth_slower_than_the_window_does_not_fire() {
        let mut trigger = Trigger::new(config());
        // +20 MiB over two hours: never 20 MiB within 30 minutes.
        let slow = (0..480).map(|i| 100 + i / 24);
        let (decisions, _) = feed(&mut trigger, Instant::now(), slow);
        assert_eq!(fired(&decisions), 0);
    }

    #[test]
    fn a_running_series_then_the_cooldown_hold_it_back() {
        let mut trigger = Trigger::new(config());
        let (decisions, now) = feed(&mut trigger, Instant::now(), (0..24).map(|i| 100 + i));
        assert!(matches!(decisions.last(), Some(Decision::Fire(_))));
        trigger.series_started();
        let (decisions, now) = feed(&mut trigger, now, [124, 125]);
        assert!(
            decisions
                .iter()
                .all(|d| matches!(d, Decision::Held(Guard::SeriesRunning, _)))
        );
        trigger.series_ended(now);
        // Still growing: after 24 samples the floor has grown enough again, but the cooldown holds.
        let (decisions, now) = feed(&mut trigger, now, (0..30).map(|i| 130 + i));
        assert_eq!(fired(&decisions), 0);
        assert!(matches!(
            decisions.last(),
            Some(Decision::Held(Guard::Cooldown { .. }, _))
        ));
        // Six hours later it may fire again.
        let later = now + Duration::from_secs(6 * 3600);
        let (decisions, _) = feed(&mut trigger, later, (0..30).map(|i| 200 + i));
        assert_eq!(fired(&decisions), 7);
    }

    #[test]
    fn a_restart_forgets_the_old_heap() {
        let mut trigger = Trigger::new(config());
        let (_, now) = feed(&mut trigger, Instant::now(), [300, 300, 300, 300]);
        trigger.reset();
        // The new process starts lower, then grows by less than 20 MiB: no fire.
        let (decisions, _) = feed(&mut trigger, now, (0..20).map(|i| 50 + i));
        assert_eq!(fired(&decisions), 0);
    }
}
