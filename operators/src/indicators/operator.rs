//! The indicators operator: bars in, one [`IndicatorRow`] per instrument and bar out, at the
//! bar's end time, with every indicator of the standard set ([`IndicatorSet`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use tickflow_core::{Bar, IndicatorRow, InstrumentId, Timestamp};

use super::{IndicatorPeriods, IndicatorSet, Ohlcv};
use crate::error::{Error, Result};
use crate::operator::{Emitter, Operator, decode_parts, decode_state, encode_state, regroup};

/// Computes the standard indicator set per instrument.
pub struct Indicators {
    periods: IndicatorPeriods,
    names: Arc<[String]>,
    sets: BTreeMap<InstrumentId, IndicatorSet>,
}

impl Indicators {
    /// An indicators operator with the given periods.
    pub fn new(periods: IndicatorPeriods) -> Result<Self> {
        let (f, s, sig) = periods.macd;
        let (k, sk, d) = periods.stoch;
        if [periods.ma, periods.wilder, periods.roc, f, s, sig, k, sk, d].contains(&0) {
            return Err(Error::Config {
                operator: "indicators",
                reason: "every period must be at least 1".into(),
            });
        }
        if periods.wilder < 2 {
            return Err(Error::Config {
                operator: "indicators",
                reason: "the Wilder period (RSI, ATR, ADX) must be at least 2".into(),
            });
        }
        if !(periods.bb_k.is_finite() && periods.bb_k > 0.0) {
            return Err(Error::Config {
                operator: "indicators",
                reason: format!("bollinger width must be positive, got {}", periods.bb_k),
            });
        }
        let names: Arc<[String]> = periods.columns().into();
        Ok(Self {
            periods,
            names,
            sets: BTreeMap::new(),
        })
    }

    /// Column names of the rows.
    pub fn names(&self) -> &Arc<[String]> {
        &self.names
    }
}

impl Operator for Indicators {
    type In = Bar;
    type Out = IndicatorRow;

    fn name(&self) -> &'static str {
        "indicators"
    }

    fn on_batch(
        &mut self,
        _time: Timestamp,
        input: &mut Vec<Bar>,
        out: &mut Emitter<IndicatorRow>,
    ) {
        for bar in input.drain(..) {
            let periods = &self.periods;
            let set = self
                .sets
                .entry(bar.instrument)
                .or_insert_with(|| IndicatorSet::new(periods));
            let mut values = Vec::with_capacity(self.names.len());
            set.update(&Ohlcv::from(&bar), &mut values);
            out.push(IndicatorRow {
                instrument: bar.instrument,
                end: bar.end,
                names: self.names.clone(),
                values,
            });
        }
    }

    fn on_watermark(&mut self, _watermark: Timestamp, _out: &mut Emitter<IndicatorRow>) {}

    fn next_emit(&self) -> Option<Timestamp> {
        None
    }

    fn snapshot(&self) -> Result<Vec<u8>> {
        encode_state("indicators", &self.sets)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<()> {
        self.sets = decode_state("indicators", snapshot)?;
        Ok(())
    }

    fn restore_parts(&mut self, parts: &[Vec<u8>], mine: &dyn Fn(u64) -> bool) -> Result<()> {
        let parts: Vec<BTreeMap<InstrumentId, IndicatorSet>> = decode_parts("indicators", parts)?;
        self.sets = regroup("indicators", parts, |i| u64::from(i.0), mine)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickflow_core::{BarKind, Duration, Price, Quantity};

    fn bar(inst: u32, minute: i64, close: i64) -> Bar {
        let p = Price::from_raw(close * 1_000_000_000);
        Bar {
            instrument: InstrumentId(inst),
            kind: BarKind::Time(Duration::from_secs(60)),
            start: Timestamp((minute - 1) * 60_000_000_000),
            end: Timestamp(minute * 60_000_000_000),
            open: p,
            high: p,
            low: p,
            close: p,
            volume: Quantity::from_int(100).unwrap(),
            vwap: p,
            trade_count: 1,
        }
    }

    #[test]
    fn instruments_are_independent_and_a_snapshot_resumes_exactly() {
        let bars: Vec<Bar> = (1..60)
            .flat_map(|m| [bar(0, m, 100 + m % 7), bar(1, m, 50 + m % 3)])
            .collect();
        let run = |op: &mut Indicators, bars: &[Bar]| {
            let mut out = Emitter::default();
            op.on_batch(Timestamp(0), &mut bars.to_vec(), &mut out);
            out.take_values()
        };
        let mut whole = Indicators::new(IndicatorPeriods::default()).unwrap();
        let expected = run(&mut whole, &bars);
        let mut first = Indicators::new(IndicatorPeriods::default()).unwrap();
        let mut got = run(&mut first, &bars[..50]);
        let mut second = Indicators::new(IndicatorPeriods::default()).unwrap();
        second.restore(&first.snapshot().unwrap()).unwrap();
        got.extend(run(&mut second, &bars[50..]));
        assert_eq!(got.len(), expected.len());
        if let Some(i) = (0..got.len()).find(|&i| got[i] != expected[i]) {
            panic!(
                "row {i} differs after restore: {:?} vs {:?}",
                got[i].values, expected[i].values
            );
        }
        let last0 = expected
            .iter()
            .rev()
            .find(|r| r.instrument == InstrumentId(0))
            .unwrap();
        let closes: Vec<f64> = (40..60).map(|m| (100 + m % 7) as f64).collect();
        assert_eq!(last0.get("sma_20"), Some(closes.iter().sum::<f64>() / 20.0));
        assert!(
            Indicators::new(IndicatorPeriods {
                ma: 0,
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn indicator_history_spread_over_another_number_of_workers_goes_on_as_on_one() {
        let steps: Vec<(Timestamp, Vec<Bar>)> = (1..120)
            .map(|m| {
                let bars = (0..5u32)
                    .map(|i| bar(i, m, 100 + (m * i64::from(i + 2)) % 11))
                    .collect();
                (Timestamp(m * 60_000_000_000), bars)
            })
            .collect();
        let n = crate::operator::rescale_check::rescaled_runs_as_one(
            || Indicators::new(IndicatorPeriods::default()).unwrap(),
            &steps,
            Timestamp(61 * 60_000_000_000 + 1),
        );
        assert!(n >= 5 * 58, "{n} rows");
    }
}
