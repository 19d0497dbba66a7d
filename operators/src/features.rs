//! Features: one vector per instrument and bar, for models to consume.
//!
//! In: the bars an indicator stream was computed on, that indicator stream, and quotes. Out:
//! [`IndicatorRow`]s named
//!
//! - `ret_<h>` for each horizon `h`: the log return of the close over the last `h` bars;
//! - the chosen indicator columns, as they are (by default the scale-free ones: RSI, ADX,
//!   %K, Williams %R, CCI, MFI, ROC, z-score);
//! - `spread_bps`: the relative spread of the last quote at the bar's end, in basis points;
//! - `ofi`: order-flow imbalance over the bar (Cont, Kukanov & Stoikov: the net change of
//!   displayed size at the best bid and ask, summed over quote updates) divided by the mean
//!   displayed depth, so it is comparable across instruments;
//! - `book_imbalance`: the mean over the bar's two-sided quotes of
//!   `(bid size − ask size) / (bid size + ask size)`, in [−1, 1];
//! - `mid`: the midpoint of the last two-sided quote at the bar's end (a price, not a feature
//!   for models: training takes its forward returns as targets, free of bid-ask bounce);
//! - `volume`: the bar's volume.
//!
//! A value is `None` until it is defined (a return needs `h + 1` closes; spread and imbalance
//! need quotes). Within an instant, quotes come first, then the bar, then its indicator row, so
//! a row sees every quote up to and including its bar's end. A quote older than
//! `max_quote_age` at the bar's end defines no `spread_bps` or `mid` (a record that stops
//! overnight, or an instrument whose quotes stop, would otherwise give a spread and a midpoint
//! of hours or days before), and the first quote after such a gap starts the order flow
//! afresh instead of being set against the old one.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tickflow_core::{Bar, Duration, IndicatorRow, Quote, Timestamp};

use crate::error::{Error, Result};
use crate::exchange::fresh;
use crate::operator::{
    Emitter, Operator, Record, decode_parts, decode_state, encode_state, regroup,
};

/// What goes into the vector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureConfig {
    /// Return horizons, in bars.
    pub horizons: Vec<usize>,
    /// Indicator columns to carry; `None` for the scale-free default set.
    pub indicators: Option<Vec<String>>,
    /// The oldest the last quote may be at a bar's end to give its spread and midpoint; `None`:
    /// no limit.
    #[serde(default)]
    pub max_quote_age: Option<Duration>,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self {
            horizons: vec![1, 5, 15],
            indicators: None,
            max_quote_age: Some(crate::exchange::DEFAULT_MAX_QUOTE_AGE),
        }
    }
}

/// Prefixes of the default indicator features (scale-free, comparable across instruments).
const DEFAULT_PREFIXES: [&str; 8] = [
    "rsi_", "adx_", "stoch_k", "willr_", "cci_", "mfi_", "roc_", "zscore_",
];

impl FeatureConfig {
    /// The indicator columns carried, given the input's columns; errors name a missing column.
    pub fn chosen(&self, input: &[String]) -> Result<Vec<String>> {
        match &self.indicators {
            None => Ok(input
                .iter()
                .filter(|c| DEFAULT_PREFIXES.iter().any(|p| c.starts_with(p)))
                .cloned()
                .collect()),
            Some(list) => {
                for name in list {
                    if !input.contains(name) {
                        return Err(Error::Config {
                            operator: "features",
                            reason: format!(
                                "indicator `{name}` is not a column of the input (columns: {})",
                                input.join(", ")
                            ),
                        });
                    }
                }
                Ok(list.clone())
            }
        }
    }

    /// Every output column, in order, each once; errors name a missing column or one that
    /// would come twice.
    pub fn columns(&self, input: &[String]) -> Result<Vec<String>> {
        let chosen = self.chosen(input)?;
        let mut out: Vec<String> = self.horizons.iter().map(|h| format!("ret_{h}")).collect();
        out.extend(chosen.iter().cloned());
        out.extend(["spread_bps", "ofi", "book_imbalance", "mid", "volume"].map(String::from));
        // Two columns of one name: rows that a JSON or Parquet sink, a query or a model could
        // read only one of.
        for (i, name) in out.iter().enumerate() {
            if out[..i].contains(name) {
                let twice = |list: &[String]| list.iter().filter(|&c| c == name).count() > 1;
                let why = if twice(&out[..self.horizons.len()]) {
                    "`horizons` lists its horizon twice"
                } else if twice(&chosen) {
                    "`indicators` lists it twice"
                } else {
                    "an input column of that name is chosen beside the features' own"
                };
                return Err(Error::Config {
                    operator: "features",
                    reason: format!("the features stream would have two columns `{name}`: {why}"),
                });
            }
        }
        Ok(out)
    }
}

/// What the features operator reads.
#[derive(Clone, PartialEq, Serialize, Deserialize, Debug)]
pub enum FeatureInput {
    /// A quote update.
    Quote(Quote),
    /// A bar of the indicator stream's input.
    Bar(Bar),
    /// The indicator row of that bar.
    Row(IndicatorRow),
}

impl Record for FeatureInput {
    fn route(&self) -> u64 {
        match self {
            FeatureInput::Quote(q) => q.route(),
            FeatureInput::Bar(b) => b.route(),
            FeatureInput::Row(r) => r.route(),
        }
    }
    fn order_key(&self) -> (i64, u32, u64) {
        match self {
            // Quotes of the bar's last instant before the bar and its row.
            FeatureInput::Quote(q) => (
                q.ts_event.nanos(),
                q.instrument.0,
                q.seq.0.min(u64::MAX - 2),
            ),
            FeatureInput::Bar(b) => (b.end.nanos(), b.instrument.0, u64::MAX - 1),
            FeatureInput::Row(r) => (r.end.nanos(), r.instrument.0, u64::MAX),
        }
    }
}

#[derive(Clone, Default, Serialize, Deserialize, Debug)]
struct Instrument {
    closes: VecDeque<f64>,
    volume: Option<f64>,
    /// bid, bid size, ask, ask size of the last two-sided quote.
    quote: Option<(f64, f64, f64, f64)>,
    /// Event time of that quote.
    #[serde(default)]
    quote_at: Option<Timestamp>,
    ofi: f64,
    depth: f64,
    updates: u32,
    /// Sum and count of the book imbalance of the bar's two-sided quotes.
    #[serde(default)]
    imbalance: (f64, u32),
}

/// The features operator.
pub struct Features {
    config: FeatureConfig,
    names: Arc<[String]>,
    chosen: Vec<String>,
    /// Positions of the chosen columns in the input rows, found on the first row.
    index: Option<Vec<usize>>,
    state: FxHashMap<u32, Instrument>,
}

impl Features {
    /// Features over an indicator stream with these columns.
    pub fn new(config: FeatureConfig, input_columns: &[String]) -> Result<Self> {
        if let Some(age) = config.max_quote_age
            && age.nanos() <= 0
        {
            return Err(Error::Config {
                operator: "features",
                reason: format!("max_quote_age must be positive, got {age}"),
            });
        }
        if config.horizons.is_empty() || config.horizons.iter().any(|&h| h == 0 || h > 10_000) {
            return Err(Error::Config {
                operator: "features",
                reason: format!(
                    "horizons must be between 1 and 10000 bars, got {:?}",
                    config.horizons
                ),
            });
        }
        let chosen = config.chosen(input_columns)?;
        let names: Arc<[String]> = config.columns(input_columns)?.into();
        Ok(Self {
            config,
            names,
            chosen,
            index: None,
            state: FxHashMap::default(),
        })
    }

    fn on_quote(&mut self, q: &Quote) {
        let (Some(bid), Some(ask)) = (q.bid, q.ask) else {
            return;
        };
        let now = (
            bid.to_f64(),
            q.bid_size.to_f64(),
            ask.to_f64(),
            q.ask_size.to_f64(),
        );
        let st = self.state.entry(q.instrument.0).or_default();
        let depth = now.1 + now.3;
        if depth > 0.0 {
            st.imbalance.0 += (now.1 - now.3) / depth;
            st.imbalance.1 += 1;
        }
        let recent = fresh(self.config.max_quote_age, st.quote_at, q.ts_event);
        if let Some((b0, qb0, a0, qa0)) = st.quote.filter(|_| recent) {
            let (b, qb, a, qa) = now;
            let mut e = 0.0;
            if b >= b0 {
                e += qb;
            }
            if b <= b0 {
                e -= qb0;
            }
            if a <= a0 {
                e -= qa;
            }
            if a >= a0 {
                e += qa0;
            }
            st.ofi += e;
            st.depth += (qb + qa) / 2.0;
            st.updates += 1;
        }
        st.quote = Some(now);
        st.quote_at = Some(q.ts_event);
    }

    fn on_row(&mut self, row: IndicatorRow, out: &mut Emitter<IndicatorRow>) {
        let index = self.index.get_or_insert_with(|| {
            self.chosen
                .iter()
                .map(|c| row.names.iter().position(|n| n == c).unwrap_or(usize::MAX))
                .collect()
        });
        let st = self.state.entry(row.instrument.0).or_default();
        let mut values = Vec::with_capacity(self.names.len());
        let n = st.closes.len();
        for &h in &self.config.horizons {
            values.push((n > h).then(|| (st.closes[n - 1] / st.closes[n - 1 - h]).ln()));
        }
        values.extend(index.iter().map(|&i| row.values.get(i).copied().flatten()));
        let quote = st
            .quote
            .filter(|_| fresh(self.config.max_quote_age, st.quote_at, row.end));
        values.push(quote.and_then(|(b, _, a, _)| {
            let mid = (a + b) / 2.0;
            (mid > 0.0).then(|| (a - b) / mid * 10_000.0)
        }));
        let depth = st.depth / f64::from(st.updates.max(1));
        values.push((st.updates > 0 && depth > 0.0).then(|| st.ofi / depth));
        let (sum, count) = std::mem::take(&mut st.imbalance);
        values.push((count > 0).then(|| sum / f64::from(count)));
        values.push(quote.map(|(b, _, a, _)| (a + b) / 2.0));
        values.push(st.volume.take());
        st.ofi = 0.0;
        st.depth = 0.0;
        st.updates = 0;
        out.push(IndicatorRow {
            instrument: row.instrument,
            end: row.end,
            names: self.names.clone(),
            values: values
                .into_iter()
                .map(|v| v.filter(|x| x.is_finite()))
                .collect(),
        });
    }
}

impl Operator for Features {
    type In = FeatureInput;
    type Out = IndicatorRow;
    fn name(&self) -> &'static str {
        "features"
    }
    fn on_batch(
        &mut self,
        _t: Timestamp,
        input: &mut Vec<FeatureInput>,
        out: &mut Emitter<IndicatorRow>,
    ) {
        let keep = self.config.horizons.iter().max().copied().unwrap_or(1) + 1;
        for item in input.drain(..) {
            match item {
                FeatureInput::Quote(q) => self.on_quote(&q),
                FeatureInput::Bar(b) => {
                    let st = self.state.entry(b.instrument.0).or_default();
                    let close = b.close.to_f64();
                    if close > 0.0 {
                        st.closes.push_back(close);
                        if st.closes.len() > keep {
                            st.closes.pop_front();
                        }
                    }
                    st.volume = Some(b.volume.to_f64());
                }
                FeatureInput::Row(r) => self.on_row(r, out),
            }
        }
    }
    fn on_watermark(&mut self, _w: Timestamp, _out: &mut Emitter<IndicatorRow>) {}
    fn next_emit(&self) -> Option<Timestamp> {
        None
    }
    fn snapshot(&self) -> Result<Vec<u8>> {
        let sorted: std::collections::BTreeMap<_, _> = self.state.iter().collect();
        encode_state("features", &sorted)
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<()> {
        self.state = decode_state("features", snapshot)?;
        Ok(())
    }
    fn restore_parts(&mut self, parts: &[Vec<u8>], mine: &dyn Fn(u64) -> bool) -> Result<()> {
        let parts: Vec<FxHashMap<u32, Instrument>> = decode_parts("features", parts)?;
        self.state = regroup("features", parts, |i| u64::from(*i), mine)?
            .into_iter()
            .collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickflow_core::{BarKind, Duration, InstrumentId, Price, Quantity, SeqNo};

    fn bar(end: i64, close: &str, volume: &str) -> FeatureInput {
        let c = Price::parse(close).unwrap();
        FeatureInput::Bar(Bar {
            instrument: InstrumentId(0),
            kind: BarKind::Time(Duration::from_secs(60)),
            start: Timestamp(end - 60),
            end: Timestamp(end),
            open: c,
            high: c,
            low: c,
            close: c,
            volume: Quantity::parse(volume).unwrap(),
            vwap: c,
            trade_count: 1,
        })
    }
    fn row(end: i64, names: &Arc<[String]>, rsi: f64) -> FeatureInput {
        FeatureInput::Row(IndicatorRow {
            instrument: InstrumentId(0),
            end: Timestamp(end),
            names: names.clone(),
            values: vec![Some(100.0), Some(rsi)],
        })
    }
    fn quote(ts: i64, bid: &str, bs: &str, ask: &str, asz: &str) -> FeatureInput {
        let p = |s: &str| Some(Price::parse(s).unwrap());
        let q = |s: &str| Quantity::parse(s).unwrap();
        FeatureInput::Quote(Quote {
            instrument: InstrumentId(0),
            ts_event: Timestamp(ts),
            ts_recv: Timestamp(ts),
            bid: p(bid),
            bid_size: q(bs),
            ask: p(ask),
            ask_size: q(asz),
            update_id: None,
            suspicious: false,
            seq: SeqNo(ts as u64),
        })
    }

    /// One step of `items`, in the order the runtime gives them.
    fn feed(f: &mut Features, mut items: Vec<FeatureInput>, out: &mut Emitter<IndicatorRow>) {
        items.sort_by_key(Record::order_key);
        f.on_batch(Timestamp(0), &mut items, out);
    }

    #[test]
    fn returns_indicators_spread_imbalance_and_volume() {
        let cols: Vec<String> = vec!["sma_20".into(), "rsi_14".into()];
        let names: Arc<[String]> = cols.clone().into();
        let mut f = Features::new(
            FeatureConfig {
                horizons: vec![1, 2],
                indicators: None,
                ..FeatureConfig::default()
            },
            &cols,
        )
        .unwrap();
        assert_eq!(
            &*f.names,
            [
                "ret_1",
                "ret_2",
                "rsi_14",
                "spread_bps",
                "ofi",
                "book_imbalance",
                "mid",
                "volume"
            ]
        );
        let mut out = Emitter::default();
        let mut feed = |f: &mut Features, items| feed(f, items, &mut out);
        feed(&mut f, vec![bar(60, "100", "10"), row(60, &names, 50.0)]);
        feed(
            &mut f,
            vec![
                quote(70, "109.9", "10", "110.1", "10"),
                // Bid size up by 5 at the same bid: +5; ask unchanged.
                quote(80, "109.9", "15", "110.1", "10"),
                // Bid up a tick with 4 shown: +4; ask down a tick with 6: −6.
                quote(90, "110", "4", "110", "6"),
                row(120, &names, 60.0),
                bar(120, "110", "20"),
            ],
        );
        feed(&mut f, vec![bar(180, "121", "30"), row(180, &names, 70.0)]);
        let rows = out.take_values();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].values[0], None, "no return before two closes");
        let r1 = &rows[1].values;
        assert!((r1[0].unwrap() - (110.0f64 / 100.0).ln()).abs() < 1e-12);
        assert_eq!(r1[1], None);
        assert_eq!(r1[2], Some(60.0));
        assert_eq!(r1[3], Some(0.0), "locked market: zero spread");
        // OFI = 5 + 4 − 6 = 3 over mean depth ((15+10)/2 + (4+6)/2)/2 = 8.75.
        assert!((r1[4].unwrap() - 3.0 / 8.75).abs() < 1e-12, "{r1:?}");
        // Book imbalance of the three quotes: 0, (15−10)/25, (4−6)/10.
        assert!((r1[5].unwrap() - (0.2 - 0.2) / 3.0).abs() < 1e-12, "{r1:?}");
        assert_eq!(r1[6], Some(110.0));
        assert_eq!(r1[7], Some(20.0));
        let r2 = &rows[2].values;
        assert!((r2[1].unwrap() - (121.0f64 / 100.0).ln()).abs() < 1e-12);
        assert_eq!(r2[4], None, "no quote updates in the bar");
        assert_eq!(r2[5], None, "no quotes in the bar");
    }

    #[test]
    fn a_quote_older_than_max_quote_age_gives_no_spread_midpoint_or_order_flow() {
        let cols: Vec<String> = vec!["sma_20".into(), "rsi_14".into()];
        let names: Arc<[String]> = cols.clone().into();
        let mut f = Features::new(
            FeatureConfig {
                horizons: vec![1],
                max_quote_age: Some(Duration(100)),
                ..FeatureConfig::default()
            },
            &cols,
        )
        .unwrap();
        let mut out = Emitter::default();
        let mut feed = |f: &mut Features, items| feed(f, items, &mut out);
        feed(
            &mut f,
            vec![
                quote(50, "99", "10", "101", "10"),
                bar(60, "100", "1"),
                row(60, &names, 50.0),
            ],
        );
        // 100 after the quote it still stands; 101 after, it does not.
        feed(&mut f, vec![bar(150, "100", "1"), row(150, &names, 50.0)]);
        feed(&mut f, vec![bar(151, "100", "1"), row(151, &names, 50.0)]);
        // After the gap, a quote of much larger sizes is no order flow against the old one.
        feed(
            &mut f,
            vec![
                quote(400, "99", "500", "101", "10"),
                bar(420, "100", "1"),
                row(420, &names, 50.0),
            ],
        );
        let rows = out.take_values();
        let spread_ofi_mid = |k: usize| {
            let v = &rows[k].values;
            (v[2], v[3], v[5])
        };
        assert_eq!(spread_ofi_mid(0), (Some(200.0), None, Some(100.0)));
        assert_eq!(spread_ofi_mid(1), (Some(200.0), None, Some(100.0)));
        assert_eq!(spread_ofi_mid(2), (None, None, None));
        assert_eq!(spread_ofi_mid(3), (Some(200.0), None, Some(100.0)));
    }

    #[test]
    fn unknown_indicator_columns_are_named() {
        let cols: Vec<String> = vec!["rsi_14".into()];
        let err = Features::new(
            FeatureConfig {
                horizons: vec![1],
                indicators: Some(vec!["rsi_7".into()]),
                ..FeatureConfig::default()
            },
            &cols,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("rsi_7"), "{err}");
        assert!(
            Features::new(
                FeatureConfig {
                    horizons: vec![0],
                    indicators: None,
                    ..FeatureConfig::default()
                },
                &cols
            )
            .is_err()
        );
        // Every output column once: a horizon or an indicator listed twice, or an input
        // column named as one of the features' own, is refused.
        let twice = |horizons: Vec<usize>, indicators: &[&str], input: &[&str]| {
            let input: Vec<String> = input.iter().map(|c| (*c).to_owned()).collect();
            Features::new(
                FeatureConfig {
                    horizons,
                    indicators: Some(indicators.iter().map(|c| (*c).to_owned()).collect()),
                    ..FeatureConfig::default()
                },
                &input,
            )
            .err()
            .map(|e| e.to_string())
        };
        let e = twice(vec![1, 5, 1], &["rsi_14"], &["rsi_14"]).unwrap();
        assert!(
            e.contains("two columns `ret_1`: `horizons` lists its horizon twice"),
            "{e}"
        );
        let e = twice(vec![1], &["rsi_14", "rsi_14"], &["rsi_14"]).unwrap();
        assert!(
            e.contains("two columns `rsi_14`: `indicators` lists it twice"),
            "{e}"
        );
        let e = twice(vec![1], &["spread_bps"], &["spread_bps"]).unwrap();
        assert!(
            e.contains("two columns `spread_bps`: an input column of that name"),
            "{e}"
        );
        assert_eq!(twice(vec![1, 5], &["rsi_14"], &["rsi_14"]), None);
    }

    #[test]
    fn feature_state_spread_over_another_number_of_workers_goes_on_as_on_one() {
        let cols: Vec<String> = vec!["sma_20".into(), "rsi_14".into()];
        let names: Arc<[String]> = cols.clone().into();
        let mut rand = crate::adapter::test_checkpoints::xorshift(0x5851_f42d_4c95_7f2d);
        let steps: Vec<(Timestamp, Vec<FeatureInput>)> = (1..200i64)
            .map(|k| {
                let end = k * 60;
                let inputs = (0..5u32)
                    .flat_map(|inst| {
                        let close = format!("{}", 100 + rand(7));
                        let bid = format!("{}", 99 + rand(2));
                        let mut v = vec![
                            quote(end, &bid, "3", "101", &format!("{}", 1 + rand(4))),
                            bar(end, &close, "10"),
                            row(end, &names, rand(100) as f64),
                        ];
                        for x in &mut v {
                            match x {
                                FeatureInput::Quote(q) => q.instrument = InstrumentId(inst),
                                FeatureInput::Bar(b) => b.instrument = InstrumentId(inst),
                                FeatureInput::Row(r) => r.instrument = InstrumentId(inst),
                            }
                        }
                        v
                    })
                    .collect();
                (Timestamp(end), inputs)
            })
            .collect();
        let config = FeatureConfig {
            horizons: vec![1, 2, 5],
            indicators: None,
            ..FeatureConfig::default()
        };
        let n = crate::operator::rescale_check::rescaled_runs_as_one(
            || Features::new(config.clone(), &cols).unwrap(),
            &steps,
            Timestamp(100 * 60 + 1),
        );
        assert!(n > 400, "{n} vectors");
    }
}
