//! One snapshot at a time, and not too often.
//!
//! A snapshot blocks the app's event loop for its whole duration (tens of seconds at a few hundred
//! MiB of heap) and raises its RSS by several times the heap size, so two at once, or one right
//! after another, could take the service down. The gate admits one snapshot, then refuses new
//! ones until `min_interval` has passed since the last one *finished*.
//!
//! Time is tokio's clock (`tokio::time::Instant`), so tests can pause and advance it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Admits at most one snapshot at a time, spaced by a minimum interval.
#[derive(Debug)]
pub(crate) struct SnapshotGate {
    min_interval: Duration,
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    running: bool,
    last_finished: Option<Instant>,
}

/// Why a snapshot cannot start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Busy {
    /// Another snapshot is being taken.
    Running { retry_after: Duration },
    /// The last one finished less than the minimum interval ago.
    TooSoon { retry_after: Duration },
}

impl Busy {
    /// How long the client should wait (whole seconds, at least one).
    pub(crate) fn retry_after_secs(self) -> u64 {
        let (Busy::Running { retry_after } | Busy::TooSoon { retry_after }) = self;
        retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

impl SnapshotGate {
    pub(crate) fn new(min_interval: Duration) -> Arc<SnapshotGate> {
        Arc::new(SnapshotGate {
            min_interval,
            state: Mutex::new(GateState::default()),
        })
    }

    /// Starts a snapshot if none is running and the interval has passed.
    pub(crate) fn try_start(self: &Arc<Self>, now: Instant) -> Result<SnapshotPermit, Busy> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.running {
            return Err(Busy::Running {
                retry_after: self.min_interval,
            });
        }
        if let Some(finished) = state.last_finished {
            let ready_at = finished + self.min_interval;
            if now < ready_at {
                return Err(Busy::TooSoon {
                    retry_after: ready_at - now,
                });
            }
        }
        state.running = true;
        Ok(SnapshotPermit {
            gate: Arc::clone(self),
            charged: true,
        })
    }

    /// Whether a snapshot is being taken now.
    pub(crate) fn is_running(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .running
    }

    fn release(&self, charged: bool) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.running = false;
        if charged {
            state.last_finished = Some(Instant::now());
        }
    }
}

/// Held while a snapshot runs; dropping it ends the snapshot and starts the interval.
#[derive(Debug)]
pub(crate) struct SnapshotPermit {
    gate: Arc<SnapshotGate>,
    charged: bool,
}

impl SnapshotPermit {
    /// Ends the permit without starting the interval: the snapshot never reached the app (its
    /// source was unreachable), so the app paid nothing.
    pub(crate) fn release_uncharged(mut self) {
        self.charged = false;
    }
}

impl Drop for SnapshotPermit {
    fn drop(&mut self) {
        self.gate.release(self.charged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn one_at_a_time() {
        let gate = SnapshotGate::new(MIN);
        let permit = gate.try_start(Instant::now()).unwrap();
        assert!(gate.is_running());
        assert!(matches!(
            gate.try_start(Instant::now()),
            Err(Busy::Running { .. })
        ));
        drop(permit);
        assert!(!gate.is_running());
    }

    #[tokio::test(start_paused = true)]
    async fn interval_counts_from_the_end_of_the_last_snapshot() {
        let gate = SnapshotGate::new(MIN);
        drop(gate.try_start(Instant::now()).unwrap());
        tokio::time::advance(Duration::from_secs(10)).await;
        let busy = gate.try_start(Instant::now()).unwrap_err();
        assert_eq!(
            busy,
            Busy::TooSoon {
                retry_after: Duration::from_secs(20)
            }
        );
        assert_eq!(busy.retry_after_secs(), 20);
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(gate.try_start(Instant::now()).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_source_costs_nothing() {
        let gate = SnapshotGate::new(MIN);
        gate.try_start(Instant::now()).unwrap().release_uncharged();
        assert!(gate.try_start(Instant::now()).is_ok());
    }

    #[test]
    fn retry_after_is_at_least_a_second() {
        let busy = Busy::TooSoon {
            retry_after: Duration::from_millis(10),
        };
        assert_eq!(busy.retry_after_secs(), 1);
        let busy = Busy::TooSoon {
            retry_after: Duration::from_millis(1500),
        };
        assert_eq!(busy.retry_after_secs(), 2);
    }
}
