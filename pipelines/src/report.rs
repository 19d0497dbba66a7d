//! The trading part of a run's summary: orders, fills, risk rejects, final positions and PnL,
//! and the backtest report (total return, Sharpe, max drawdown, win rate, turnover, fees).
//!
//! Worker 0 feeds a [`ReportBuilder`] from the ordered sinks of the fills, positions, portfolio
//! and risk-rejects streams, so the report is the same for any number of workers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use tickflow_core::{
    Fill, FillStatus, Order, PortfolioValue, Position, Price, Quantity, RiskReason, TimeInForce,
    exact_notional, money_to_exact, round_money,
};
use tickflow_operators::portfolio::Holding;

/// Equity is sampled once per minute of event time for Sharpe and drawdown.
const SAMPLE: i64 = 60_000_000_000;
const DAY: i64 = 86_400_000_000_000;

/// Collects the trading streams of one run: one [`Tally`] per stream, merged by
/// [`ReportBuilder::finish`].
#[derive(Debug, Default)]
pub struct ReportBuilder {
    capital: Price,
    tallies: BTreeMap<String, Tally>,
}

/// What the report keeps of one stream. Each stream's tally changes only with that stream's
/// records, so it can be checkpointed on its own when its stream passes a checkpoint time
/// ([`Tally::snapshot`]), whatever the other streams have reached by then.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Tally {
    orders: u64,
    executions: u64,
    canceled: u64,
    risk_rejects: BTreeMap<RiskReason, u64>,
    holdings: BTreeMap<u32, Holding>,
    closing: u64,
    winning: u64,
    traded: i128,
    fees: i128,
    positions: BTreeMap<u32, (String, Position)>,
    last_value: Option<PortfolioValue>,
    /// Last total PnL (raw) of each sampled minute.
    samples: Vec<(i64, i64)>,
    /// GTC orders by id, with their quantity.
    gtc: BTreeMap<u64, Quantity>,
    /// What the latest report of a partly filled order left working.
    leaves: BTreeMap<u64, Quantity>,
    /// Orders whose last report came in (filled, or the rest canceled).
    done: BTreeSet<u64>,
}

impl ReportBuilder {
    /// A builder for a portfolio with this capital.
    pub fn new(capital: Price) -> Self {
        Self {
            capital,
            tallies: BTreeMap::new(),
        }
    }
    /// The tally of stream `stream`.
    pub fn stream(&mut self, stream: &str) -> &mut Tally {
        self.tallies.entry(stream.to_owned()).or_default()
    }
}

impl Tally {
    /// An order passed risk.
    pub fn order(&mut self, o: &Order) {
        self.orders += 1;
        if o.tif == TimeInForce::Gtc {
            self.gtc.insert(o.id, o.quantity);
        }
    }
    /// An order was refused.
    pub fn reject(&mut self, reason: RiskReason) {
        *self.risk_rejects.entry(reason).or_default() += 1;
    }
    /// An execution report, in execution order.
    pub fn fill(&mut self, f: &Fill) {
        // The streams reach the builder separately, so an order's reports may come before the
        // order itself: what is still working is worked out at the end.
        if f.status == FillStatus::Canceled || f.leaves.is_zero() {
            self.done.insert(f.order_id);
            self.leaves.remove(&f.order_id);
        } else {
            self.leaves.insert(f.order_id, f.leaves);
        }
        if f.status == FillStatus::Canceled {
            self.canceled += 1;
            return;
        }
        self.executions += 1;
        self.traded += exact_notional(f.price, f.quantity);
        self.fees += money_to_exact(f.fee);
        let h = self.holdings.entry(f.instrument.0).or_default();
        let before = h.cash + h.cost;
        let reducing = h.quantity != 0 && (h.quantity > 0) != (f.signed_quantity() > 0);
        h.apply(f.signed_quantity(), f.price, Price::ZERO);
        if reducing {
            self.closing += 1;
            if h.cash + h.cost > before {
                self.winning += 1;
            }
        }
    }
    /// A position valuation, in event-time order.
    pub fn position(&mut self, symbol: &str, p: &Position) {
        self.positions
            .insert(p.instrument.0, (symbol.to_owned(), p.clone()));
    }
    /// A portfolio valuation, in event-time order.
    pub fn value(&mut self, v: &PortfolioValue) {
        let bucket = v.ts_event.nanos().div_euclid(SAMPLE);
        match self.samples.last_mut() {
            Some((b, pnl)) if *b == bucket => *pnl = v.total_pnl.raw(),
            _ => self.samples.push((bucket, v.total_pnl.raw())),
        }
        self.last_value = Some(v.clone());
    }
    /// The tally as bytes, for a checkpoint.
    pub fn snapshot(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }
    /// A tally a checkpoint holds.
    pub fn restore(bytes: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(bytes)
    }
    /// Adds `other`'s counts and records to this one's (the report reads one portfolio, so at
    /// most one tally has valuations).
    fn absorb(&mut self, other: Tally) {
        self.orders += other.orders;
        self.executions += other.executions;
        self.canceled += other.canceled;
        for (reason, n) in other.risk_rejects {
            *self.risk_rejects.entry(reason).or_default() += n;
        }
        self.closing += other.closing;
        self.winning += other.winning;
        self.traded += other.traded;
        self.fees += other.fees;
        self.positions.extend(other.positions);
        if other.last_value.is_some() {
            self.last_value = other.last_value;
            self.samples = other.samples;
        }
        self.gtc.extend(other.gtc);
        self.leaves.extend(other.leaves);
        self.done.extend(other.done);
    }
}

impl ReportBuilder {
    /// The report.
    pub fn finish(self) -> TradingReport {
        let mut all = Tally::default();
        for tally in self.tallies.into_values() {
            all.absorb(tally);
        }
        let capital_price = self.capital;
        all.report(capital_price)
    }
}

impl Tally {
    fn report(self, capital_price: Price) -> TradingReport {
        let capital = capital_price.to_f64().max(f64::MIN_POSITIVE);
        let equity = |pnl: i64| capital + Price::from_raw(pnl).to_f64();
        // One equity value per minute from the first sample to the last (unchanged minutes
        // repeat the previous value, a zero return).
        let mut curve = Vec::new();
        let mut last = None;
        for &(bucket, pnl) in &self.samples {
            if let Some((b, e)) = last {
                for _ in b + 1..bucket {
                    curve.push(e);
                }
            }
            curve.push(equity(pnl));
            last = Some((bucket, equity(pnl)));
        }
        let returns: Vec<f64> = curve.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
        let sharpe = (returns.len() >= 2).then(|| {
            let n = returns.len() as f64;
            let mean = returns.iter().sum::<f64>() / n;
            let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
            // Annualized over 252 days of as many minutes per day as the data has.
            let (first, last) = (self.samples[0].0, self.samples[self.samples.len() - 1].0);
            let days = ((last - first) * SAMPLE / DAY + 1) as f64;
            let per_day = (curve.len() as f64 / days).min((DAY / SAMPLE) as f64);
            if var > 0.0 {
                mean / var.sqrt() * (252.0 * per_day).sqrt()
            } else {
                0.0
            }
        });
        let mut peak = capital;
        let mut max_dd: f64 = 0.0;
        for &e in std::iter::once(&capital).chain(&curve) {
            peak = peak.max(e);
            max_dd = max_dd.max((peak - e) / peak);
        }
        let total_pnl = self
            .last_value
            .as_ref()
            .map_or(Price::ZERO, |v| v.total_pnl);
        let open_orders = self
            .gtc
            .iter()
            .filter(|(id, _)| !self.done.contains(id))
            .map(|(id, q)| (*id, self.leaves.get(id).copied().unwrap_or(*q)))
            .collect();
        TradingReport {
            open_orders,
            capital: capital_price,
            orders: self.orders,
            executions: self.executions,
            canceled: self.canceled,
            risk_rejects: self.risk_rejects,
            positions: self.positions.into_values().collect(),
            final_value: self.last_value,
            total_return: total_pnl.to_f64() / capital,
            sharpe,
            max_drawdown: max_dd,
            win_rate: (self.closing > 0).then(|| self.winning as f64 / self.closing as f64),
            round_trips: self.closing,
            turnover: round_money(self.traded).to_f64() / capital,
            traded: round_money(self.traded),
            fees: round_money(self.fees),
        }
    }
}

/// Orders, fills, positions and the backtest figures of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct TradingReport {
    /// GTC orders still working when the data ended (id, quantity left): a replay does not
    /// cancel them; they would go on working in a live run.
    pub open_orders: Vec<(u64, Quantity)>,
    /// Capital returns are relative to.
    pub capital: Price,
    /// Orders that passed risk.
    pub orders: u64,
    /// Executions (fills with a quantity).
    pub executions: u64,
    /// IOC remainders canceled.
    pub canceled: u64,
    /// Orders refused by risk, by reason.
    pub risk_rejects: BTreeMap<RiskReason, u64>,
    /// Final position of every instrument traded, with its symbol.
    pub positions: Vec<(String, Position)>,
    /// The last portfolio valuation.
    pub final_value: Option<PortfolioValue>,
    /// Total PnL / capital.
    pub total_return: f64,
    /// Annualized Sharpe ratio of minute returns (None with fewer than three minutes).
    pub sharpe: Option<f64>,
    /// Largest fall of equity from a peak, as a fraction of the peak.
    pub max_drawdown: f64,
    /// Share of position-reducing fills that realized a profit.
    pub win_rate: Option<f64>,
    /// Position-reducing fills.
    pub round_trips: u64,
    /// Traded notional / capital.
    pub turnover: f64,
    /// Traded notional.
    pub traded: Price,
    /// Fees paid.
    pub fees: Price,
}

impl fmt::Display for TradingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rejects: u64 = self.risk_rejects.values().sum();
        writeln!(
            f,
            "orders          {:>14}   (fills {}, IOC canceled {}, risk rejects {})",
            self.orders, self.executions, self.canceled, rejects
        )?;
        for (reason, n) in &self.risk_rejects {
            writeln!(f, "  {:<22}{:>10}", reason.as_str(), n)?;
        }
        if !self.open_orders.is_empty() {
            let shown: Vec<String> = self
                .open_orders
                .iter()
                .take(5)
                .map(|(id, q)| format!("#{id} {q}"))
                .collect();
            writeln!(
                f,
                "open at end     {:>14}   GTC orders still working: {}{}",
                self.open_orders.len(),
                shown.join(", "),
                if self.open_orders.len() > 5 {
                    ", ..."
                } else {
                    ""
                }
            )?;
        }
        if !self.positions.is_empty() {
            writeln!(
                f,
                "positions       {:<10} {:>12} {:>12} {:>12} {:>14} {:>12} {:>12} {:>10}",
                "symbol",
                "quantity",
                "avg price",
                "mark",
                "value",
                "realized",
                "unrealized",
                "fees"
            )?;
            for (sym, p) in &self.positions {
                writeln!(
                    f,
                    "                {:<10} {:>12} {:>12} {:>12} {:>14} {:>12} {:>12} {:>10}",
                    sym,
                    p.quantity.to_string(),
                    p.avg_price.to_string(),
                    p.mark.to_string(),
                    p.market_value.to_string(),
                    p.realized_pnl.to_string(),
                    p.unrealized_pnl.to_string(),
                    p.fees.to_string()
                )?;
            }
        }
        if let Some(v) = &self.final_value {
            writeln!(
                f,
                "pnl             {:>14}   (realized {}, unrealized {}, fees {}; net exposure {}, gross {})",
                v.total_pnl.to_string(),
                v.realized_pnl,
                v.unrealized_pnl,
                v.fees,
                v.net_exposure,
                v.gross_exposure
            )?;
        }
        writeln!(
            f,
            "backtest        return {:+.4}% on {}  Sharpe {}  max drawdown {:.4}%  win rate {}  turnover {:.3}x ({})  fees {}",
            self.total_return * 100.0,
            self.capital,
            self.sharpe
                .map_or_else(|| "n/a".to_owned(), |s| format!("{s:.2}")),
            self.max_drawdown * 100.0,
            self.win_rate.map_or_else(
                || "n/a".to_owned(),
                |w| format!("{:.1}% of {}", w * 100.0, self.round_trips)
            ),
            self.turnover,
            self.traded,
            self.fees
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickflow_core::{InstrumentId, Quantity, Side, Timestamp};

    fn fill(id: u64, side: Side, qty: &str, price: &str) -> Fill {
        Fill {
            order_id: id,
            exec: 0,
            instrument: InstrumentId(0),
            ts_event: Timestamp(id as i64),
            side,
            price: Price::parse(price).unwrap(),
            quantity: Quantity::parse(qty).unwrap(),
            fee: Price::parse("1").unwrap(),
            leaves: Quantity::ZERO,
            status: FillStatus::Filled,
        }
    }

    fn value(minute: i64, pnl: &str) -> PortfolioValue {
        PortfolioValue {
            ts_event: Timestamp(minute * SAMPLE),
            net_exposure: Price::ZERO,
            gross_exposure: Price::ZERO,
            realized_pnl: Price::ZERO,
            unrealized_pnl: Price::ZERO,
            fees: Price::ZERO,
            total_pnl: Price::parse(pnl).unwrap(),
            open_positions: 0,
        }
    }

    #[test]
    fn win_rate_turnover_and_drawdown() {
        let mut b = ReportBuilder::new(Price::parse("1000").unwrap());
        let fills = b.stream("fills");
        fills.fill(&fill(1, Side::Buy, "10", "10"));
        fills.fill(&fill(2, Side::Sell, "5", "12")); // win
        fills.fill(&fill(3, Side::Sell, "5", "9")); // loss
        fills.fill(&fill(4, Side::Buy, "10", "10"));
        fills.fill(&fill(5, Side::Sell, "10", "11")); // win
        for (m, pnl) in [(0, "0"), (1, "100"), (2, "50"), (4, "-10"), (5, "20")] {
            b.stream("portfolio").value(&value(m, pnl));
        }
        let r = b.finish();
        assert_eq!(r.round_trips, 3);
        assert_eq!(r.win_rate, Some(2.0 / 3.0));
        assert_eq!(r.traded, Price::parse("415").unwrap());
        assert!((r.turnover - 0.415).abs() < 1e-12);
        assert_eq!(r.fees, Price::parse("5").unwrap());
        // Peak 1100, trough 990: drawdown 10 %.
        assert!((r.max_drawdown - 0.1).abs() < 1e-12, "{}", r.max_drawdown);
        assert!((r.total_return - 0.02).abs() < 1e-12);
        assert!(r.sharpe.is_some());
    }

    #[test]
    fn a_report_resumed_from_its_tallies_is_the_uninterrupted_one() {
        let fills = [
            fill(1, Side::Buy, "10", "10"),
            fill(2, Side::Sell, "5", "12"),
            fill(3, Side::Sell, "5", "9"),
            fill(4, Side::Buy, "10", "10"),
            fill(5, Side::Sell, "10", "11"),
        ];
        let values = [(0, "0"), (1, "100"), (2, "50"), (4, "-10"), (5, "20")];
        let feed = |b: &mut ReportBuilder, k: std::ops::Range<usize>| {
            for i in k {
                if let Some(f) = fills.get(i) {
                    b.stream("fills").fill(f);
                }
                if let Some((m, pnl)) = values.get(i) {
                    b.stream("portfolio").value(&value(*m, pnl));
                }
            }
        };
        let capital = Price::parse("1000").unwrap();
        let mut whole = ReportBuilder::new(capital);
        feed(&mut whole, 0..5);
        let whole = whole.finish();
        // Stopped after the second fill (a winning reduce), whose holding the rest needs.
        let mut first = ReportBuilder::new(capital);
        feed(&mut first, 0..2);
        let mut resumed = ReportBuilder::new(capital);
        for stream in ["fills", "portfolio"] {
            let bytes = first.stream(stream).snapshot().unwrap();
            *resumed.stream(stream) = Tally::restore(&bytes).unwrap();
        }
        feed(&mut resumed, 2..5);
        assert_eq!(resumed.finish(), whole);
        assert!(Tally::restore(b"{\"orders\": -1}").is_err());
    }
}
