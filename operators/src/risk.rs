//! Pre-trade risk: turns signals into orders and refuses the ones that would breach a limit.
//!
//! One risk gate sees the whole account (every instrument), because the notional and loss
//! limits are account-wide; its input is small (signals, one mark per bar, fills). Positions
//! come from the exchange's fills, which reach this operator through the dataflow's feedback
//! edge one step after they happen; orders still working count against every limit, so the
//! position can never exceed a limit, whatever fills later.
//!
//! A signal asks for a target position: `position_size` long on a buy, flat on a sell (or
//! `position_size` short with `allow_short`). The order is the difference between the target
//! and the position plus working orders. Checks, in order: kill switch, daily loss limit
//! (after it is hit, only orders that reduce a position pass until the next UTC day), order
//! size, order rate per instrument, a reference price, price band around the last trade,
//! position per instrument, gross and net notional. Each reject names the limit and the
//! numbers.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use tickflow_core::{
    Fill, FillStatus, InstrumentId, Order, OrderType, Price, Quantity, RiskReason, RiskReject,
    Side, Signal, TimeInForce, Timestamp, exact_notional, money_to_exact,
};

use crate::error::{Error, Result};
use crate::operator::{Emitter, Operator, Record, decode_parts, decode_state, encode_state};

/// The last trade price of an instrument, as of `ts` (a bar's close at its end).
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Mark {
    /// Instrument.
    pub instrument: InstrumentId,
    /// Event time of the price.
    pub ts: Timestamp,
    /// Last trade price.
    pub price: Price,
}

/// What the risk gate reads: fills (through the feedback edge), marks, signals.
#[derive(Clone, PartialEq, Serialize, Deserialize, Debug)]
pub enum RiskInput {
    /// An execution report.
    Fill(Fill),
    /// A new last-trade price.
    Mark(Mark),
    /// A strategy signal.
    Signal(Signal),
}

impl Record for RiskInput {
    fn route(&self) -> u64 {
        0 // one gate for the whole account
    }
    fn order_key(&self) -> (i64, u32, u64) {
        // Within one instant: fills, then marks, then signals.
        match self {
            RiskInput::Fill(f) => (
                f.ts_event.nanos(),
                f.instrument.0,
                (f.order_id << 16) | u64::from(f.exec & 0xffff),
            ),
            RiskInput::Mark(m) => (m.ts.nanos(), m.instrument.0, 1 << 62),
            RiskInput::Signal(s) => (s.ts_event.nanos(), s.instrument.0, 2 << 62),
        }
    }
}

/// What the gate decides for one signal.
#[derive(Clone, PartialEq, Serialize, Deserialize, Debug)]
pub enum RiskDecision {
    /// Sent to the exchange.
    Accepted(Order),
    /// Refused, with the reason.
    Rejected(RiskReject),
}

impl Record for RiskDecision {
    fn route(&self) -> u64 {
        match self {
            RiskDecision::Accepted(o) => u64::from(o.instrument.0),
            RiskDecision::Rejected(r) => u64::from(r.order.instrument.0),
        }
    }
    fn order_key(&self) -> (i64, u32, u64) {
        match self {
            RiskDecision::Accepted(o) => o.order_key(),
            RiskDecision::Rejected(r) => r.order_key(),
        }
    }
}

impl Record for Order {
    fn route(&self) -> u64 {
        u64::from(self.instrument.0)
    }
    fn order_key(&self) -> (i64, u32, u64) {
        (self.ts_event.nanos(), self.instrument.0, self.id)
    }
}

impl Record for RiskReject {
    fn route(&self) -> u64 {
        u64::from(self.order.instrument.0)
    }
    fn order_key(&self) -> (i64, u32, u64) {
        self.order.order_key()
    }
}

impl Record for Fill {
    fn route(&self) -> u64 {
        u64::from(self.instrument.0)
    }
    fn order_key(&self) -> (i64, u32, u64) {
        (
            self.ts_event.nanos(),
            self.instrument.0,
            (self.order_id << 16) | u64::from(self.exec & 0xffff),
        )
    }
}

/// Order generation and the limits. `None` means no limit.
#[derive(Clone, PartialEq, Serialize, Deserialize, Debug)]
pub struct RiskConfig {
    /// Target position size a signal asks for.
    pub position_size: Quantity,
    /// Whether a sell signal goes short (otherwise it goes flat).
    pub allow_short: bool,
    /// Market or limit orders.
    pub order_type: OrderType,
    /// IOC or GTC.
    pub tif: TimeInForce,
    /// Limit orders: price = last trade × (1 ± offset) (more aggressive when positive), in
    /// basis points.
    pub limit_offset_bps: f64,
    /// Largest absolute position per instrument, working orders included.
    pub max_position: Option<Quantity>,
    /// Largest single order.
    pub max_order_size: Option<Quantity>,
    /// Largest sum of absolute position values (at the last trade), working orders included.
    pub max_gross_notional: Option<Price>,
    /// Largest absolute sum of signed position values.
    pub max_net_notional: Option<Price>,
    /// Most orders per instrument within `rate_window`.
    pub max_orders: Option<u32>,
    /// The window of `max_orders`.
    pub rate_window: tickflow_core::Duration,
    /// Largest relative distance of an order's price from the last trade (0.05 = 5 %).
    pub price_band: Option<f64>,
    /// Loss within one UTC day (fees included) that switches the gate to reduce-only.
    pub daily_loss_limit: Option<Price>,
    /// Refuse every order.
    pub kill_switch: bool,
    /// Engage the kill switch from this event time on.
    pub kill_at: Option<Timestamp>,
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            position_size: Quantity::from_raw(100 * tickflow_core::FIXED_SCALE),
            allow_short: false,
            order_type: OrderType::Market,
            tif: TimeInForce::Ioc,
            limit_offset_bps: 0.0,
            max_position: None,
            max_order_size: None,
            max_gross_notional: None,
            max_net_notional: None,
            max_orders: None,
            rate_window: tickflow_core::Duration::from_secs(60),
            price_band: None,
            daily_loss_limit: None,
            kill_switch: false,
            kill_at: None,
        }
    }
}

/// One instrument as the gate sees it. Money is exact (units of 10^-18).
#[derive(Clone, Default, Serialize, Deserialize, Debug)]
struct Book {
    position: i64,
    open_buy: i64,
    open_sell: i64,
    cash: i128,
    mark: Option<Price>,
    recent: VecDeque<i64>,
}

impl Book {
    fn value(&self) -> i128 {
        self.mark
            .map_or(0, |m| exact_notional(m, Quantity::from_raw(self.position)))
    }
}

/// A working order.
#[derive(Clone, Serialize, Deserialize, Debug)]
struct Working {
    side: Side,
    leaves: i64,
}

#[derive(Clone, Default, Serialize, Deserialize, Debug)]
struct State {
    books: BTreeMap<u32, Book>,
    working: BTreeMap<u64, Working>,
    next_id: u64,
    fees: i128,
    day: Option<(i32, u32, u32)>,
    day_start_pnl: i128,
    reduce_only: bool,
}

/// The pre-trade risk gate.
pub struct Risk {
    config: RiskConfig,
    state: State,
    /// Orders whose last report has arrived but is not processed yet.
    closing_reports: std::collections::BTreeSet<u64>,
}

impl Risk {
    /// A gate with these limits; refuses limits that cannot work.
    pub fn new(config: RiskConfig) -> Result<Self> {
        let bad = |reason: String| {
            Err(Error::Config {
                operator: "risk",
                reason,
            })
        };
        if !config.position_size.is_positive() {
            return bad(format!(
                "position_size must be positive, got {}",
                config.position_size
            ));
        }
        for (name, q) in [
            ("max_position", config.max_position),
            ("max_order_size", config.max_order_size),
        ] {
            if let Some(q) = q
                && q.raw() < 0
            {
                return bad(format!("{name} must not be negative, got {q}"));
            }
        }
        for (name, p) in [
            ("max_gross_notional", config.max_gross_notional),
            ("max_net_notional", config.max_net_notional),
            ("daily_loss_limit", config.daily_loss_limit),
        ] {
            if let Some(p) = p
                && p.raw() < 0
            {
                return bad(format!("{name} must not be negative, got {p}"));
            }
        }
        if let Some(b) = config.price_band
            && !(b.is_finite() && b >= 0.0)
        {
            return bad(format!("price_band must be a fraction >= 0, got {b}"));
        }
        if !config.limit_offset_bps.is_finite() || config.limit_offset_bps.abs() >= 10_000.0 {
            return bad(format!(
                "limit_offset_bps must be within (-10000, 10000), got {}",
                config.limit_offset_bps
            ));
        }
        if config.max_orders.is_some() && config.rate_window.nanos() <= 0 {
            return bad("rate_window must be positive".into());
        }
        if config.order_type == OrderType::Market && config.tif == TimeInForce::Gtc {
            return bad("market orders are IOC; use order_type = \"limit\" for GTC".into());
        }
        Ok(Self {
            config,
            state: State::default(),
            closing_reports: Default::default(),
        })
    }

    /// Account PnL so far (exact units of 10^-18), fees included.
    fn pnl(&self) -> i128 {
        self.state
            .books
            .values()
            .map(|b| b.cash + b.value())
            .sum::<i128>()
            - self.state.fees
    }

    fn roll_day(&mut self, ts: Timestamp) {
        let day = ts.date();
        if self.state.day != Some(day) {
            self.state.day = Some(day);
            self.state.day_start_pnl = self.pnl();
            self.state.reduce_only = false;
        }
    }

    fn check_loss(&mut self) {
        if let Some(limit) = self.config.daily_loss_limit
            && self.pnl() - self.state.day_start_pnl <= -money_to_exact(limit)
        {
            self.state.reduce_only = true;
        }
    }

    fn on_fill(&mut self, f: &Fill) {
        let book = self.state.books.entry(f.instrument.0).or_default();
        let q = f.signed_quantity();
        book.position += q;
        book.cash -= exact_notional(f.price, Quantity::from_raw(q));
        self.state.fees += money_to_exact(f.fee);
        let done = match self.state.working.get_mut(&f.order_id) {
            Some(w) => {
                let left = if f.status == FillStatus::Canceled {
                    w.leaves
                } else {
                    f.quantity.raw()
                };
                let freed = left.min(w.leaves);
                w.leaves -= freed;
                match w.side {
                    Side::Sell => book.open_sell -= freed,
                    _ => book.open_buy -= freed,
                }
                w.leaves == 0 || f.status != FillStatus::Partial
            }
            None => false,
        };
        if done {
            self.closing_reports.remove(&f.order_id);
        }
        if done && let Some(w) = self.state.working.remove(&f.order_id) {
            // A fill report that closes an order frees what is still counted as working.
            match w.side {
                Side::Sell => book.open_sell -= w.leaves,
                _ => book.open_buy -= w.leaves,
            }
        }
        self.check_loss();
    }

    fn on_signal(&mut self, s: &Signal, out: &mut Emitter<RiskDecision>) {
        let cfg = &self.config;
        let size = cfg.position_size.raw();
        let target = match s.side {
            Side::Buy => size,
            Side::Sell if cfg.allow_short => -size,
            Side::Sell => 0,
            Side::None => return,
        };
        let book = self.state.books.entry(s.instrument.0).or_default();
        let projected = book.position + book.open_buy - book.open_sell;
        let qty = target - projected;
        if qty == 0 {
            return;
        }
        let side = if qty > 0 { Side::Buy } else { Side::Sell };
        let qty_abs = qty.abs();
        let reference = book.mark.unwrap_or(Price::ZERO);
        let limit = (cfg.order_type == OrderType::Limit).then(|| {
            let sign = if side == Side::Buy { 1.0 } else { -1.0 };
            let factor = 1.0 + sign * cfg.limit_offset_bps / 10_000.0;
            Price::from_f64_rounded(factor)
                .and_then(|f| reference.checked_mul(f.raw()))
                .unwrap_or(reference)
        });
        self.state.next_id += 1;
        let order = Order {
            id: self.state.next_id,
            instrument: s.instrument,
            ts_event: s.ts_event,
            side,
            order_type: cfg.order_type,
            tif: cfg.tif,
            limit,
            quantity: Quantity::from_raw(qty_abs),
            reference,
            reason: s.reason.clone(),
        };
        match self.check(&order, qty) {
            Ok(()) => {
                let book = self.state.books.entry(s.instrument.0).or_default();
                match side {
                    Side::Buy => book.open_buy += qty_abs,
                    _ => book.open_sell += qty_abs,
                }
                book.recent.push_back(s.ts_event.nanos());
                self.state.working.insert(
                    order.id,
                    Working {
                        side,
                        leaves: qty_abs,
                    },
                );
                out.push(RiskDecision::Accepted(order));
            }
            Err((reason, detail)) => {
                out.push(RiskDecision::Rejected(RiskReject {
                    order,
                    reason,
                    detail,
                }));
            }
        }
    }

    /// Every limit, in order; the first breach is the reason.
    fn check(&mut self, order: &Order, qty: i64) -> std::result::Result<(), (RiskReason, String)> {
        let cfg = &self.config;
        let q = |raw: i64| Quantity::from_raw(raw);
        if cfg.kill_switch || cfg.kill_at.is_some_and(|t| order.ts_event >= t) {
            return Err((RiskReason::KillSwitch, "kill switch engaged".into()));
        }
        let book = &self.state.books[&order.instrument.0];
        let worst_before = (book.position + book.open_buy)
            .abs()
            .max((book.position - book.open_sell).abs());
        let worst_after = if qty > 0 {
            (book.position + book.open_buy + qty)
                .abs()
                .max((book.position - book.open_sell).abs())
        } else {
            (book.position + book.open_buy)
                .abs()
                .max((book.position - book.open_sell + qty).abs())
        };
        let increases = worst_after > worst_before;
        if self.state.reduce_only && increases {
            return Err((
                RiskReason::DailyLossLimit,
                format!(
                    "daily loss limit {} hit; reduce-only until the next day",
                    cfg.daily_loss_limit.unwrap_or(Price::ZERO)
                ),
            ));
        }
        if let Some(max) = cfg.max_order_size
            && order.quantity > max
        {
            return Err((
                RiskReason::MaxOrderSize,
                format!("order size {} > max {max}", order.quantity),
            ));
        }
        if let Some(max) = cfg.max_orders {
            let since = order
                .ts_event
                .nanos()
                .saturating_sub(cfg.rate_window.nanos());
            let book = self.state.books.entry(order.instrument.0).or_default();
            while book.recent.front().is_some_and(|&t| t <= since) {
                book.recent.pop_front();
            }
            if book.recent.len() >= max as usize {
                return Err((
                    RiskReason::MaxOrderRate,
                    format!(
                        "{} orders in the last {} (max {max})",
                        book.recent.len(),
                        cfg.rate_window
                    ),
                ));
            }
        }
        let book = &self.state.books[&order.instrument.0];
        let Some(mark) = book.mark else {
            return Err((
                RiskReason::NoReferencePrice,
                "no trade price known for the instrument yet".into(),
            ));
        };
        if let (Some(band), Some(limit)) = (cfg.price_band, order.limit) {
            let dist = (limit.to_f64() / mark.to_f64() - 1.0).abs();
            if dist > band {
                return Err((
                    RiskReason::PriceBand,
                    format!(
                        "limit {limit} is {:.2}% from the last trade {mark} (band {:.2}%)",
                        dist * 100.0,
                        band * 100.0
                    ),
                ));
            }
        }
        if let Some(max) = cfg.max_position
            && increases
            && worst_after > max.raw()
        {
            return Err((
                RiskReason::MaxPosition,
                format!(
                    "position {} with working orders {}/{} and this order {} would reach {} > max {max}",
                    q(book.position),
                    q(book.open_buy),
                    q(-book.open_sell),
                    q(qty),
                    q(worst_after)
                ),
            ));
        }
        if cfg.max_gross_notional.is_some() || cfg.max_net_notional.is_some() {
            // Exposure of every instrument at its mark, this order included as working.
            let (mut gross, mut net, mut gross_before, mut net_before) =
                (0i128, 0i128, 0i128, 0i128);
            for (&id, b) in &self.state.books {
                let Some(m) = b.mark else { continue };
                let (mut ob, mut os) = (b.open_buy, b.open_sell);
                let g0 = (b.position + ob).abs().max((b.position - os).abs());
                let n0 = b.position + ob - os;
                gross_before += exact_notional(m, q(g0));
                net_before += exact_notional(m, q(n0));
                if id == order.instrument.0 {
                    if qty > 0 {
                        ob += qty;
                    } else {
                        os -= qty;
                    }
                }
                let g = (b.position + ob).abs().max((b.position - os).abs());
                gross += exact_notional(m, q(g));
                net += exact_notional(m, q(b.position + ob - os));
            }
            let money = tickflow_core::round_money;
            if let Some(max) = cfg.max_gross_notional
                && gross > gross_before
                && gross > money_to_exact(max)
            {
                return Err((
                    RiskReason::MaxGrossNotional,
                    format!("gross notional would be {} > max {max}", money(gross)),
                ));
            }
            if let Some(max) = cfg.max_net_notional
                && net.abs() > net_before.abs()
                && net.abs() > money_to_exact(max)
            {
                return Err((
                    RiskReason::MaxNetNotional,
                    format!("net notional would be {} > max {max}", money(net)),
                ));
            }
        }
        Ok(())
    }
}

impl Operator for Risk {
    type In = RiskInput;
    type Out = RiskDecision;
    fn name(&self) -> &'static str {
        "risk"
    }
    fn on_batch(
        &mut self,
        _t: Timestamp,
        input: &mut Vec<RiskInput>,
        out: &mut Emitter<RiskDecision>,
    ) {
        for item in input.drain(..) {
            match item {
                RiskInput::Fill(f) => {
                    self.roll_day(f.ts_event);
                    self.on_fill(&f);
                }
                RiskInput::Mark(m) => {
                    self.roll_day(m.ts);
                    self.state.books.entry(m.instrument.0).or_default().mark = Some(m.price);
                    self.check_loss();
                }
                RiskInput::Signal(s) => {
                    self.roll_day(s.ts_event);
                    self.on_signal(&s, out);
                }
            }
        }
    }
    fn on_watermark(&mut self, _w: Timestamp, _out: &mut Emitter<RiskDecision>) {}
    fn waits_for_state(&self) -> bool {
        // Reports come only for working orders, each order's in sequence from one exchange
        // instance: once the last report of every working order has arrived, nothing else can.
        self.state
            .working
            .keys()
            .any(|id| !self.closing_reports.contains(id))
    }
    fn observe_state(&mut self, record: &RiskInput) {
        if let RiskInput::Fill(f) = record
            && f.status != FillStatus::Partial
        {
            self.closing_reports.insert(f.order_id);
        }
    }
    fn next_emit(&self) -> Option<Timestamp> {
        None
    }
    fn snapshot(&self) -> Result<Vec<u8>> {
        encode_state("risk", &self.state)
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<()> {
        self.state = decode_state("risk", snapshot)?;
        Ok(())
    }
    fn restore_parts(&mut self, parts: &[Vec<u8>], mine: &dyn Fn(u64) -> bool) -> Result<()> {
        // One gate for the whole account: every input routes to 0, which is worker 0's in any
        // job, so the other workers' snapshots hold no orders or positions.
        let mut parts: Vec<State> = decode_parts("risk", parts)?;
        if let Some(w) = parts
            .iter()
            .skip(1)
            .position(|s| !s.books.is_empty() || !s.working.is_empty())
        {
            return Err(Error::Rescale {
                operator: "risk",
                workers: parts.len(),
                reason: format!(
                    "worker {} holds positions or orders, which only worker 0 can",
                    w + 1
                ),
            });
        }
        self.state = if mine(0) && !parts.is_empty() {
            parts.swap_remove(0)
        } else {
            State::default()
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickflow_core::Duration;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }
    fn signal(ts: i64, side: Side) -> RiskInput {
        RiskInput::Signal(Signal {
            instrument: InstrumentId(1),
            ts_event: Timestamp(ts),
            side,
            strength: 1.0,
            reason: "test".into(),
        })
    }
    fn mark(ts: i64, price: &str) -> RiskInput {
        RiskInput::Mark(Mark {
            instrument: InstrumentId(1),
            ts: Timestamp(ts),
            price: Price::parse(price).unwrap(),
        })
    }
    fn step(risk: &mut Risk, input: Vec<RiskInput>) -> Vec<RiskDecision> {
        let mut out = Emitter::default();
        risk.on_batch(Timestamp(0), &mut input.clone(), &mut out);
        out.take_values()
    }

    #[test]
    fn working_orders_count_until_their_fills_come_back() {
        let mut risk = Risk::new(RiskConfig {
            position_size: q("100"),
            max_position: Some(q("100")),
            ..RiskConfig::default()
        })
        .unwrap();
        // No price yet: refused.
        let d = step(&mut risk, vec![signal(1, Side::Buy)]);
        assert!(
            matches!(&d[0], RiskDecision::Rejected(r) if r.reason == RiskReason::NoReferencePrice)
        );
        let d = step(&mut risk, vec![mark(2, "10"), signal(3, Side::Buy)]);
        let RiskDecision::Accepted(order) = &d[0] else {
            panic!("{d:?}")
        };
        assert_eq!(order.quantity, q("100"));
        // While the order works, a second buy asks for nothing more (target reached).
        assert!(step(&mut risk, vec![signal(4, Side::Buy)]).is_empty());
        // A partial fill of 40, then the cancel of the rest: the position is 40, nothing works.
        let fill = |qty: &str, status| {
            RiskInput::Fill(Fill {
                order_id: order.id,
                exec: 0,
                instrument: InstrumentId(1),
                ts_event: Timestamp(5),
                side: Side::Buy,
                price: Price::parse("10").unwrap(),
                quantity: q(qty),
                fee: Price::ZERO,
                leaves: q("60"),
                status,
            })
        };
        step(
            &mut risk,
            vec![
                fill("40", FillStatus::Partial),
                fill("0", FillStatus::Canceled),
            ],
        );
        let book = &risk.state.books[&1];
        assert_eq!((book.position, book.open_buy), (q("40").raw(), 0));
        assert!(risk.state.working.is_empty());
        // The next buy asks for the missing 60.
        let d = step(&mut risk, vec![signal(6, Side::Buy)]);
        assert!(matches!(&d[0], RiskDecision::Accepted(o) if o.quantity == q("60")));
    }

    #[test]
    fn waits_for_reports_only_until_the_last_one_of_every_working_order_is_in() {
        let mut risk = Risk::new(RiskConfig::default()).unwrap();
        assert!(!risk.waits_for_state(), "nothing works, nothing can come");
        let d = step(&mut risk, vec![mark(1, "10"), signal(2, Side::Buy)]);
        let RiskDecision::Accepted(order) = &d[0] else {
            panic!("{d:?}")
        };
        assert!(risk.waits_for_state());
        let report = |status, qty: &str| {
            RiskInput::Fill(Fill {
                order_id: order.id,
                exec: 0,
                instrument: InstrumentId(1),
                ts_event: Timestamp(3),
                side: Side::Buy,
                price: Price::parse("10").unwrap(),
                quantity: q(qty),
                fee: Price::ZERO,
                leaves: Quantity::ZERO,
                status,
            })
        };
        // A partial report leaves more to come; the cancel of the rest is the last one.
        risk.observe_state(&report(FillStatus::Partial, "30"));
        assert!(risk.waits_for_state());
        risk.observe_state(&report(FillStatus::Canceled, "0"));
        assert!(!risk.waits_for_state());
        step(
            &mut risk,
            vec![
                report(FillStatus::Partial, "30"),
                report(FillStatus::Canceled, "0"),
            ],
        );
        assert!(!risk.waits_for_state());
        assert!(risk.closing_reports.is_empty());
        assert_eq!(risk.state.books[&1].position, q("30").raw());
    }

    #[test]
    fn refuses_limits_that_cannot_work() {
        assert!(
            Risk::new(RiskConfig {
                position_size: Quantity::ZERO,
                ..RiskConfig::default()
            })
            .is_err()
        );
        assert!(
            Risk::new(RiskConfig {
                price_band: Some(f64::NAN),
                ..RiskConfig::default()
            })
            .is_err()
        );
        assert!(
            Risk::new(RiskConfig {
                max_orders: Some(1),
                rate_window: Duration::ZERO,
                ..RiskConfig::default()
            })
            .is_err()
        );
        assert!(
            Risk::new(RiskConfig {
                tif: TimeInForce::Gtc,
                ..RiskConfig::default()
            })
            .is_err()
        );
    }

    #[test]
    fn the_gate_resumed_on_another_number_of_workers_decides_as_on_one() {
        // Signals and marks of four instruments; every record is the gate's, on worker 0.
        let mut rand = crate::adapter::test_checkpoints::xorshift(0x2545_f491_4f6c_dd1d);
        let steps: Vec<(Timestamp, Vec<RiskInput>)> = (1..300i64)
            .map(|k| {
                let t = k * 1_000;
                let inputs = (0..4u32)
                    .map(|i| {
                        let mut x = if rand(2) == 0 {
                            signal(t, if rand(2) == 0 { Side::Buy } else { Side::Sell })
                        } else {
                            mark(t, &format!("{}", 50 + rand(10)))
                        };
                        match &mut x {
                            RiskInput::Signal(s) => s.instrument = InstrumentId(i),
                            RiskInput::Mark(m) => m.instrument = InstrumentId(i),
                            RiskInput::Fill(_) => {}
                        }
                        x
                    })
                    .collect();
                (Timestamp(t), inputs)
            })
            .collect();
        let make = || {
            Risk::new(RiskConfig {
                position_size: q("10"),
                max_position: Some(q("30")),
                max_orders: Some(5),
                rate_window: Duration::from_nanos(20_000),
                ..RiskConfig::default()
            })
            .unwrap()
        };
        let n = crate::operator::rescale_check::rescaled_runs_as_one(
            make,
            &steps,
            Timestamp(150_000 + 1),
        );
        assert!(n > 100, "{n} decisions");
        // A snapshot of another worker that holds orders cannot be the gate's.
        let mut busy = make();
        let mut out = Emitter::default();
        busy.on_batch(
            Timestamp(1),
            &mut vec![mark(1, "50"), signal(1, Side::Buy)],
            &mut out,
        );
        assert!(!out.items().is_empty());
        let parts = vec![make().snapshot().unwrap(), busy.snapshot().unwrap()];
        let e = make()
            .restore_parts(&parts, &|_| true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("worker 1 holds positions or orders"), "{e}");
    }
}
