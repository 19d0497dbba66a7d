//! The simulated exchange: paper execution for live paper trading and for backtests alike.
//!
//! Orders reach the exchange `latency` after they were created and execute against the
//! current quotes of their instrument: a buy takes the ask, a sell the bid, up to the size the
//! quote displays (what one order takes is gone until the next quote refreshes it), so a large
//! order fills in parts. Market orders pay `slippage_bps` beyond the quote; limit orders
//! execute only at their limit or better. What an IOC order cannot fill on arrival is
//! canceled; a GTC order keeps working and executes against later quotes. Each execution pays
//! `fee_bps` of its notional plus `fee_per_unit` per unit. Execution reports (fills and
//! cancels) are the operator's output.
//!
//! Data without quotes (trade-only files) gives no liquidity: orders are canceled. With
//! `fill_on_trades`, the side of the book that has no quote is stood in for by the last trade:
//! its price, and its size as the quantity available until the next trade.
//!
//! A quote (or a last trade) older than `max_quote_age` when an order meets it gives no
//! liquidity either: recorded data that stops overnight, or a feed of one instrument that goes
//! quiet, would otherwise fill the next orders at a price of hours or days before.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tickflow_core::{
    Duration, Fill, FillStatus, Order, OrderType, Price, Quantity, Quote, Side, TimeInForce,
    Timestamp, Trade, exact_notional, round_money,
};

use crate::error::{Error, Result};
use crate::operator::{
    Emitter, Operator, Record, decode_parts, decode_state, encode_state, regroup,
};

/// Latency, slippage and fees.
#[derive(Clone, PartialEq, Serialize, Deserialize, Debug)]
pub struct ExchangeConfig {
    /// From order creation to arrival at the exchange.
    pub latency: Duration,
    /// Price paid beyond the quote by market orders, in basis points.
    pub slippage_bps: f64,
    /// Fee as a share of notional, in basis points.
    pub fee_bps: f64,
    /// Fee per unit traded.
    pub fee_per_unit: Price,
    /// Where a side has no quote, execute against the last trade (price and size).
    pub fill_on_trades: bool,
    /// The oldest a quote (or, with `fill_on_trades`, a last trade) may be when an order
    /// executes against it; `None`: no limit.
    #[serde(default)]
    pub max_quote_age: Option<Duration>,
    /// The kill switch of the risk operator that sends the orders: from this event time on,
    /// every order still working on an instrument is canceled at that instrument's first event
    /// (quote, trade or order), and a GTC rest arriving later is canceled instead of resting.
    #[serde(default)]
    pub kill_at: Option<Timestamp>,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(1),
            slippage_bps: 0.0,
            fee_bps: 0.0,
            fee_per_unit: Price::ZERO,
            fill_on_trades: false,
            max_quote_age: Some(DEFAULT_MAX_QUOTE_AGE),
            kill_at: None,
        }
    }
}

/// The default `max_quote_age`: an hour, far beyond the life of a quote while a market is
/// open, and short of any night or weekend a record or a feed leaves out.
pub const DEFAULT_MAX_QUOTE_AGE: Duration = Duration::from_secs(3600);

/// Whether a quote (or trade) of time `at` is at most `max_age` old at `now`; with no limit,
/// always.
pub(crate) fn fresh(max_age: Option<Duration>, at: Option<Timestamp>, now: Timestamp) -> bool {
    max_age
        .is_none_or(|age| at.is_some_and(|t| now.nanos().saturating_sub(t.nanos()) <= age.nanos()))
}

/// What the exchange reads: quotes, and orders stamped with their arrival time.
#[derive(Clone, PartialEq, Serialize, Deserialize, Debug)]
pub enum ExchangeInput {
    /// A quote update.
    Quote(Quote),
    /// A trade (read with `fill_on_trades` only).
    Trade(Trade),
    /// An order arriving at `arrival`.
    Order {
        /// Arrival time at the exchange.
        arrival: Timestamp,
        /// The order.
        order: Order,
    },
}

impl Record for ExchangeInput {
    fn route(&self) -> u64 {
        match self {
            ExchangeInput::Quote(q) => u64::from(q.instrument.0),
            ExchangeInput::Trade(t) => u64::from(t.instrument.0),
            ExchangeInput::Order { order, .. } => u64::from(order.instrument.0),
        }
    }
    fn order_key(&self) -> (i64, u32, u64) {
        match self {
            ExchangeInput::Quote(q) => q.order_key(),
            ExchangeInput::Trade(t) => t.order_key(),
            // After the quotes and trades of the same instant.
            ExchangeInput::Order { arrival, order } => {
                (arrival.nanos(), order.instrument.0, (1 << 63) | order.id)
            }
        }
    }
}

#[derive(Clone, Default, Serialize, Deserialize, Debug)]
struct Book {
    bid: Option<(Price, i64)>,
    ask: Option<(Price, i64)>,
    /// Event time of the last quote.
    #[serde(default)]
    quoted_at: Option<Timestamp>,
    /// Last trade: price and the size still available to orders (`fill_on_trades`).
    last_trade: Option<(Price, i64)>,
    /// Event time of the last trade.
    #[serde(default)]
    traded_at: Option<Timestamp>,
    /// Working GTC orders, oldest first: (order, leaves, executions so far).
    working: Vec<(Order, i64, u32)>,
}

/// The simulated exchange.
pub struct SimExchange {
    config: ExchangeConfig,
    slip: Price,
    fee_rate: i128,
    books: BTreeMap<u32, Book>,
}

impl SimExchange {
    /// An exchange with these costs; refuses negative or non-finite ones.
    pub fn new(config: ExchangeConfig) -> Result<Self> {
        let bad = |reason: String| {
            Err(Error::Config {
                operator: "exchange",
                reason,
            })
        };
        if config.latency.nanos() < 0 {
            return bad(format!(
                "latency must not be negative, got {}",
                config.latency
            ));
        }
        for (name, v) in [
            ("slippage_bps", config.slippage_bps),
            ("fee_bps", config.fee_bps),
        ] {
            if !(v.is_finite() && (0.0..1000.0).contains(&v)) {
                return bad(format!("{name} must be within [0, 1000), got {v}"));
            }
        }
        if let Some(age) = config.max_quote_age
            && age.nanos() <= 0
        {
            return bad(format!("max_quote_age must be positive, got {age}"));
        }
        if config.fee_per_unit.raw() < 0 {
            return bad(format!(
                "fee_per_unit must not be negative, got {}",
                config.fee_per_unit
            ));
        }
        let slip = Price::from_f64_rounded(config.slippage_bps / 10_000.0).unwrap_or(Price::ZERO);
        let fee_rate =
            Price::from_f64_rounded(config.fee_bps / 10_000.0).map_or(0, |p| i128::from(p.raw()));
        Ok(Self {
            config,
            slip,
            fee_rate,
            books: BTreeMap::new(),
        })
    }

    /// The configured latency (the runtime stamps orders with their arrival).
    pub fn latency(&self) -> Duration {
        self.config.latency
    }

    /// Executes as much of `order` as the book allows at `ts`; returns the reports.
    fn execute(
        &self,
        book: &mut Book,
        ts: Timestamp,
        order: &Order,
        leaves: &mut i64,
        exec: &mut u32,
        out: &mut Emitter<Fill>,
    ) {
        let buy = order.side == Side::Buy;
        let fresh = |at| fresh(self.config.max_quote_age, at, ts);
        let quoted = fresh(book.quoted_at)
            && if buy {
                book.ask.is_some()
            } else {
                book.bid.is_some()
            };
        let level = match (quoted, buy) {
            (true, true) => &mut book.ask,
            (true, false) => &mut book.bid,
            (false, _) if self.config.fill_on_trades && fresh(book.traded_at) => {
                &mut book.last_trade
            }
            (false, _) => return,
        };
        let Some((quote_px, shown)) = level.as_mut() else {
            return;
        };
        if *shown <= 0 || *leaves <= 0 {
            return;
        }
        // Price after slippage: worse by `slip` of the quote for market orders.
        let slipped = {
            let delta = quote_px.checked_mul(self.slip.raw()).unwrap_or(Price::ZERO);
            let p = if buy {
                quote_px.checked_add(delta)
            } else {
                quote_px.checked_sub(delta)
            };
            p.unwrap_or(*quote_px)
        };
        let price = match (order.order_type, order.limit) {
            (OrderType::Limit, Some(limit)) => {
                let marketable = if buy {
                    *quote_px <= limit
                } else {
                    *quote_px >= limit
                };
                if !marketable {
                    return;
                }
                *quote_px
            }
            _ => slipped,
        };
        let qty = (*leaves).min(*shown);
        *shown -= qty;
        *leaves -= qty;
        let quantity = Quantity::from_raw(qty);
        let fee_exact = exact_notional(price, quantity) * self.fee_rate
            / i128::from(tickflow_core::FIXED_SCALE)
            + exact_notional(self.config.fee_per_unit, quantity);
        out.push(Fill {
            order_id: order.id,
            exec: *exec,
            instrument: order.instrument,
            ts_event: ts,
            side: order.side,
            price,
            quantity,
            fee: round_money(fee_exact),
            leaves: Quantity::from_raw(*leaves),
            status: if *leaves == 0 {
                FillStatus::Filled
            } else {
                FillStatus::Partial
            },
        });
        *exec += 1;
    }

    /// After the kill switch: cancels what still works on `instrument` at `ts`.
    fn kill(&mut self, instrument: u32, ts: Timestamp, out: &mut Emitter<Fill>) {
        if self.config.kill_at.is_none_or(|k| ts < k) {
            return;
        }
        let Some(book) = self.books.get_mut(&instrument) else {
            return;
        };
        for (order, _, exec) in book.working.drain(..) {
            out.push(canceled(&order, exec, ts));
        }
    }

    fn on_quote(&mut self, q: &Quote, out: &mut Emitter<Fill>) {
        self.kill(q.instrument.0, q.ts_event, out);
        let book = self.books.entry(q.instrument.0).or_default();
        book.bid = q.bid.map(|p| (p, q.bid_size.raw()));
        book.ask = q.ask.map(|p| (p, q.ask_size.raw()));
        book.quoted_at = Some(q.ts_event);
        if !book.working.is_empty() {
            self.work(q.instrument.0, q.ts_event, out);
        }
    }

    fn on_trade(&mut self, t: &Trade, out: &mut Emitter<Fill>) {
        self.kill(t.instrument.0, t.ts_event, out);
        let book = self.books.entry(t.instrument.0).or_default();
        book.last_trade = Some((t.price, t.size.raw()));
        book.traded_at = Some(t.ts_event);
        if !book.working.is_empty() {
            self.work(t.instrument.0, t.ts_event, out);
        }
    }

    /// Gives the working orders of an instrument a chance against its updated book.
    fn work(&mut self, instrument: u32, ts: Timestamp, out: &mut Emitter<Fill>) {
        let mut book = self.books.remove(&instrument).unwrap_or_default();
        let mut working = std::mem::take(&mut book.working);
        for (order, leaves, exec) in &mut working {
            self.execute(&mut book, ts, order, leaves, exec, out);
        }
        working.retain(|(_, leaves, _)| *leaves > 0);
        book.working = working;
        self.books.insert(instrument, book);
    }

    fn on_order(&mut self, arrival: Timestamp, order: Order, out: &mut Emitter<Fill>) {
        let instrument = order.instrument;
        let mut book = self.books.remove(&instrument.0).unwrap_or_default();
        let mut leaves = order.quantity.raw();
        let mut exec = 0;
        self.execute(&mut book, arrival, &order, &mut leaves, &mut exec, out);
        if leaves > 0 {
            match order.tif {
                TimeInForce::Gtc => book.working.push((order, leaves, exec)),
                TimeInForce::Ioc => out.push(canceled(&order, exec, arrival)),
            }
        }
        self.books.insert(instrument.0, book);
        self.kill(instrument.0, arrival, out);
    }
}

/// The report that what was left of `order` is canceled at `ts` (after `exec` executions).
fn canceled(order: &Order, exec: u32, ts: Timestamp) -> Fill {
    Fill {
        order_id: order.id,
        exec,
        instrument: order.instrument,
        ts_event: ts,
        side: order.side,
        price: Price::ZERO,
        quantity: Quantity::ZERO,
        fee: Price::ZERO,
        leaves: Quantity::ZERO,
        status: FillStatus::Canceled,
    }
}

impl Operator for SimExchange {
    type In = ExchangeInput;
    type Out = Fill;
    fn name(&self) -> &'static str {
        "exchange"
    }
    fn on_batch(&mut self, _t: Timestamp, input: &mut Vec<ExchangeInput>, out: &mut Emitter<Fill>) {
        for item in input.drain(..) {
            match item {
                ExchangeInput::Quote(q) => self.on_quote(&q, out),
                ExchangeInput::Trade(t) => self.on_trade(&t, out),
                ExchangeInput::Order { arrival, order } => self.on_order(arrival, order, out),
            }
        }
    }
    fn on_watermark(&mut self, _w: Timestamp, _out: &mut Emitter<Fill>) {}
    fn next_emit(&self) -> Option<Timestamp> {
        None
    }
    fn snapshot(&self) -> Result<Vec<u8>> {
        encode_state("exchange", &self.books)
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<()> {
        self.books = decode_state("exchange", snapshot)?;
        Ok(())
    }
    fn restore_parts(&mut self, parts: &[Vec<u8>], mine: &dyn Fn(u64) -> bool) -> Result<()> {
        let parts: Vec<BTreeMap<u32, Book>> = decode_parts("exchange", parts)?;
        self.books = regroup("exchange", parts, |i| u64::from(*i), mine)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickflow_core::{InstrumentId, SeqNo};

    fn p(s: &str) -> Price {
        Price::parse(s).unwrap()
    }
    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }
    fn quote(ts: i64, bid: &str, bid_size: &str, ask: &str, ask_size: &str) -> ExchangeInput {
        ExchangeInput::Quote(Quote {
            instrument: InstrumentId(0),
            ts_event: Timestamp(ts),
            ts_recv: Timestamp(ts),
            bid: Some(p(bid)),
            bid_size: q(bid_size),
            ask: Some(p(ask)),
            ask_size: q(ask_size),
            update_id: None,
            suspicious: false,
            seq: SeqNo(ts as u64),
        })
    }
    fn order(
        id: u64,
        ts: i64,
        side: Side,
        qty: &str,
        limit: Option<&str>,
        tif: TimeInForce,
    ) -> ExchangeInput {
        ExchangeInput::Order {
            arrival: Timestamp(ts),
            order: Order {
                id,
                instrument: InstrumentId(0),
                ts_event: Timestamp(ts),
                side,
                order_type: if limit.is_some() {
                    OrderType::Limit
                } else {
                    OrderType::Market
                },
                tif,
                limit: limit.map(p),
                quantity: q(qty),
                reference: p("10"),
                reason: "test".into(),
            },
        }
    }
    fn run(ex: &mut SimExchange, input: Vec<ExchangeInput>) -> Vec<Fill> {
        let mut out = Emitter::default();
        for item in input {
            ex.on_batch(Timestamp(0), &mut vec![item], &mut out);
        }
        out.take_values()
    }

    #[test]
    fn market_orders_fill_by_displayed_size_with_slippage_and_fees() {
        let mut ex = SimExchange::new(ExchangeConfig {
            latency: Duration::ZERO,
            slippage_bps: 10.0,
            fee_bps: 5.0,
            fee_per_unit: p("0.01"),
            fill_on_trades: false,
            max_quote_age: None,
            kill_at: None,
        })
        .unwrap();
        let fills = run(
            &mut ex,
            vec![
                quote(1, "9.99", "100", "10.01", "30"),
                order(1, 2, Side::Buy, "50", None, TimeInForce::Ioc),
            ],
        );
        // 30 shown at the ask: 30 fill at 10.01 × 1.001, the other 20 are canceled (IOC).
        assert_eq!(fills.len(), 2);
        assert_eq!(fills[0].quantity, q("30"));
        assert_eq!(fills[0].price, p("10.02001"));
        assert_eq!(fills[0].status, FillStatus::Partial);
        assert_eq!(fills[0].leaves, q("20"));
        // 5 bps of 300.6003 plus 0.01 × 30.
        assert_eq!(fills[0].fee, p("0.450300150"));
        assert_eq!(fills[1].status, FillStatus::Canceled);
        assert_eq!(fills[1].quantity, Quantity::ZERO);
        // What the order took is gone until the next quote.
        let more = run(
            &mut ex,
            vec![order(2, 3, Side::Buy, "10", None, TimeInForce::Ioc)],
        );
        assert_eq!(more.len(), 1);
        assert_eq!(more[0].status, FillStatus::Canceled);
    }

    #[test]
    fn the_kill_switch_cancels_what_still_works() {
        let mut ex = SimExchange::new(ExchangeConfig {
            kill_at: Some(Timestamp(10)),
            ..ExchangeConfig::default()
        })
        .unwrap();
        let fills = run(
            &mut ex,
            vec![
                quote(1, "9.99", "100", "10.01", "100"),
                order(1, 2, Side::Sell, "150", Some("10.05"), TimeInForce::Gtc),
                quote(9, "10.00", "100", "10.02", "100"),
            ],
        );
        assert!(fills.is_empty(), "working before the kill: {fills:?}");
        let fills = run(&mut ex, vec![quote(10, "10.00", "100", "10.02", "100")]);
        assert_eq!(fills.len(), 1);
        assert_eq!(
            (fills[0].order_id, fills[0].status, fills[0].ts_event),
            (1, FillStatus::Canceled, Timestamp(10))
        );
        // A GTC order still arriving after the kill does not rest.
        let fills = run(
            &mut ex,
            vec![order(
                2,
                12,
                Side::Buy,
                "10",
                Some("9.50"),
                TimeInForce::Gtc,
            )],
        );
        assert_eq!(fills.len(), 1);
        assert_eq!(fills[0].status, FillStatus::Canceled);
        assert!(run(&mut ex, vec![quote(13, "9.40", "100", "9.45", "100")]).is_empty());
    }

    #[test]
    fn gtc_limit_orders_rest_until_the_market_reaches_them() {
        let mut ex = SimExchange::new(ExchangeConfig::default()).unwrap();
        let fills = run(
            &mut ex,
            vec![
                quote(1, "9.99", "100", "10.01", "100"),
                order(1, 2, Side::Sell, "150", Some("10.05"), TimeInForce::Gtc),
                quote(3, "10.02", "100", "10.04", "100"),
            ],
        );
        assert!(fills.is_empty(), "not marketable yet: {fills:?}");
        let fills = run(
            &mut ex,
            vec![
                quote(4, "10.06", "100", "10.08", "100"),
                quote(5, "10.07", "80", "10.09", "100"),
            ],
        );
        // Fills at the bid (better than the limit), 100 then the remaining 50.
        assert_eq!(fills.len(), 2);
        assert_eq!((fills[0].price, fills[0].quantity), (p("10.06"), q("100")));
        assert_eq!((fills[1].price, fills[1].quantity), (p("10.07"), q("50")));
        assert_eq!(fills[1].status, FillStatus::Filled);
        assert_eq!(fills[1].exec, 1);
        // An IOC limit that is not marketable is canceled at once.
        let fills = run(
            &mut ex,
            vec![order(
                2,
                6,
                Side::Buy,
                "10",
                Some("10.00"),
                TimeInForce::Ioc,
            )],
        );
        assert_eq!(fills[0].status, FillStatus::Canceled);
    }

    fn trade(ts: i64, price: &str, size: &str) -> ExchangeInput {
        ExchangeInput::Trade(Trade {
            instrument: InstrumentId(0),
            ts_event: Timestamp(ts),
            ts_recv: Timestamp(ts),
            price: p(price),
            size: q(size),
            aggressor: Side::None,
            trade_id: None,
            suspicious: false,
            seq: SeqNo(ts as u64),
        })
    }

    #[test]
    fn without_quotes_orders_cancel_or_take_the_last_trade() {
        let mut ex = SimExchange::new(ExchangeConfig::default()).unwrap();
        let fills = run(
            &mut ex,
            vec![
                trade(1, "50", "30"),
                order(1, 2, Side::Buy, "10", None, TimeInForce::Ioc),
            ],
        );
        assert_eq!(
            fills[0].status,
            FillStatus::Canceled,
            "no quote, no liquidity"
        );
        let mut ex = SimExchange::new(ExchangeConfig {
            fill_on_trades: true,
            ..ExchangeConfig::default()
        })
        .unwrap();
        let fills = run(
            &mut ex,
            vec![
                trade(1, "50", "30"),
                order(1, 2, Side::Sell, "40", Some("49.5"), TimeInForce::Gtc),
                trade(3, "50.5", "25"),
            ],
        );
        // 30 at the first trade's price, the other 10 from the next trade.
        assert_eq!(fills.len(), 2);
        assert_eq!((fills[0].price, fills[0].quantity), (p("50"), q("30")));
        assert_eq!((fills[1].price, fills[1].quantity), (p("50.5"), q("10")));
        assert_eq!(fills[1].status, FillStatus::Filled);
    }

    #[test]
    fn a_quote_older_than_max_quote_age_gives_no_liquidity() {
        const S: i64 = 1_000_000_000;
        let mut ex = SimExchange::new(ExchangeConfig {
            max_quote_age: Some(Duration::from_secs(60)),
            fill_on_trades: true,
            ..ExchangeConfig::default()
        })
        .unwrap();
        let fills = run(
            &mut ex,
            vec![
                quote(0, "9.99", "100", "10.01", "100"),
                // 60 s after the quote: it still stands.
                order(1, 60 * S, Side::Buy, "10", None, TimeInForce::Ioc),
                // 61 s after: it gives nothing, and neither does a last trade as old.
                trade(0, "10", "100"),
                order(2, 61 * S, Side::Sell, "10", None, TimeInForce::Ioc),
                // A GTC order waits for a fresh quote and fills at its price.
                order(3, 62 * S, Side::Buy, "10", None, TimeInForce::Gtc),
                quote(63 * S, "10.49", "100", "10.51", "100"),
            ],
        );
        let got: Vec<_> = fills
            .iter()
            .map(|f| (f.order_id, f.status, f.price, f.ts_event))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, FillStatus::Filled, p("10.01"), Timestamp(60 * S)),
                (2, FillStatus::Canceled, Price::ZERO, Timestamp(61 * S)),
                (3, FillStatus::Filled, p("10.51"), Timestamp(63 * S)),
            ]
        );
        // A fresh last trade stands in where the quote is old.
        let fills = run(
            &mut ex,
            vec![
                trade(200 * S, "10.6", "5"),
                order(4, 201 * S, Side::Sell, "5", None, TimeInForce::Ioc),
            ],
        );
        assert_eq!(
            (fills[0].status, fills[0].price),
            (FillStatus::Filled, p("10.6"))
        );
    }

    #[test]
    fn refuses_bad_costs() {
        for cfg in [
            ExchangeConfig {
                slippage_bps: f64::NAN,
                ..ExchangeConfig::default()
            },
            ExchangeConfig {
                fee_bps: -1.0,
                ..ExchangeConfig::default()
            },
            ExchangeConfig {
                latency: Duration(-1),
                ..ExchangeConfig::default()
            },
            ExchangeConfig {
                max_quote_age: Some(Duration::ZERO),
                ..ExchangeConfig::default()
            },
        ] {
            assert!(SimExchange::new(cfg).is_err());
        }
    }

    #[test]
    fn working_orders_spread_over_another_number_of_workers_fill_as_on_one() {
        // Five instruments: quotes moving around 10, and limit orders (GTC, resting across the
        // checkpoint) and market orders.
        let mut rand = crate::adapter::test_checkpoints::xorshift(0x2545_f491_4f6c_dd1d);
        let mut id = 0;
        let steps: Vec<(Timestamp, Vec<ExchangeInput>)> = (0..300i64)
            .map(|k| {
                let t = 1_000 + k * 10;
                let inputs = (0..5u32)
                    .map(|inst| {
                        let mut x = if rand(3) == 0 {
                            id += 1;
                            let side = if rand(2) == 0 { Side::Buy } else { Side::Sell };
                            let limit = format!("{}", 9 + rand(3));
                            if rand(2) == 0 {
                                order(id, t, side, "3", Some(&limit), TimeInForce::Gtc)
                            } else {
                                order(id, t, side, "2", None, TimeInForce::Ioc)
                            }
                        } else {
                            let bid = format!("{}", 9 + rand(2));
                            let ask = format!("{}.5", 9 + rand(2));
                            quote(t, &bid, "2", &ask, "2")
                        };
                        match &mut x {
                            ExchangeInput::Quote(q) => q.instrument = InstrumentId(inst),
                            ExchangeInput::Order { order, .. } => {
                                order.instrument = InstrumentId(inst)
                            }
                            ExchangeInput::Trade(x) => x.instrument = InstrumentId(inst),
                        }
                        x
                    })
                    .collect();
                (Timestamp(t), inputs)
            })
            .collect();
        let n = crate::operator::rescale_check::rescaled_runs_as_one(
            || SimExchange::new(ExchangeConfig::default()).unwrap(),
            &steps,
            Timestamp(1_000 + 150 * 10 + 5),
        );
        assert!(n > 100, "{n} reports");
    }
}
