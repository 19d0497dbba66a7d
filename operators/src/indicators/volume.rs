//! Volume: OBV, MFI, session VWAP.

use super::Ohlcv;
use super::window::Ring;

/// On-balance volume, starting from the first bar's volume (as TA-Lib does).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Obv {
    state: Option<(f64, f64)>,
}

impl Obv {
    /// An OBV.
    pub fn new() -> Self {
        Self::default()
    }
    /// Next bar.
    pub fn update(&mut self, bar: &Ohlcv) -> Option<f64> {
        let obv = match self.state {
            None => bar.volume,
            Some((prev_close, obv)) if bar.close > prev_close => obv + bar.volume,
            Some((prev_close, obv)) if bar.close < prev_close => obv - bar.volume,
            Some((_, obv)) => obv,
        };
        self.state = Some((bar.close, obv));
        Some(obv)
    }
}

/// Money flow index over `n` bars (TA-Lib: 0 while the total money flow is below 1).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Mfi {
    flows: Ring,
    prev_tp: Option<f64>,
    pos: f64,
    neg: f64,
}

impl Mfi {
    /// Over `n` bars.
    pub fn new(n: usize) -> Self {
        Self {
            flows: Ring::new(n),
            prev_tp: None,
            pos: 0.0,
            neg: 0.0,
        }
    }
    /// Next bar.
    pub fn update(&mut self, bar: &Ohlcv) -> Option<f64> {
        let tp = (bar.high + bar.low + bar.close) / 3.0;
        let prev = self.prev_tp.replace(tp)?;
        let diff = tp - prev;
        let flow = tp * bar.volume;
        // A signed flow: positive money flow, negative money flow, or none. Typical prices
        // are averages of decimal prices, so an unchanged price can differ by rounding noise
        // (1e-14); a change below 1e-12 of the price is no change (TA-Lib agrees).
        let unchanged = diff.abs() < 1e-12 * tp.abs();
        let signed = if unchanged {
            0.0
        } else if diff < 0.0 {
            -flow
        } else {
            flow
        };
        if let Some(old) = self.flows.push(signed) {
            if old < 0.0 {
                self.neg += old;
            } else {
                self.pos -= old;
            }
        }
        if signed < 0.0 {
            self.neg -= signed;
        } else {
            self.pos += signed;
        }
        if !self.flows.is_full() {
            return None;
        }
        let total = self.pos + self.neg;
        Some(if total < 1.0 {
            0.0
        } else {
            100.0 * (self.pos / total)
        })
    }
}

/// Volume-weighted average price since the start of the session, from each bar's VWAP and
/// volume. A session starts when a bar ends on a new day, days beginning at `session_start`
/// (an offset from midnight UTC; for example −4 h or −5 h for New York).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SessionVwap {
    offset_ns: i64,
    day: Option<i64>,
    pv: f64,
    volume: f64,
}

impl SessionVwap {
    /// Sessions that begin `offset_ns` after midnight UTC.
    pub fn new(offset_ns: i64) -> Self {
        Self {
            offset_ns,
            day: None,
            pv: 0.0,
            volume: 0.0,
        }
    }
    /// Next bar; `None` until the session has traded.
    pub fn update(&mut self, bar: &Ohlcv) -> Option<f64> {
        const DAY: i64 = 86_400_000_000_000;
        // The bar belongs to the session in which its last instant falls.
        let day = (bar.time - 1 - self.offset_ns).div_euclid(DAY);
        if self.day != Some(day) {
            self.day = Some(day);
            self.pv = 0.0;
            self.volume = 0.0;
        }
        self.pv += bar.vwap * bar.volume;
        self.volume += bar.volume;
        (self.volume > 0.0).then(|| self.pv / self.volume)
    }
}
