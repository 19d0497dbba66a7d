//! Oscillators: Stochastic (%K, %D), Williams %R, CCI.
//!
//! CCI needs the mean absolute deviation around the window's current mean, which changes with
//! every bar; no exact O(1) update exists, so CCI costs O(period) per bar over a ring of the
//! window (as TA-Lib does). Every other indicator here is O(1).

use super::Ohlcv;
use super::ma::Sma;
use super::window::{Extremes, Ring, WindowSum};

/// Stochastic values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StochValue {
    /// Slow %K: SMA of fast %K.
    pub k: f64,
    /// %D: SMA of slow %K.
    pub d: f64,
}

/// Stochastic oscillator (TA-Lib's STOCH with SMA smoothing); both lines appear together.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Stoch {
    extremes: Extremes,
    slow_k: Sma,
    slow_d: Sma,
}

impl Stoch {
    /// Fast %K over `k` bars, slow %K smoothed over `slow_k`, %D over `d`.
    pub fn new(k: usize, slow_k: usize, d: usize) -> Self {
        Self {
            extremes: Extremes::new(k),
            slow_k: Sma::new(slow_k),
            slow_d: Sma::new(d),
        }
    }
    /// Next bar.
    pub fn update(&mut self, bar: &Ohlcv) -> Option<StochValue> {
        let (hh, ll) = self.extremes.push(bar.high, bar.low)?;
        let diff = (hh - ll) / 100.0;
        let fast = if diff != 0.0 {
            (bar.close - ll) / diff
        } else {
            0.0
        };
        let k = self.slow_k.update(fast)?;
        let d = self.slow_d.update(k)?;
        Some(StochValue { k, d })
    }
}

/// Williams %R over `n` bars, in [−100, 0].
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct WillR {
    extremes: Extremes,
}

impl WillR {
    /// Over `n` bars.
    pub fn new(n: usize) -> Self {
        Self {
            extremes: Extremes::new(n),
        }
    }
    /// Next bar.
    pub fn update(&mut self, bar: &Ohlcv) -> Option<f64> {
        let (hh, ll) = self.extremes.push(bar.high, bar.low)?;
        let diff = (hh - ll) / -100.0;
        Some(if diff != 0.0 {
            (hh - bar.close) / diff
        } else {
            0.0
        })
    }
}

/// Commodity channel index over `n` bars of typical price `(h + l + c) / 3`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Cci {
    ring: Ring,
    sum: WindowSum,
}

impl Cci {
    /// Over `n` bars.
    pub fn new(n: usize) -> Self {
        Self {
            ring: Ring::new(n),
            sum: WindowSum::new(n),
        }
    }
    /// Next bar.
    pub fn update(&mut self, bar: &Ohlcv) -> Option<f64> {
        let tp = (bar.high + bar.low + bar.close) / 3.0;
        self.ring.push(tp);
        let n = self.ring.capacity() as f64;
        // The mean from a running sum; only the mean deviation needs the pass over the window.
        let mean = self.sum.push(tp)? / n;
        let (a, b) = self.ring.as_slices();
        let dev = |s: &[f64]| s.iter().map(|v| (v - mean).abs()).sum::<f64>();
        let mad = dev(a) + dev(b);
        let dev = tp - mean;
        Some(if dev != 0.0 && mad != 0.0 {
            dev / (0.015 * (mad / n))
        } else {
            0.0
        })
    }
}
