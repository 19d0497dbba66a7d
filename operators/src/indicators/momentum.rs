//! Momentum: RSI (Wilder), ROC, MACD (TA-Lib's seeding).

use super::ma::Ema;
use super::window::Ring;

/// Relative strength index with Wilder smoothing; first value after `n` changes.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Rsi {
    n: usize,
    prev: Option<f64>,
    count: usize,
    gain: f64,
    loss: f64,
}

impl Rsi {
    /// Over `n` changes.
    pub fn new(n: usize) -> Self {
        Self {
            n: n.max(1),
            prev: None,
            count: 0,
            gain: 0.0,
            loss: 0.0,
        }
    }
    /// Next close.
    pub fn update(&mut self, x: f64) -> Option<f64> {
        let prev = self.prev.replace(x)?;
        let diff = x - prev;
        let (g, l) = if diff > 0.0 {
            (diff, 0.0)
        } else {
            (0.0, -diff)
        };
        let n = self.n as f64;
        self.count += 1;
        if self.count < self.n {
            self.gain += g;
            self.loss += l;
            return None;
        }
        if self.count == self.n {
            self.gain = (self.gain + g) / n;
            self.loss = (self.loss + l) / n;
        } else {
            self.gain = (self.gain * (n - 1.0) + g) / n;
            self.loss = (self.loss * (n - 1.0) + l) / n;
        }
        let total = self.gain + self.loss;
        Some(if super::is_zero(total) {
            0.0
        } else {
            100.0 * (self.gain / total)
        })
    }
}

/// Rate of change in percent over `n` values: `(x / x[n back] − 1) · 100`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Roc {
    ring: Ring,
}

impl Roc {
    /// Over `n` values.
    pub fn new(n: usize) -> Self {
        Self {
            ring: Ring::new(n.max(1) + 1),
        }
    }
    /// Next input.
    pub fn update(&mut self, x: f64) -> Option<f64> {
        self.ring.push(x);
        if !self.ring.is_full() {
            return None;
        }
        let back = self.ring.oldest()?;
        Some(if back != 0.0 {
            (x / back - 1.0) * 100.0
        } else {
            0.0
        })
    }
}

/// MACD line, signal and histogram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MacdValue {
    /// Fast EMA − slow EMA.
    pub macd: f64,
    /// EMA of the MACD line.
    pub signal: f64,
    /// MACD − signal.
    pub hist: f64,
}

/// MACD as TA-Lib computes it: the fast EMA starts `slow − fast` inputs late so that both
/// EMAs are first defined on the same input; the signal is an EMA of the MACD line; all three
/// values appear together once the signal is defined.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Macd {
    fast: Ema,
    slow: Ema,
    signal: Ema,
    delay: usize,
    seen: usize,
}

impl Macd {
    /// MACD(fast, slow, signal); periods are swapped if fast > slow, as TA-Lib does.
    pub fn new(fast: usize, slow: usize, signal: usize) -> Self {
        let (fast, slow) = if fast > slow {
            (slow, fast)
        } else {
            (fast, slow)
        };
        Self {
            fast: Ema::new(fast),
            slow: Ema::new(slow),
            signal: Ema::new(signal),
            delay: slow - fast,
            seen: 0,
        }
    }
    /// Next close.
    pub fn update(&mut self, x: f64) -> Option<MacdValue> {
        self.seen += 1;
        let slow = self.slow.update(x);
        let fast = if self.seen > self.delay {
            self.fast.update(x)
        } else {
            None
        };
        let macd = fast? - slow?;
        let signal = self.signal.update(macd)?;
        Some(MacdValue {
            macd,
            signal,
            hist: macd - signal,
        })
    }
}
