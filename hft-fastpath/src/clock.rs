//! The monotonic clock of the loop: the CPU's time-stamp counter on x86-64 (invariant TSC: a
//! constant rate across cores and power states on every current x86-64 server), calibrated once
//! against `Instant` at start-up; `Instant` elsewhere. Reading it is a few nanoseconds and never
//! a system call.

use std::time::Instant;

/// Converts clock ticks to nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Nanoseconds per tick, ×2^32.
    ns_per_tick_q32: u64,
    /// Ticks per nanosecond, ×2^32.
    ticks_per_ns_q32: u64,
    #[cfg(not(target_arch = "x86_64"))]
    origin: Instant,
}

impl Clock {
    /// Calibrates the clock over about `ms` milliseconds.
    pub fn calibrate(ms: u64) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let (t0, c0) = tight_pair();
            while t0.elapsed().as_millis() < u128::from(ms.max(1)) {
                std::hint::spin_loop();
            }
            let (t1, c1) = tight_pair();
            let ns = t1.duration_since(t0).as_nanos() as f64;
            let ticks = (c1.wrapping_sub(c0)).max(1) as f64;
            Self {
                ns_per_tick_q32: (ns / ticks * 4_294_967_296.0) as u64,
                ticks_per_ns_q32: (ticks / ns * 4_294_967_296.0) as u64,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = ms;
            Self {
                ns_per_tick_q32: 1 << 32,
                ticks_per_ns_q32: 1 << 32,
                origin: Instant::now(),
            }
        }
    }

    /// Now, in ticks.
    #[inline(always)]
    pub fn now(&self) -> u64 {
        #[cfg(target_arch = "x86_64")]
        {
            raw_ticks()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self.origin.elapsed().as_nanos() as u64
        }
    }

    /// A tick interval in nanoseconds.
    #[inline(always)]
    pub fn to_ns(&self, ticks: u64) -> u64 {
        ((u128::from(ticks) * u128::from(self.ns_per_tick_q32)) >> 32) as u64
    }

    /// Nanoseconds as ticks.
    #[inline(always)]
    pub fn from_ns(&self, ns: u64) -> u64 {
        ((u128::from(ns) * u128::from(self.ticks_per_ns_q32)) >> 32) as u64
    }
}

/// An `Instant` and a TSC reading taken together: the reading between two `Instant`s that are
/// close (a preemption between them would skew the calibration), retried a few times.
#[cfg(target_arch = "x86_64")]
fn tight_pair() -> (Instant, u64) {
    let mut best: Option<(std::time::Duration, Instant, u64)> = None;
    for _ in 0..64 {
        let a = Instant::now();
        let c = raw_ticks();
        let b = Instant::now();
        let gap = b.duration_since(a);
        if best.is_none_or(|(g, _, _)| gap < g) {
            best = Some((gap, a + gap / 2, c));
        }
        if gap.as_nanos() < 200 {
            break;
        }
    }
    let (_, at, c) = best.expect("at least one try");
    (at, c)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn raw_ticks() -> u64 {
    // SAFETY: RDTSC is available on every x86-64 CPU and has no memory effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_follow_wall_time() {
        let c = Clock::calibrate(20);
        let t0 = Instant::now();
        let a = c.now();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let b = c.now();
        let wall = t0.elapsed().as_nanos() as f64;
        let measured = c.to_ns(b - a) as f64;
        // Loose bounds: this machine is shared, and this is a sanity check, not a benchmark.
        assert!(
            (measured / wall - 1.0).abs() < 0.25,
            "clock says {measured} ns, wall {wall} ns"
        );
        let round = c.to_ns(c.from_ns(1_000_000));
        assert!((round as i64 - 1_000_000).abs() < 1_000, "{round}");
    }
}
