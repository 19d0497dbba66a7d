//! Technical indicators, incremental: each `update` costs O(1) (CCI: O(period), see `oscillators`)
//! and never re-scans history. In: one bar (or one value) at a time, per instrument. Out:
//! `Some(value)` once the indicator is defined, `None` before — never 0 or NaN as a stand-in.
//!
//! Definitions follow TA-Lib exactly (its seeding of EMA, MACD and Wilder smoothing, its
//! thresholds for "zero"), so values agree with TA-Lib to floating-point rounding; the tests
//! compare against fixtures TA-Lib produced. Indicators TA-Lib lacks (session VWAP, z-score)
//! are checked against from-scratch recomputations.
//!
//! Layout:
//! - `window`: fixed-size ring, running sums in TA-Lib's order, monotonic min/max.
//! - `ma`: SMA, EMA, WMA, DEMA, TEMA.
//! - `momentum`: RSI, ROC, MACD.
//! - `volatility`: true range, ATR, standard deviation, Bollinger Bands, z-score.
//! - `oscillators`: Stochastic, Williams %R, CCI.
//! - `trend`: ADX with +DI and −DI.
//! - `volume`: OBV, MFI, session VWAP.

pub mod ma;
pub mod momentum;
pub mod operator;
pub mod oscillators;
pub mod set;
pub mod trend;
pub mod volatility;
pub mod volume;
pub mod window;

pub use ma::{Dema, Ema, Sma, Tema, Wma};
pub use momentum::{Macd, MacdValue, Roc, Rsi};
pub use operator::Indicators;
pub use oscillators::{Cci, Stoch, StochValue, WillR};
pub use set::{IndicatorPeriods, IndicatorSet};
pub use trend::{Adx, AdxValue};
pub use volatility::{Atr, BBandsValue, BollingerBands, StdDev, TrueRange, ZScore};
pub use volume::{Mfi, Obv, SessionVwap};

/// One bar as the analytics side sees it (`f64`, converted once from fixed point).
#[derive(Clone, Copy, Debug, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Ohlcv {
    /// Bar end, ns since the epoch (sessions of the VWAP).
    pub time: i64,
    /// Open.
    pub open: f64,
    /// High.
    pub high: f64,
    /// Low.
    pub low: f64,
    /// Close.
    pub close: f64,
    /// Volume.
    pub volume: f64,
    /// Volume-weighted price of the bar's trades.
    pub vwap: f64,
}

impl From<&tickflow_core::Bar> for Ohlcv {
    fn from(b: &tickflow_core::Bar) -> Self {
        Self {
            time: b.end.nanos(),
            open: b.open.to_f64(),
            high: b.high.to_f64(),
            low: b.low.to_f64(),
            close: b.close.to_f64(),
            volume: b.volume.to_f64(),
            vwap: b.vwap.to_f64(),
        }
    }
}

/// TA-Lib's test for zero (`TA_IS_ZERO`).
pub(crate) fn is_zero(v: f64) -> bool {
    -1e-14 < v && v < 1e-14
}

/// TA-Lib's test for zero or negative (`TA_IS_ZERO_OR_NEG`).
pub(crate) fn is_zero_or_neg(v: f64) -> bool {
    v < 1e-14
}
