//! Trend strength: ADX with the directional indicators, as TA-Lib computes them.

use super::{Ohlcv, is_zero};

/// ADX and the directional indicators.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdxValue {
    /// +DI, defined from bar `n` on.
    pub plus_di: f64,
    /// −DI, defined from bar `n` on.
    pub minus_di: f64,
    /// ADX, defined from bar `2n − 1` on.
    pub adx: Option<f64>,
}

/// Average directional index (Wilder). Directional movement and true range are Wilder *sums*
/// (`s − s/n + x`), seeded with the plain sum of the first `n − 1` values; ADX is seeded with
/// the mean of the first `n` DX values, then Wilder-smoothed.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Adx {
    n: usize,
    prev: Option<Ohlcv>,
    count: usize,
    plus_dm: f64,
    minus_dm: f64,
    tr: f64,
    dx_sum: f64,
    dx_count: usize,
    adx: Option<f64>,
}

impl Adx {
    /// Over `n` bars.
    pub fn new(n: usize) -> Self {
        Self {
            n: n.max(2),
            prev: None,
            count: 0,
            plus_dm: 0.0,
            minus_dm: 0.0,
            tr: 0.0,
            dx_sum: 0.0,
            dx_count: 0,
            adx: None,
        }
    }

    /// Next bar: `None` until +DI and −DI are defined.
    pub fn update(&mut self, bar: &Ohlcv) -> Option<AdxValue> {
        let prev = self.prev.replace(*bar)?;
        let n = self.n as f64;
        let diff_p = bar.high - prev.high;
        let diff_m = prev.low - bar.low;
        let (pdm, mdm) = if diff_m > 0.0 && diff_p < diff_m {
            (0.0, diff_m)
        } else if diff_p > 0.0 && diff_p > diff_m {
            (diff_p, 0.0)
        } else {
            (0.0, 0.0)
        };
        let tr = bar.high.max(prev.close) - bar.low.min(prev.close);
        self.count += 1;
        if self.count < self.n {
            self.plus_dm += pdm;
            self.minus_dm += mdm;
            self.tr += tr;
            return None;
        }
        self.plus_dm = self.plus_dm - self.plus_dm / n + pdm;
        self.minus_dm = self.minus_dm - self.minus_dm / n + mdm;
        self.tr = self.tr - self.tr / n + tr;
        let (plus_di, minus_di) = if is_zero(self.tr) {
            (0.0, 0.0)
        } else {
            (
                100.0 * (self.plus_dm / self.tr),
                100.0 * (self.minus_dm / self.tr),
            )
        };
        let di_sum = plus_di + minus_di;
        let dx = (!is_zero(self.tr) && !is_zero(di_sum))
            .then(|| 100.0 * ((minus_di - plus_di).abs() / di_sum));
        match self.adx {
            None => {
                self.dx_count += 1;
                self.dx_sum += dx.unwrap_or(0.0);
                if self.dx_count == self.n {
                    self.adx = Some(self.dx_sum / n);
                }
            }
            Some(prev_adx) => {
                if let Some(dx) = dx {
                    self.adx = Some((prev_adx * (n - 1.0) + dx) / n);
                }
            }
        }
        Some(AdxValue {
            plus_di,
            minus_di,
            adx: self.adx,
        })
    }
}
