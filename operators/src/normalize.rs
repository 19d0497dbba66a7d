//! Normalize: the gate every market record passes.
//!
//! In: raw [`MarketEvent`]s from the sources. Out: [`Normalized`] — the accepted record, or a
//! [`Reject`] that says why. Refused: records later than the allowed lateness (their event
//! time is behind the step they arrived in), records flagged suspicious by the source,
//! non-positive prices, zero or negative sizes, crossed quotes, and second copies of a record
//! (same venue trade or update id within the de-duplication window). Records within the
//! lateness bound arrive in event-time order: the adapter hands each step over sorted.

use std::collections::VecDeque;

use rustc_hash::FxHashSet;

use serde::{Deserialize, Serialize};
use tickflow_core::{
    BookAction, Duration, MarketEvent, Origin, Price, Quantity, Reject, RejectReason, Timestamp,
};

use crate::error::{Error, Result};
use crate::operator::{
    Emitter, Operator, Record, decode_parts, decode_state, encode_state, regroup,
};

/// Parameters of [`Normalize`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NormalizeConfig {
    /// Event-time granularity of the dataflow (a record is late when its rounded time is
    /// behind the step it arrived in).
    pub granularity: Duration,
    /// How long venue ids are remembered for de-duplication.
    pub dedupe_window: Duration,
    /// Each part (file, Kafka partition or synthetic instrument), indexed by `SeqNo::source`,
    /// for reject messages.
    pub origins: Vec<Origin>,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        Self {
            granularity: Duration::from_millis(1),
            dedupe_window: Duration::from_secs(60),
            origins: Vec::new(),
        }
    }
}

/// Outcome of normalization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Normalized {
    /// Passed every check.
    Accepted(MarketEvent),
    /// Refused, with the reason.
    Rejected(Reject),
}

impl Record for Normalized {
    fn route(&self) -> u64 {
        match self {
            Normalized::Accepted(e) => e.route(),
            Normalized::Rejected(r) => r.route(),
        }
    }
    fn order_key(&self) -> (i64, u32, u64) {
        match self {
            Normalized::Accepted(e) => e.order_key(),
            Normalized::Rejected(r) => r.order_key(),
        }
    }
}

/// De-duplication key: instrument, record kind (0 trade, 1 quote), venue id.
type DedupeKey = (u32, u8, u64);

/// Venue ids of one instrument and record kind seen within the de-duplication window.
///
/// Venue ids nearly always increase, so the common case costs no hashing: an id above the
/// highest seen is appended to `ordered`, which therefore stays strictly increasing and is
/// searched by bisection. An id below the highest that is new (out-of-order delivery) goes to
/// `extra`. Memory is proportional to the records within the window, read sequentially.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct IdWindow {
    max_id: Option<u64>,
    /// `(event time, id)`, ids strictly increasing.
    ordered: VecDeque<(i64, u64)>,
    /// Out-of-order ids, oldest first.
    extra_order: VecDeque<(i64, u64)>,
    #[serde(skip)]
    extra: FxHashSet<u64>,
}

impl IdWindow {
    /// Records `id`; false when it was already seen within the window.
    fn insert(&mut self, ts: i64, id: u64) -> bool {
        if self.max_id.is_none_or(|m| id > m) {
            self.max_id = Some(id);
            self.ordered.push_back((ts, id));
            return true;
        }
        if self.ordered.binary_search_by_key(&id, |&(_, i)| i).is_ok() || !self.extra.insert(id) {
            return false;
        }
        self.extra_order.push_back((ts, id));
        true
    }

    /// Forgets ids seen before `horizon`.
    fn expire(&mut self, horizon: i64) {
        while self.ordered.front().is_some_and(|&(t, _)| t < horizon) {
            self.ordered.pop_front();
        }
        while let Some(&(t, id)) = self.extra_order.front() {
            if t >= horizon {
                break;
            }
            self.extra_order.pop_front();
            self.extra.remove(&id);
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
struct State {
    /// Id windows by `instrument * 2 + kind`.
    windows: Vec<IdWindow>,
}

impl State {
    /// Rebuilds the set of out-of-order ids, which snapshots leave out, after a restore.
    fn index_extra(&mut self) {
        for w in &mut self.windows {
            w.extra = w.extra_order.iter().map(|&(_, id)| id).collect();
        }
    }
}

/// The normalize operator.
pub struct Normalize {
    config: NormalizeConfig,
    state: State,
    /// Event time of the last expiry pass.
    last_expiry: i64,
}

impl Normalize {
    /// A normalize operator.
    pub fn new(config: NormalizeConfig) -> Result<Self> {
        if config.granularity.nanos() <= 0 {
            return Err(Error::Config {
                operator: "normalize",
                reason: "granularity must be positive".into(),
            });
        }
        if config.dedupe_window.nanos() < 0 {
            return Err(Error::Config {
                operator: "normalize",
                reason: "dedupe_window must not be negative".into(),
            });
        }
        Ok(Self {
            config,
            state: State::default(),
            last_expiry: i64::MIN,
        })
    }

    fn check(
        &self,
        e: &MarketEvent,
        step: Timestamp,
    ) -> Result<Option<DedupeKey>, (RejectReason, String)> {
        let ts = e.ts_event();
        if ts.floor(self.config.granularity) < step {
            return Err((
                RejectReason::Late,
                format!("event time {ts} arrived after the watermark passed {step}"),
            ));
        }
        let positive_price = |p: Price, what: &str| {
            if p.is_positive() {
                Ok(())
            } else {
                Err((
                    RejectReason::NonPositivePrice,
                    format!("{what} {p} is not positive"),
                ))
            }
        };
        let positive_size = |q: Quantity, what: &str| {
            if q.is_positive() {
                Ok(())
            } else {
                Err((
                    RejectReason::NonPositiveSize,
                    format!("{what} {q} is not positive"),
                ))
            }
        };
        let instrument = e.instrument().0;
        match e {
            MarketEvent::Trade(t) => {
                if t.suspicious {
                    return Err((
                        RejectReason::Suspicious,
                        "flagged suspicious by the source".into(),
                    ));
                }
                positive_price(t.price, "price")?;
                positive_size(t.size, "size")?;
                Ok(t.trade_id.map(|id| (instrument, 0, id)))
            }
            MarketEvent::Quote(q) => {
                if q.suspicious {
                    return Err((
                        RejectReason::Suspicious,
                        "flagged suspicious by the source".into(),
                    ));
                }
                if let Some(b) = q.bid {
                    positive_price(b, "bid")?;
                    positive_size(q.bid_size, "bid size")?;
                }
                if let Some(a) = q.ask {
                    positive_price(a, "ask")?;
                    positive_size(q.ask_size, "ask size")?;
                }
                if let (Some(b), Some(a)) = (q.bid, q.ask)
                    && b > a
                {
                    return Err((
                        RejectReason::CrossedQuote,
                        format!("bid {b} is above ask {a}"),
                    ));
                }
                Ok(q.update_id.map(|id| (instrument, 1, id)))
            }
            MarketEvent::Book(b) => {
                if b.suspicious {
                    return Err((
                        RejectReason::Suspicious,
                        "flagged suspicious by the source".into(),
                    ));
                }
                if b.action == BookAction::Clear {
                    return Ok(None);
                }
                positive_price(b.price, "price")?;
                let level_removal = b.order_id.is_none() && b.action == BookAction::Cancel;
                if b.size.raw() < 0
                    || (b.size.is_zero()
                        && !level_removal
                        && matches!(b.action, BookAction::Add | BookAction::Execute))
                {
                    return Err((
                        RejectReason::NonPositiveSize,
                        format!("{} size {} is not positive", b.action.as_str(), b.size),
                    ));
                }
                Ok(None)
            }
        }
    }

    /// Expires old ids, at most once per tenth of the window (ids live up to 10 % longer).
    fn expire(&mut self, now: Timestamp) {
        let window = self.config.dedupe_window.nanos();
        if now.nanos().saturating_sub(self.last_expiry) < window / 10 {
            return;
        }
        self.last_expiry = now.nanos();
        let horizon = now.nanos().saturating_sub(window);
        for w in &mut self.state.windows {
            w.expire(horizon);
        }
    }

    /// True when `key` is new within the window (and remembers it).
    fn remember(&mut self, ts: Timestamp, (instrument, kind, id): DedupeKey) -> bool {
        let slot = instrument as usize * 2 + kind as usize;
        if slot >= self.state.windows.len() {
            self.state.windows.resize_with(slot + 1, IdWindow::default);
        }
        self.state.windows[slot].insert(ts.nanos(), id)
    }
}

impl Operator for Normalize {
    type In = MarketEvent;
    type Out = Normalized;

    fn name(&self) -> &'static str {
        "normalize"
    }

    fn on_batch(
        &mut self,
        time: Timestamp,
        input: &mut Vec<MarketEvent>,
        out: &mut Emitter<Normalized>,
    ) {
        self.expire(time);
        for e in input.drain(..) {
            let outcome = self.check(&e, time).and_then(|key| match key {
                Some(key) if !self.remember(e.ts_event(), key) => Err((
                    RejectReason::Duplicate,
                    format!("{} id {} already seen", e.kind(), key.2),
                )),
                _ => Ok(()),
            });
            out.push(match outcome {
                Ok(()) => Normalized::Accepted(e),
                Err((reason, detail)) => {
                    let seq = e.seq();
                    let (origin, line) = match self.config.origins.get(seq.source() as usize) {
                        Some(o) => (o.name.clone(), o.position(seq)),
                        None => (format!("source {}", seq.source()), seq.ordinal()),
                    };
                    Normalized::Rejected(Reject {
                        instrument: Some(e.instrument()),
                        ts_event: Some(e.ts_event()),
                        reason,
                        detail: format!("{}: {detail}", e.kind()),
                        origin,
                        line,
                        seq,
                    })
                }
            });
        }
    }

    fn on_watermark(&mut self, _watermark: Timestamp, _out: &mut Emitter<Normalized>) {}

    fn next_emit(&self) -> Option<Timestamp> {
        None
    }

    fn snapshot(&self) -> Result<Vec<u8>> {
        encode_state("normalize", &self.state)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<()> {
        self.state = decode_state("normalize", snapshot)?;
        self.state.index_extra();
        Ok(())
    }

    fn restore_parts(&mut self, parts: &[Vec<u8>], mine: &dyn Fn(u64) -> bool) -> Result<()> {
        let parts: Vec<State> = decode_parts("normalize", parts)?;
        // The windows each worker has seen ids in, by slot (`instrument * 2 + kind`).
        let used = parts.into_iter().map(|p| {
            p.windows
                .into_iter()
                .enumerate()
                .filter(|(_, w)| w.max_id.is_some())
        });
        let kept = regroup("normalize", used.collect(), |slot| *slot as u64 / 2, mine)?;
        let mut windows = Vec::new();
        for (slot, w) in kept {
            if slot >= windows.len() {
                windows.resize_with(slot + 1, IdWindow::default);
            }
            windows[slot] = w;
        }
        self.state = State { windows };
        self.state.index_extra();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickflow_core::{InstrumentId, Quote, SeqNo, Side, Trade};

    fn trade(t: i64, price: i64, size: i64, id: Option<u64>) -> MarketEvent {
        MarketEvent::Trade(Trade {
            instrument: InstrumentId(1),
            ts_event: Timestamp(t),
            ts_recv: Timestamp(t),
            price: Price::from_raw(price),
            size: Quantity::from_raw(size),
            aggressor: Side::Buy,
            trade_id: id,
            suspicious: false,
            seq: SeqNo::new(0, t as u64),
        })
    }

    fn quote(t: i64, bid: Option<i64>, ask: Option<i64>) -> MarketEvent {
        MarketEvent::Quote(Quote {
            instrument: InstrumentId(2),
            ts_event: Timestamp(t),
            ts_recv: Timestamp(t),
            bid: bid.map(Price::from_raw),
            bid_size: Quantity::from_raw(5),
            ask: ask.map(Price::from_raw),
            ask_size: Quantity::from_raw(5),
            update_id: None,
            suspicious: false,
            seq: SeqNo::new(0, t as u64),
        })
    }

    fn reasons(out: &mut Emitter<Normalized>) -> Vec<Option<RejectReason>> {
        out.take_values()
            .into_iter()
            .map(|n| match n {
                Normalized::Accepted(_) => None,
                Normalized::Rejected(r) => Some(r.reason),
            })
            .collect()
    }

    fn op() -> Normalize {
        Normalize::new(NormalizeConfig {
            granularity: Duration::from_nanos(1),
            origins: vec![file()],
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn rejects_each_kind_of_bad_record_with_its_reason() {
        let mut n = op();
        let mut out = Emitter::default();
        let mut suspicious = trade(10, 5, 5, None);
        if let MarketEvent::Trade(t) = &mut suspicious {
            t.suspicious = true
        }
        let mut batch = vec![
            trade(10, 5, 5, Some(1)),
            trade(10, 0, 5, None),
            trade(10, -3, 5, None),
            trade(10, 5, 0, None),
            trade(10, 5, -1, None),
            suspicious,
            quote(10, Some(6), Some(5)),
            quote(10, Some(5), Some(5)),
            quote(10, None, Some(5)),
            quote(10, Some(0), None),
            trade(10, 5, 5, Some(1)),
            trade(9, 5, 5, None),
        ];
        n.on_batch(Timestamp(10), &mut batch, &mut out);
        use RejectReason::*;
        assert_eq!(
            reasons(&mut out),
            vec![
                None,
                Some(NonPositivePrice),
                Some(NonPositivePrice),
                Some(NonPositiveSize),
                Some(NonPositiveSize),
                Some(Suspicious),
                Some(CrossedQuote),
                None,
                None,
                Some(NonPositivePrice),
                Some(Duplicate),
                Some(Late)
            ]
        );
    }

    fn file() -> Origin {
        Origin {
            name: "file.csv".into(),
            lines: true,
        }
    }

    #[test]
    fn rejects_name_origin_and_line() {
        let mut n = Normalize::new(NormalizeConfig {
            granularity: Duration::from_nanos(1),
            origins: vec![
                file(),
                Origin {
                    name: "kafka:ticks/0".into(),
                    lines: false,
                },
            ],
            ..Default::default()
        })
        .unwrap();
        let mut out = Emitter::default();
        let at = |seq: SeqNo, t: i64| match trade(t, -1, 5, None) {
            MarketEvent::Trade(t) => MarketEvent::Trade(Trade { seq, ..t }),
            _ => unreachable!(),
        };
        // The second record of line 7 of the file; offset 41 of the partition.
        let mut batch = vec![at(SeqNo::at_line(0, 7, 1), 10), at(SeqNo::new(1, 41), 10)];
        n.on_batch(Timestamp(10), &mut batch, &mut out);
        let rejects: Vec<Reject> = out
            .take_values()
            .into_iter()
            .map(|n| match n {
                Normalized::Rejected(r) => r,
                Normalized::Accepted(e) => panic!("accepted {e:?}"),
            })
            .collect();
        assert_eq!(
            rejects[0].to_string(),
            "file.csv:7: non_positive_price: trade: price -0.000000001 is not positive"
        );
        assert_eq!(rejects[1].origin, "kafka:ticks/0");
        assert_eq!(rejects[1].line, 41);
    }

    proptest::proptest! {
        #[test]
        fn id_window_agrees_with_a_plain_set(ids in proptest::collection::vec(0u64..60, 1..300)) {
            let mut w = IdWindow::default();
            let mut seen = std::collections::HashSet::new();
            for (i, id) in ids.into_iter().enumerate() {
                proptest::prop_assert_eq!(w.insert(i as i64, id), seen.insert(id));
            }
        }
    }

    #[test]
    fn duplicates_are_forgotten_after_the_window_and_survive_a_snapshot() {
        let mut n = Normalize::new(NormalizeConfig {
            granularity: Duration::from_nanos(1),
            dedupe_window: Duration::from_nanos(100),
            origins: vec![],
        })
        .unwrap();
        let mut out = Emitter::default();
        n.on_batch(Timestamp(10), &mut vec![trade(10, 5, 5, Some(7))], &mut out);
        let snap = n.snapshot().unwrap();
        let mut restored = Normalize::new(NormalizeConfig {
            granularity: Duration::from_nanos(1),
            dedupe_window: Duration::from_nanos(100),
            origins: vec![],
        })
        .unwrap();
        restored.restore(&snap).unwrap();
        out.take_values();
        restored.on_batch(Timestamp(50), &mut vec![trade(50, 5, 5, Some(7))], &mut out);
        assert_eq!(reasons(&mut out), vec![Some(RejectReason::Duplicate)]);
        restored.on_batch(
            Timestamp(200),
            &mut vec![trade(200, 5, 5, Some(7))],
            &mut out,
        );
        assert_eq!(reasons(&mut out), vec![None], "the id left the window");
    }

    #[test]
    fn dedupe_windows_spread_over_another_number_of_workers_reject_as_on_one() {
        // Trades of six instruments whose venue ids repeat, some across the checkpoint, and
        // quotes; late and bad records among them.
        let mut rand = crate::adapter::test_checkpoints::xorshift(0x5851_f42d_4c95_7f2d);
        let steps: Vec<(Timestamp, Vec<MarketEvent>)> = (0..300i64)
            .map(|k| {
                let t = 1_000 + k * 5;
                let events = (0..4)
                    .map(|_| {
                        let inst = InstrumentId(rand(6) as u32);
                        let mut e = if rand(4) == 0 {
                            quote(t, Some(100 + rand(3) as i64), Some(104 + rand(3) as i64))
                        } else {
                            // Ids 1..k+40: often seen before, within the window or not.
                            let id = 1 + rand(k as u64 + 40);
                            trade(
                                t - rand(3) as i64,
                                100 + rand(9) as i64,
                                rand(4) as i64,
                                Some(id),
                            )
                        };
                        match &mut e {
                            MarketEvent::Trade(x) => x.instrument = inst,
                            MarketEvent::Quote(x) => x.instrument = inst,
                            _ => {}
                        }
                        e
                    })
                    .collect();
                (Timestamp(t), events)
            })
            .collect();
        let make = || {
            Normalize::new(NormalizeConfig {
                granularity: Duration::from_nanos(1),
                dedupe_window: Duration::from_nanos(400),
                origins: vec![file()],
            })
            .unwrap()
        };
        let n = crate::operator::rescale_check::rescaled_runs_as_one(
            make,
            &steps,
            Timestamp(1_000 + 150 * 5 + 2),
        );
        assert!(n > 400, "{n}");
    }
}
