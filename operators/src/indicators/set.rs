//! The standard indicator set of a bar stream: every indicator, with configurable periods,
//! producing one row of named values per bar (`sma_20`, `rsi_14`, `macd`, ...).

use super::*;

/// Periods of the standard set.
#[derive(Clone, Debug, PartialEq)]
pub struct IndicatorPeriods {
    /// SMA, EMA, WMA, DEMA, TEMA, Bollinger, standard deviation, z-score, CCI.
    pub ma: usize,
    /// RSI, ATR, ADX, Williams %R, MFI.
    pub wilder: usize,
    /// ROC.
    pub roc: usize,
    /// MACD fast, slow, signal.
    pub macd: (usize, usize, usize),
    /// Stochastic %K, slow %K, %D.
    pub stoch: (usize, usize, usize),
    /// Bollinger band width in standard deviations.
    pub bb_k: f64,
    /// Session start of the VWAP, as an offset from midnight UTC in ns.
    pub session_offset_ns: i64,
}

impl IndicatorPeriods {
    /// Column names of the set's rows (`sma_20`, `rsi_14`, ..., `close`), in the order of
    /// [`IndicatorSet::update`]'s values.
    pub fn columns(&self) -> Vec<String> {
        let (m, w) = (self.ma, self.wilder);
        let p = self;
        [
            format!("sma_{m}"),
            format!("ema_{m}"),
            format!("wma_{m}"),
            format!("dema_{m}"),
            format!("tema_{m}"),
            format!("rsi_{w}"),
            "macd".into(),
            "macd_signal".into(),
            "macd_hist".into(),
            format!("bb_upper_{m}"),
            format!("bb_middle_{m}"),
            format!("bb_lower_{m}"),
            format!("atr_{w}"),
            "trange".into(),
            "stoch_k".into(),
            "stoch_d".into(),
            format!("willr_{w}"),
            format!("cci_{m}"),
            format!("adx_{w}"),
            format!("plus_di_{w}"),
            format!("minus_di_{w}"),
            "obv".into(),
            format!("mfi_{w}"),
            format!("roc_{}", p.roc),
            "vwap".into(),
            format!("stddev_{m}"),
            format!("zscore_{m}"),
            "close".into(),
        ]
        .into_iter()
        .collect()
    }
}

impl Default for IndicatorPeriods {
    fn default() -> Self {
        Self {
            ma: 20,
            wilder: 14,
            roc: 10,
            macd: (12, 26, 9),
            stoch: (14, 3, 3),
            bb_k: 2.0,
            session_offset_ns: 0,
        }
    }
}

/// Every indicator of one instrument.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct IndicatorSet {
    sma: Sma,
    ema: Ema,
    wma: Wma,
    dema: Dema,
    tema: Tema,
    rsi: Rsi,
    macd: Macd,
    bb: BollingerBands,
    atr: Atr,
    trange: TrueRange,
    stoch: Stoch,
    willr: WillR,
    cci: Cci,
    adx: Adx,
    obv: Obv,
    mfi: Mfi,
    roc: Roc,
    vwap: SessionVwap,
    stddev: StdDev,
    zscore: ZScore,
}

impl IndicatorSet {
    /// A set with the given periods.
    pub fn new(p: &IndicatorPeriods) -> Self {
        let (m, w) = (p.ma, p.wilder);
        Self {
            sma: Sma::new(m),
            ema: Ema::new(m),
            wma: Wma::new(m),
            dema: Dema::new(m),
            tema: Tema::new(m),
            rsi: Rsi::new(w),
            macd: Macd::new(p.macd.0, p.macd.1, p.macd.2),
            bb: BollingerBands::new(m, p.bb_k, p.bb_k),
            atr: Atr::new(w),
            trange: TrueRange::new(),
            stoch: Stoch::new(p.stoch.0, p.stoch.1, p.stoch.2),
            willr: WillR::new(w),
            cci: Cci::new(m),
            adx: Adx::new(w),
            obv: Obv::new(),
            mfi: Mfi::new(w),
            roc: Roc::new(p.roc),
            vwap: SessionVwap::new(p.session_offset_ns),
            stddev: StdDev::new(m, 1.0),
            zscore: ZScore::new(m),
        }
    }

    /// Feeds one bar; writes one value (or `None`) per column of
    /// [`IndicatorPeriods::columns`] into `out`, in that order.
    pub fn update(&mut self, bar: &Ohlcv, out: &mut Vec<Option<f64>>) {
        let c = bar.close;
        let macd = self.macd.update(c);
        let bb = self.bb.update(c);
        let stoch = self.stoch.update(bar);
        let adx = self.adx.update(bar);
        out.clear();
        out.extend([
            self.sma.update(c),
            self.ema.update(c),
            self.wma.update(c),
            self.dema.update(c),
            self.tema.update(c),
            self.rsi.update(c),
            macd.map(|m| m.macd),
            macd.map(|m| m.signal),
            macd.map(|m| m.hist),
            bb.map(|b| b.upper),
            bb.map(|b| b.middle),
            bb.map(|b| b.lower),
            self.atr.update(bar),
            self.trange.update(bar),
            stoch.map(|s| s.k),
            stoch.map(|s| s.d),
            self.willr.update(bar),
            self.cci.update(bar),
            adx.and_then(|a| a.adx),
            adx.map(|a| a.plus_di),
            adx.map(|a| a.minus_di),
            self.obv.update(bar),
            self.mfi.update(bar),
            self.roc.update(c),
            self.vwap.update(bar),
            self.stddev.update(c),
            self.zscore.update(c),
            Some(c),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bars(raw: &[(u8, i32, u16)]) -> Vec<Ohlcv> {
        // Prices on a 0.01 grid around 100, volumes 1..=65535, bars 5 hours apart so that
        // sessions (days) change every few bars.
        let mut price = 100.0;
        raw.iter()
            .enumerate()
            .map(|(i, &(kind, step, vol))| {
                if kind % 4 != 0 {
                    price = (price + f64::from(step % 50) / 100.0).max(1.0);
                }
                Ohlcv {
                    time: (i as i64 + 1) * 5 * 3_600_000_000_000,
                    open: price,
                    high: price + 0.5,
                    low: price - 0.5,
                    close: price,
                    volume: f64::from(vol) + 1.0,
                    vwap: price + f64::from(kind % 3) / 100.0,
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn zscore_equals_a_from_scratch_recomputation(raw in proptest::collection::vec((any::<u8>(), any::<i32>(), any::<u16>()), 1..120), n in 2usize..25) {
            let bars = bars(&raw);
            let mut z = ZScore::new(n);
            for (i, bar) in bars.iter().enumerate() {
                let got = z.update(bar.close);
                if i + 1 < n {
                    prop_assert!(got.is_none());
                    continue;
                }
                let w: Vec<f64> = bars[i + 1 - n..=i].iter().map(|b| b.close).collect();
                let mean = w.iter().sum::<f64>() / n as f64;
                let sd = (w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
                if sd < 1e-6 {
                    prop_assert!(got.is_none() || got.unwrap().abs() < 1e-3, "flat window: {got:?}");
                } else {
                    let want = (bar.close - mean) / sd;
                    let got = got.expect("defined when the window varies");
                    prop_assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "row {i}: {got} vs {want}");
                }
            }
        }

        #[test]
        fn session_vwap_equals_a_from_scratch_recomputation(raw in proptest::collection::vec((any::<u8>(), any::<i32>(), any::<u16>()), 1..120)) {
            let bars = bars(&raw);
            let mut v = SessionVwap::new(0);
            for (i, bar) in bars.iter().enumerate() {
                let day = (bar.time - 1).div_euclid(86_400_000_000_000);
                let session: Vec<&Ohlcv> = bars[..=i].iter().filter(|b| (b.time - 1).div_euclid(86_400_000_000_000) == day).collect();
                let want = session.iter().map(|b| b.vwap * b.volume).sum::<f64>() / session.iter().map(|b| b.volume).sum::<f64>();
                let got = v.update(bar).expect("volume is positive");
                prop_assert!((got - want).abs() <= 1e-9 * want.abs(), "row {i}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn nothing_is_emitted_before_an_indicator_is_defined() {
        let mut set = IndicatorSet::new(&IndicatorPeriods::default());
        let mut row = Vec::new();
        set.update(
            &Ohlcv {
                time: 1,
                open: 1.0,
                high: 1.0,
                low: 1.0,
                close: 1.0,
                volume: 1.0,
                vwap: 1.0,
            },
            &mut row,
        );
        let columns = IndicatorPeriods::default().columns();
        let defined: Vec<&str> = columns
            .iter()
            .zip(&row)
            .filter(|(_, v)| v.is_some())
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(
            defined,
            vec!["obv", "vwap", "close"],
            "only OBV, the session VWAP and the close exist after one bar"
        );
        assert!(row.iter().flatten().all(|v| v.is_finite()));
    }
}
