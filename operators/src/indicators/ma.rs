//! Moving averages: SMA, EMA (seeded with the SMA of its first `n` inputs, as TA-Lib does),
//! WMA, DEMA and TEMA (chained EMAs, each seeded the same way).

use super::window::{Ring, WindowSum};

/// Simple moving average.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Sma {
    sum: WindowSum,
    /// `1 / n`: a multiply instead of a divide (within one ulp of TA-Lib's divide).
    inv_n: f64,
}

impl Sma {
    /// Over `n` values.
    pub fn new(n: usize) -> Self {
        let sum = WindowSum::new(n);
        let inv_n = 1.0 / sum.period() as f64;
        Self { sum, inv_n }
    }
    /// Next input.
    #[inline]
    pub fn update(&mut self, x: f64) -> Option<f64> {
        self.sum.push(x).map(|s| s * self.inv_n)
    }
}

/// Exponential moving average, `k = 2 / (n + 1)`, seeded with the SMA of the first `n` inputs.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Ema {
    n: usize,
    k: f64,
    count: usize,
    seed_sum: f64,
    value: Option<f64>,
}

impl Ema {
    /// Over `n` values.
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        Self {
            n,
            k: 2.0 / (n as f64 + 1.0),
            count: 0,
            seed_sum: 0.0,
            value: None,
        }
    }
    /// Next input.
    pub fn update(&mut self, x: f64) -> Option<f64> {
        match self.value {
            Some(prev) => self.value = Some((x - prev) * self.k + prev),
            None => {
                self.count += 1;
                self.seed_sum += x;
                if self.count == self.n {
                    self.value = Some(self.seed_sum / self.n as f64);
                }
            }
        }
        self.value
    }
}

/// Weighted moving average: weights 1..n, newest heaviest.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Wma {
    ring: Ring,
    n: f64,
    /// Plain sum of the window.
    plain: f64,
    /// Weighted sum of the window.
    weighted: f64,
    /// `1 / (n (n + 1) / 2)`: a multiply instead of a divide (within one ulp of TA-Lib's divide).
    inv_divider: f64,
}

impl Wma {
    /// Over `n` values.
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        Self {
            ring: Ring::new(n),
            n: n as f64,
            plain: 0.0,
            weighted: 0.0,
            inv_divider: 1.0 / (n * (n + 1) / 2) as f64,
        }
    }
    /// Next input.
    #[inline]
    pub fn update(&mut self, x: f64) -> Option<f64> {
        if self.ring.is_full() {
            // Every weight drops by one (minus the plain sum), the newest enters at weight n.
            self.weighted += x * self.n - self.plain;
            let old = self.ring.push(x).unwrap_or(0.0);
            self.plain += x - old;
            return Some(self.weighted * self.inv_divider);
        }
        self.ring.push(x);
        self.weighted += x * self.ring.len() as f64;
        self.plain += x;
        self.ring
            .is_full()
            .then_some(self.weighted * self.inv_divider)
    }
}

/// Double EMA: `2·EMA − EMA(EMA)`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Dema {
    e1: Ema,
    e2: Ema,
}

impl Dema {
    /// Over `n` values.
    pub fn new(n: usize) -> Self {
        Self {
            e1: Ema::new(n),
            e2: Ema::new(n),
        }
    }
    /// Next input.
    pub fn update(&mut self, x: f64) -> Option<f64> {
        let a = self.e1.update(x)?;
        let b = self.e2.update(a)?;
        Some(2.0 * a - b)
    }
}

/// Triple EMA: `3·EMA − 3·EMA(EMA) + EMA(EMA(EMA))`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Tema {
    e1: Ema,
    e2: Ema,
    e3: Ema,
}

impl Tema {
    /// Over `n` values.
    pub fn new(n: usize) -> Self {
        Self {
            e1: Ema::new(n),
            e2: Ema::new(n),
            e3: Ema::new(n),
        }
    }
    /// Next input.
    pub fn update(&mut self, x: f64) -> Option<f64> {
        let a = self.e1.update(x)?;
        let b = self.e2.update(a)?;
        let c = self.e3.update(b)?;
        Some(3.0 * a - 3.0 * b + c)
    }
}
