//! Bars: OHLCV, VWAP and trade count per instrument.
//!
//! [`TimeBars`] cover `[start, start + interval)` aligned to the epoch; a bar is emitted at its
//! end time once the watermark reaches that end — never earlier — and only if it holds a trade.
//! Over quotes (`TimeBars<Quote>`) they are mid-price bars ([`BarKind::Mid`]), for markets whose
//! data records no trades: each two-sided quote adds its mid price with a weight of one, so the
//! VWAP is the mean mid, the count is the number of quotes and the volume is zero.
//! [`VolumeBars`] close on the trade that brings their volume to the threshold (a trade is never
//! split between bars) and are emitted at that trade's time; at the end of the stream the open
//! bar is flushed with the volume it has.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tickflow_core::{
    Bar, BarKind, Duration, InstrumentId, Price, Quantity, Quote, Timestamp, Trade,
};

use crate::error::{Error, Result};
use crate::operator::{
    Emitter, Operator, Record, decode_parts, decode_state, encode_state, regroup,
};

/// A bar being built.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Acc {
    start: Timestamp,
    end: Timestamp,
    first_trade: Timestamp,
    last_trade: Timestamp,
    open: Price,
    high: Price,
    low: Price,
    close: Price,
    /// Summed weight: size in raw units (of a mid bar: one per quote).
    volume: i128,
    /// Summed price × weight (for trades raw × raw units, 1e-18).
    notional: i128,
    count: u64,
}

impl Acc {
    fn new(start: Timestamp, end: Timestamp, at: Timestamp, price: Price) -> Self {
        Self {
            start,
            end,
            first_trade: at,
            last_trade: at,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: 0,
            notional: 0,
            count: 0,
        }
    }

    fn add(&mut self, at: Timestamp, price: Price, weight: i128) {
        self.high = self.high.max(price);
        self.low = self.low.min(price);
        self.close = price;
        self.last_trade = at;
        self.volume += weight;
        self.notional += i128::from(price.raw()) * weight;
        self.count += 1;
    }

    fn finish(
        &self,
        instrument: InstrumentId,
        kind: BarKind,
        start: Timestamp,
        end: Timestamp,
    ) -> Bar {
        // VWAP = notional / volume, rounded half up, back in raw price units.
        let vwap = if self.volume > 0 {
            (2 * self.notional + self.volume) / (2 * self.volume)
        } else {
            0
        };
        let clamp = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
        Bar {
            instrument,
            kind,
            start,
            end,
            open: self.open,
            high: self.high,
            low: self.low,
            close: self.close,
            // A mid bar's weights count quotes, not traded size.
            volume: match kind {
                BarKind::Mid(_) => Quantity::ZERO,
                _ => Quantity::from_raw(clamp(self.volume)),
            },
            vwap: Price::from_raw(clamp(vwap)),
            trade_count: self.count,
        }
    }
}

/// Encodes the open bars (the whole state of both bar operators).
fn snapshot_open(open: &BTreeMap<InstrumentId, Acc>, operator: &'static str) -> Result<Vec<u8>> {
    let accs: Vec<(InstrumentId, Acc)> = open.iter().map(|(k, v)| (*k, *v)).collect();
    encode_state(operator, &accs)
}

/// Decodes what [`snapshot_open`] wrote.
fn restore_open(snapshot: &[u8], operator: &'static str) -> Result<BTreeMap<InstrumentId, Acc>> {
    let accs: Vec<(InstrumentId, Acc)> = decode_state(operator, snapshot)?;
    Ok(accs.into_iter().collect())
}

/// Takes back the open bars of `parts` (snapshots of another number of workers) that `mine`
/// keeps.
fn restore_open_parts(
    parts: &[Vec<u8>],
    mine: &dyn Fn(u64) -> bool,
    operator: &'static str,
) -> Result<BTreeMap<InstrumentId, Acc>> {
    let parts: Vec<Vec<(InstrumentId, Acc)>> = decode_parts(operator, parts)?;
    regroup(operator, parts, |i| u64::from(i.0), mine)
}

/// What time bars are built from: trades, or quotes through their mid prices.
pub trait BarInput: Record {
    /// The kind of the bars of `interval` built from these records.
    fn kind(interval: Duration) -> BarKind;
    /// Instrument, event time, price and weight the record adds to its bar: a trade's price
    /// and size; a quote's mid price (half a raw unit rounded up) weighing one. `None` for a
    /// quote without both sides, which has no mid.
    fn point(&self) -> Option<(InstrumentId, Timestamp, Price, i128)>;
}

impl BarInput for Trade {
    fn kind(interval: Duration) -> BarKind {
        BarKind::Time(interval)
    }
    fn point(&self) -> Option<(InstrumentId, Timestamp, Price, i128)> {
        Some((
            self.instrument,
            self.ts_event,
            self.price,
            i128::from(self.size.raw()),
        ))
    }
}

impl BarInput for Quote {
    fn kind(interval: Duration) -> BarKind {
        BarKind::Mid(interval)
    }
    fn point(&self) -> Option<(InstrumentId, Timestamp, Price, i128)> {
        let (bid, ask) = (self.bid?, self.ask?);
        // Both are at most i64::MAX, so their halved sum is too.
        let mid = (i128::from(bid.raw()) + i128::from(ask.raw()) + 1).div_euclid(2);
        let mid = i64::try_from(mid).unwrap_or(i64::MAX);
        Some((self.instrument, self.ts_event, Price::from_raw(mid), 1))
    }
}

/// Time bars of a fixed interval, from trades (`TimeBars<Trade>`, the default) or from quote
/// mid prices (`TimeBars<Quote>`).
pub struct TimeBars<R = Trade> {
    interval: Duration,
    open: BTreeMap<InstrumentId, Acc>,
    /// Open bars by end time, for O(log n) watermark handling.
    ends: BTreeSet<(Timestamp, InstrumentId)>,
    input: std::marker::PhantomData<fn(R)>,
}

impl<R: BarInput> TimeBars<R> {
    /// Bars of `interval`.
    pub fn new(interval: Duration) -> Result<Self> {
        if interval.nanos() <= 0 {
            return Err(Error::Config {
                operator: "bars",
                reason: format!("interval must be positive, got {interval}"),
            });
        }
        Ok(Self {
            interval,
            open: BTreeMap::new(),
            ends: BTreeSet::new(),
            input: std::marker::PhantomData,
        })
    }

    fn close(&mut self, instrument: InstrumentId, out: &mut Emitter<Bar>) {
        if let Some(acc) = self.open.remove(&instrument) {
            self.ends.remove(&(acc.end, instrument));
            out.push_at(
                acc.end,
                acc.finish(instrument, R::kind(self.interval), acc.start, acc.end),
            );
        }
    }
}

impl<R: BarInput> Operator for TimeBars<R> {
    type In = R;
    type Out = Bar;

    fn name(&self) -> &'static str {
        "bars"
    }

    fn on_batch(&mut self, _time: Timestamp, input: &mut Vec<R>, out: &mut Emitter<Bar>) {
        for (instrument, at, price, weight) in input.drain(..).filter_map(|r| r.point()) {
            let start = at.floor(self.interval);
            match self.open.get(&instrument) {
                Some(acc) if acc.start == start => {}
                Some(acc) if acc.start > start => continue, // behind its bar: normalize lets no such record through
                _ => {
                    self.close(instrument, out);
                    let end = start.saturating_add(self.interval);
                    self.open
                        .insert(instrument, Acc::new(start, end, at, price));
                    self.ends.insert((end, instrument));
                }
            }
            if let Some(acc) = self.open.get_mut(&instrument) {
                acc.add(at, price, weight);
            }
        }
    }

    fn on_watermark(&mut self, watermark: Timestamp, out: &mut Emitter<Bar>) {
        while let Some(&(end, instrument)) = self.ends.first() {
            if end > watermark {
                break;
            }
            self.close(instrument, out);
        }
    }

    fn next_emit(&self) -> Option<Timestamp> {
        self.ends.first().map(|(end, _)| *end)
    }

    fn snapshot(&self) -> Result<Vec<u8>> {
        snapshot_open(&self.open, "bars")
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<()> {
        self.open = restore_open(snapshot, "bars")?;
        self.ends = self.open.iter().map(|(i, a)| (a.end, *i)).collect();
        Ok(())
    }

    fn restore_parts(&mut self, parts: &[Vec<u8>], mine: &dyn Fn(u64) -> bool) -> Result<()> {
        self.open = restore_open_parts(parts, mine, "bars")?;
        self.ends = self.open.iter().map(|(i, a)| (a.end, *i)).collect();
        Ok(())
    }
}

/// Volume bars of a fixed volume threshold.
pub struct VolumeBars {
    threshold: Quantity,
    open: BTreeMap<InstrumentId, Acc>,
    watermark: Timestamp,
}

impl VolumeBars {
    /// Bars of `threshold` volume.
    pub fn new(threshold: Quantity) -> Result<Self> {
        if !threshold.is_positive() {
            return Err(Error::Config {
                operator: "volume_bars",
                reason: format!("volume must be positive, got {threshold}"),
            });
        }
        Ok(Self {
            threshold,
            open: BTreeMap::new(),
            watermark: Timestamp::MIN,
        })
    }
}

impl Operator for VolumeBars {
    type In = Trade;
    type Out = Bar;

    fn name(&self) -> &'static str {
        "volume_bars"
    }

    fn on_batch(&mut self, _time: Timestamp, input: &mut Vec<Trade>, out: &mut Emitter<Bar>) {
        let kind = BarKind::Volume(self.threshold);
        for t in input.drain(..) {
            let acc = self
                .open
                .entry(t.instrument)
                .or_insert_with(|| Acc::new(t.ts_event, t.ts_event, t.ts_event, t.price));
            acc.add(t.ts_event, t.price, i128::from(t.size.raw()));
            if acc.volume >= i128::from(self.threshold.raw()) {
                let bar = acc.finish(t.instrument, kind, acc.first_trade, acc.last_trade);
                self.open.remove(&t.instrument);
                out.push(bar);
            }
        }
    }

    fn on_watermark(&mut self, watermark: Timestamp, out: &mut Emitter<Bar>) {
        self.watermark = watermark;
        if watermark == Timestamp::MAX {
            // End of stream: open bars go out after everything else, in key order.
            let kind = BarKind::Volume(self.threshold);
            for (instrument, acc) in std::mem::take(&mut self.open) {
                out.push_at(
                    Timestamp::MAX,
                    acc.finish(instrument, kind, acc.first_trade, acc.last_trade),
                );
            }
        }
    }

    fn next_emit(&self) -> Option<Timestamp> {
        // Open bars may be flushed when the stream ends; holding the output at the watermark
        // (never behind the input) keeps that possible without holding anything else back.
        (!self.open.is_empty() && self.watermark < Timestamp::MAX).then_some(self.watermark)
    }

    fn snapshot(&self) -> Result<Vec<u8>> {
        snapshot_open(&self.open, "volume_bars")
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<()> {
        self.open = restore_open(snapshot, "volume_bars")?;
        Ok(())
    }

    fn restore_parts(&mut self, parts: &[Vec<u8>], mine: &dyn Fn(u64) -> bool) -> Result<()> {
        self.open = restore_open_parts(parts, mine, "volume_bars")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tickflow_core::{SeqNo, Side};

    fn trade(inst: u32, t: i64, price: i64, size: i64) -> Trade {
        Trade {
            instrument: InstrumentId(inst),
            ts_event: Timestamp(t),
            ts_recv: Timestamp(t),
            price: Price::from_raw(price),
            size: Quantity::from_raw(size),
            aggressor: Side::None,
            trade_id: None,
            suspicious: false,
            seq: SeqNo(t as u64),
        }
    }

    /// Feeds trades as the adapter would: one step per distinct time, each followed by the
    /// watermark just past it; with `finish`, the end-of-stream watermark too.
    fn drive<O: Operator<In = Trade, Out = Bar>>(
        op: &mut O,
        trades: &[Trade],
        finish: bool,
    ) -> Vec<(Timestamp, Bar)> {
        let mut out = Emitter::default();
        for step in trades.chunk_by(|a, b| a.ts_event == b.ts_event) {
            let t = step[0].ts_event;
            out.set_time(t);
            op.on_batch(t, &mut step.to_vec(), &mut out);
            let wm = Timestamp(t.nanos() + 1);
            out.set_time(wm);
            op.on_watermark(wm, &mut out);
        }
        if finish {
            out.set_time(Timestamp::MAX);
            op.on_watermark(Timestamp::MAX, &mut out);
        }
        out.drain().collect()
    }

    #[test]
    fn time_bar_is_emitted_at_its_end_once_the_watermark_reaches_it() {
        let mut bars = TimeBars::new(Duration::from_nanos(10)).unwrap();
        let mut out = Emitter::default();
        bars.on_batch(
            Timestamp(3),
            &mut vec![trade(0, 3, 100, 2), trade(0, 3, 110, 1)],
            &mut out,
        );
        bars.on_watermark(Timestamp(9), &mut out);
        assert!(
            out.items().is_empty(),
            "bar [0,10) must wait for the watermark to reach 10"
        );
        assert_eq!(bars.next_emit(), Some(Timestamp(10)));
        bars.on_watermark(Timestamp(10), &mut out);
        let (at, bar) = out.items()[0];
        assert_eq!(at, Timestamp(10));
        assert_eq!(
            (
                bar.open.raw(),
                bar.high.raw(),
                bar.low.raw(),
                bar.close.raw()
            ),
            (100, 110, 100, 110)
        );
        assert_eq!(bar.volume.raw(), 3);
        assert_eq!(bar.trade_count, 2);
        assert_eq!(bar.vwap.raw(), 103); // (200 + 110) / 3 = 103.33
        assert_eq!((bar.start, bar.end), (Timestamp(0), Timestamp(10)));
        assert_eq!(bars.next_emit(), None);
    }

    fn quote(inst: u32, t: i64, bid: Option<i64>, ask: Option<i64>) -> Quote {
        Quote {
            instrument: InstrumentId(inst),
            ts_event: Timestamp(t),
            ts_recv: Timestamp(t),
            bid: bid.map(Price::from_raw),
            bid_size: Quantity::from_raw(5),
            ask: ask.map(Price::from_raw),
            ask_size: Quantity::from_raw(5),
            update_id: None,
            suspicious: false,
            seq: SeqNo(t as u64),
        }
    }

    #[test]
    fn time_bars_over_quotes_are_mid_price_bars_with_no_volume() {
        let mut bars = TimeBars::<Quote>::new(Duration::from_nanos(10)).unwrap();
        let mut out = Emitter::default();
        bars.on_batch(
            Timestamp(2),
            &mut vec![
                quote(0, 2, Some(100), Some(104)), // mid 102
                quote(0, 3, Some(100), None),      // one side: no mid, not counted
                quote(0, 4, Some(107), Some(110)), // mid 108.5, rounded up to 109
                quote(0, 6, Some(95), Some(98)),   // mid 96.5 -> 97
                quote(1, 7, None, None),
            ],
            &mut out,
        );
        assert_eq!(
            bars.next_emit(),
            Some(Timestamp(10)),
            "instrument 1 has no mid: no bar opens for it"
        );
        bars.on_batch(
            Timestamp(12),
            &mut vec![quote(0, 12, Some(99), Some(101))],
            &mut out,
        );
        bars.on_watermark(Timestamp(20), &mut out);
        let got: Vec<Bar> = out.drain().map(|(_, b)| b).collect();
        assert_eq!(got.len(), 2);
        let bar = got[0];
        assert_eq!(bar.kind, BarKind::Mid(Duration::from_nanos(10)));
        assert_eq!(bar.kind.to_string(), "mid:10ns");
        assert_eq!(
            [bar.open, bar.high, bar.low, bar.close].map(|p| p.raw()),
            [102, 109, 97, 97]
        );
        assert_eq!(bar.volume, Quantity::ZERO, "quotes record no traded volume");
        assert_eq!(bar.trade_count, 3, "three quotes had a mid");
        assert_eq!(
            bar.vwap.raw(),
            103,
            "the mean mid, (102 + 109 + 97) / 3 = 102.67"
        );
        assert_eq!((bar.start, bar.end), (Timestamp(0), Timestamp(10)));
        assert_eq!(
            (got[1].open.raw(), got[1].trade_count, got[1].start),
            (100, 1, Timestamp(10))
        );
    }

    #[test]
    fn mid_bars_resume_from_a_snapshot_as_if_never_stopped() {
        let quotes: Vec<Quote> = (0..60i64)
            .map(|k| {
                quote(
                    (k % 3) as u32,
                    k,
                    Some(1_000 + k * 7 % 13),
                    Some(1_010 + k % 5),
                )
            })
            .collect();
        let run = |cut: usize| {
            let mut out = Emitter::default();
            let mut bars = TimeBars::<Quote>::new(Duration::from_nanos(8)).unwrap();
            for (n, q) in quotes.iter().enumerate() {
                if n == cut {
                    let mut resumed = TimeBars::<Quote>::new(Duration::from_nanos(8)).unwrap();
                    resumed.restore(&bars.snapshot().unwrap()).unwrap();
                    bars = resumed;
                }
                out.set_time(q.ts_event);
                bars.on_batch(q.ts_event, &mut vec![*q], &mut out);
                bars.on_watermark(q.ts_event, &mut out);
            }
            bars.on_watermark(Timestamp::MAX, &mut out);
            out.drain().collect::<Vec<_>>()
        };
        let whole = run(usize::MAX);
        assert_eq!(
            whole.len(),
            3 * 8,
            "60 quotes of 3 instruments in 8 windows"
        );
        assert_eq!(run(29), whole);
    }

    proptest! {
        #[test]
        fn time_bars_equal_a_from_scratch_recomputation(
            raw in proptest::collection::vec((0u32..3, 0i64..5, 1i64..1_000_000, 1i64..1_000), 1..200),
            interval in 1i64..50,
            cut in 0usize..200,
        ) {
            let mut t = 0;
            let trades: Vec<Trade> = raw.iter().map(|&(inst, dt, p, s)| { t += dt; trade(inst, t, p * 1_000, s * 1_000_000) }).collect();
            // Incremental, with a snapshot/restore at a step boundary in the middle.
            let mut cut = cut.min(trades.len());
            while cut > 0 && cut < trades.len() && trades[cut].ts_event == trades[cut - 1].ts_event {
                cut += 1;
            }
            let mut prefix = TimeBars::new(Duration::from_nanos(interval)).unwrap();
            let mut got = drive(&mut prefix, &trades[..cut], false);
            let mut resumed = TimeBars::new(Duration::from_nanos(interval)).unwrap();
            resumed.restore(&prefix.snapshot().unwrap()).unwrap();
            got.extend(drive(&mut resumed, &trades[cut..], true));

            // From scratch: group by (instrument, window).
            let mut groups: BTreeMap<(i64, u32), Vec<&Trade>> = BTreeMap::new();
            for tr in &trades {
                let start = tr.ts_event.nanos().div_euclid(interval) * interval;
                groups.entry((start + interval, tr.instrument.0)).or_default().push(tr);
            }
            let mut expected: Vec<Bar> = groups.iter().map(|(&(end, inst), ts)| {
                let vol: i128 = ts.iter().map(|t| i128::from(t.size.raw())).sum();
                let pv: i128 = ts.iter().map(|t| i128::from(t.price.raw()) * i128::from(t.size.raw())).sum();
                Bar { instrument: InstrumentId(inst), kind: BarKind::Time(Duration::from_nanos(interval)), start: Timestamp(end - interval), end: Timestamp(end),
                    open: ts[0].price, high: ts.iter().map(|t| t.price).max().unwrap(), low: ts.iter().map(|t| t.price).min().unwrap(),
                    close: ts.last().unwrap().price, volume: Quantity::from_raw(vol as i64), vwap: Price::from_raw(((2 * pv + vol) / (2 * vol)) as i64), trade_count: ts.len() as u64 }
            }).collect();
            let mut got_bars: Vec<Bar> = got.iter().map(|(at, b)| { assert_eq!(*at, b.end); *b }).collect();
            got_bars.sort_by_key(|b| (b.end, b.instrument));
            expected.sort_by_key(|b| (b.end, b.instrument));
            prop_assert_eq!(got_bars, expected);
        }
    }

    #[test]
    fn volume_bars_close_on_the_threshold_and_flush_at_the_end() {
        let mut bars = VolumeBars::new(Quantity::from_raw(10)).unwrap();
        let trades = [
            trade(0, 1, 100, 4),
            trade(0, 2, 101, 4),
            trade(0, 3, 102, 5),
            trade(0, 4, 103, 3),
            trade(1, 4, 50, 10),
        ];
        let out = drive(&mut bars, &trades, true);
        assert_eq!(out.len(), 3);
        let (at, first) = out[0];
        assert_eq!(at, Timestamp(3));
        assert_eq!(
            (
                first.volume.raw(),
                first.trade_count,
                first.start,
                first.end
            ),
            (13, 3, Timestamp(1), Timestamp(3))
        );
        assert_eq!(out[1].1.instrument, InstrumentId(1));
        let (at, last) = out[2];
        assert_eq!(
            (at, last.volume.raw(), last.open.raw(), last.end),
            (Timestamp::MAX, 3, 103, Timestamp(4))
        );
    }

    #[test]
    fn open_bars_spread_over_another_number_of_workers_close_as_on_one() {
        // Seven instruments trading at their own paces, a checkpoint inside open bars.
        let steps: Vec<(Timestamp, Vec<Trade>)> = (0..400i64)
            .map(|k| {
                let t = 1_000 + k * 7;
                let trades = (0..7u32)
                    .filter(|i| k % i64::from(i + 1) == 0)
                    .map(|i| trade(i, t, 100 + (k * i64::from(i + 3)) % 17, 1 + k % 5))
                    .collect();
                (Timestamp(t), trades)
            })
            .collect();
        let at = Timestamp(1_000 + 200 * 7 + 3);
        let time = crate::operator::rescale_check::rescaled_runs_as_one(
            || TimeBars::new(Duration::from_nanos(50)).unwrap(),
            &steps,
            at,
        );
        let volume = crate::operator::rescale_check::rescaled_runs_as_one(
            || VolumeBars::new(Quantity::from_raw(9)).unwrap(),
            &steps,
            at,
        );
        assert!(
            time > 100 && volume > 100,
            "{time} time bars, {volume} volume bars"
        );
    }
}
