//! Volatility: true range, ATR (Wilder), standard deviation, Bollinger Bands, z-score.

use super::ma::Sma;
use super::window::{WindowMoments, WindowSum};
use super::{Ohlcv, is_zero_or_neg};

/// True range: `max(high, prev close) − min(low, prev close)`, from the second bar on.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct TrueRange {
    prev_close: Option<f64>,
}

impl TrueRange {
    /// A true range.
    pub fn new() -> Self {
        Self::default()
    }
    /// Next bar.
    pub fn update(&mut self, bar: &Ohlcv) -> Option<f64> {
        let pc = self.prev_close.replace(bar.close)?;
        Some(bar.high.max(pc) - bar.low.min(pc))
    }
}

/// Average true range with Wilder smoothing, seeded with the mean of the first `n` ranges.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Atr {
    n: usize,
    tr: TrueRange,
    count: usize,
    value: f64,
}

impl Atr {
    /// Over `n` bars.
    pub fn new(n: usize) -> Self {
        Self {
            n: n.max(1),
            tr: TrueRange::new(),
            count: 0,
            value: 0.0,
        }
    }
    /// Next bar.
    pub fn update(&mut self, bar: &Ohlcv) -> Option<f64> {
        let tr = self.tr.update(bar)?;
        let n = self.n as f64;
        self.count += 1;
        if self.count < self.n {
            self.value += tr;
            return None;
        }
        self.value = if self.count == self.n {
            (self.value + tr) / n
        } else {
            (self.value * (n - 1.0) + tr) / n
        };
        Some(self.value)
    }
}

/// Population standard deviation over `n` values, times `nbdev` (TA-Lib's STDDEV: variance
/// from running sums, zero when the variance is not above TA-Lib's zero threshold).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StdDev {
    sum: WindowMoments,
    nbdev: f64,
}

impl StdDev {
    /// Over `n` values.
    pub fn new(n: usize, nbdev: f64) -> Self {
        Self {
            sum: WindowMoments::new(n),
            nbdev,
        }
    }
    /// Next input.
    pub fn update(&mut self, x: f64) -> Option<f64> {
        let inv_n = 1.0 / self.sum.period() as f64;
        let (s, s2) = self.sum.push(x)?;
        let mean = s * inv_n;
        let var = s2 * inv_n - mean * mean;
        Some(if is_zero_or_neg(var) {
            0.0
        } else {
            var.sqrt() * self.nbdev
        })
    }
}

/// Bollinger Bands values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BBandsValue {
    /// Middle + `k_up` standard deviations.
    pub upper: f64,
    /// The SMA.
    pub middle: f64,
    /// Middle − `k_down` standard deviations.
    pub lower: f64,
}

/// Bollinger Bands over an SMA (TA-Lib's BBANDS with MA type SMA).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct BollingerBands {
    sma: Sma,
    squares: WindowSum,
    k_up: f64,
    k_down: f64,
}

impl BollingerBands {
    /// Over `n` values, bands `k_up` above and `k_down` below.
    pub fn new(n: usize, k_up: f64, k_down: f64) -> Self {
        Self {
            sma: Sma::new(n),
            squares: WindowSum::new(n),
            k_up,
            k_down,
        }
    }
    /// Next input.
    pub fn update(&mut self, x: f64) -> Option<BBandsValue> {
        let middle = self.sma.update(x);
        let n = self.squares.period() as f64;
        let s2 = self.squares.push(x * x)?;
        let middle = middle?;
        let var = s2 / n - middle * middle;
        let sd = if is_zero_or_neg(var) { 0.0 } else { var.sqrt() };
        Some(BBandsValue {
            upper: middle + sd * self.k_up,
            middle,
            lower: middle - sd * self.k_down,
        })
    }
}

/// Rolling z-score: `(x − mean) / standard deviation` over `n` values; undefined while the
/// standard deviation is zero.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ZScore {
    sum: WindowMoments,
}

impl ZScore {
    /// Over `n` values.
    pub fn new(n: usize) -> Self {
        Self {
            sum: WindowMoments::new(n),
        }
    }
    /// Next input.
    pub fn update(&mut self, x: f64) -> Option<f64> {
        let inv_n = 1.0 / self.sum.period() as f64;
        let (s, s2) = self.sum.push(x)?;
        let mean = s * inv_n;
        let var = s2 * inv_n - mean * mean;
        (!is_zero_or_neg(var)).then(|| (x - mean) / var.sqrt())
    }
}
