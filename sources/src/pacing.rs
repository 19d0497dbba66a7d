//! Replay at a multiple of real time.

use std::time::{Duration as StdDuration, Instant};

use tickflow_core::Timestamp;

/// Holds a replay back so that event time advances at `speed` × wall-clock time.
/// `speed = None` replays as fast as possible.
#[derive(Debug)]
pub struct Pacer {
    speed: Option<f64>,
    origin: Option<(Timestamp, Instant)>,
}

impl Pacer {
    /// A pacer; `speed` must be positive when given.
    pub fn new(speed: Option<f64>) -> Self {
        Self {
            speed,
            origin: None,
        }
    }

    /// How long to wait before releasing a record of event time `t` (zero if due).
    pub fn delay_for(&mut self, t: Timestamp) -> StdDuration {
        let Some(speed) = self.speed else {
            return StdDuration::ZERO;
        };
        let (t0, w0) = *self.origin.get_or_insert((t, Instant::now()));
        let due = StdDuration::from_secs_f64(
            (t.nanos().saturating_sub(t0.nanos())).max(0) as f64 / 1e9 / speed,
        );
        due.saturating_sub(w0.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_event_time_against_the_wall_clock() {
        let mut p = Pacer::new(Some(10.0));
        assert_eq!(p.delay_for(Timestamp(0)), StdDuration::ZERO);
        let d = p.delay_for(Timestamp(10_000_000_000));
        assert!(
            d > StdDuration::from_millis(900) && d <= StdDuration::from_secs(1),
            "{d:?}"
        );
        let mut fast = Pacer::new(None);
        assert_eq!(fast.delay_for(Timestamp(1 << 60)), StdDuration::ZERO);
    }
}
