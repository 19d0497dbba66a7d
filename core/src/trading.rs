//! Records of the trading chain: orders, risk rejects, fills, positions and portfolio totals.
//!
//! Money on the order path is exact: a notional `price * quantity` is an `i128` in units of
//! `10^-18` ([`exact_notional`]) and is rounded to a [`Price`] (9 decimals) only when it is
//! reported ([`round_money`]).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::fixed::{FIXED_SCALE, Price, Quantity};
use crate::instrument::InstrumentId;
use crate::records::Side;
use crate::time::Timestamp;

/// `price * quantity` exactly, in units of `10^-18`.
pub fn exact_notional(price: Price, qty: Quantity) -> i128 {
    i128::from(price.raw()) * i128::from(qty.raw())
}

/// A money amount in units of `10^-9` (a [`Price`] raw value) as units of `10^-18`.
pub fn money_to_exact(m: Price) -> i128 {
    i128::from(m.raw()) * i128::from(FIXED_SCALE)
}

/// Rounds an exact amount (units of `10^-18`) half away from zero to a [`Price`]; saturates at
/// the representable range.
pub fn round_money(exact: i128) -> Price {
    let scale = i128::from(FIXED_SCALE);
    let half = scale / 2;
    let q = if exact >= 0 {
        (exact + half) / scale
    } else {
        (exact - half) / scale
    };
    Price::from_raw(q.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

/// Market or limit.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Debug, Default)]
#[serde(rename_all = "lowercase")]
pub enum OrderType {
    /// Executes against the best opposite quote.
    #[default]
    Market,
    /// Executes at the limit price or better.
    Limit,
}

impl OrderType {
    /// Stable text name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Market => "market",
            OrderType::Limit => "limit",
        }
    }
    /// Parses [`OrderType::as_str`] output.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "market" => Some(OrderType::Market),
            "limit" => Some(OrderType::Limit),
            _ => None,
        }
    }
}

/// How long an order stays working.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Debug, Default)]
#[serde(rename_all = "lowercase")]
pub enum TimeInForce {
    /// Immediate or cancel: what does not fill on arrival is canceled.
    #[default]
    Ioc,
    /// Good till canceled: the rest works until it fills.
    Gtc,
}

impl TimeInForce {
    /// Stable text name.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeInForce::Ioc => "ioc",
            TimeInForce::Gtc => "gtc",
        }
    }
    /// Parses [`TimeInForce::as_str`] output.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "ioc" => Some(TimeInForce::Ioc),
            "gtc" => Some(TimeInForce::Gtc),
            _ => None,
        }
    }
}

/// An order that passed pre-trade risk, on its way to the exchange.
#[derive(Clone, PartialEq, Serialize, Deserialize, Debug)]
pub struct Order {
    /// Unique, increasing order id.
    pub id: u64,
    /// Instrument.
    pub instrument: InstrumentId,
    /// When the order was created (the signal's event time).
    pub ts_event: Timestamp,
    /// Buy or sell.
    pub side: Side,
    /// Market or limit.
    pub order_type: OrderType,
    /// IOC or GTC.
    pub tif: TimeInForce,
    /// Limit price (`None` for market orders).
    pub limit: Option<Price>,
    /// Quantity, positive.
    pub quantity: Quantity,
    /// The last trade price risk checked the order against.
    pub reference: Price,
    /// What caused the order (the signal's reason).
    pub reason: Arc<str>,
}

/// Why pre-trade risk refused an order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
pub enum RiskReason {
    /// The kill switch is engaged.
    KillSwitch,
    /// The daily loss limit was hit; only orders that reduce a position pass.
    DailyLossLimit,
    /// Larger than the maximum order size.
    MaxOrderSize,
    /// Too many orders for this instrument within the rate window.
    MaxOrderRate,
    /// No trade price known yet for the instrument.
    NoReferencePrice,
    /// The order's price is outside the band around the last trade.
    PriceBand,
    /// The position (with open orders) would exceed the maximum per instrument.
    MaxPosition,
    /// Gross notional (with open orders) would exceed the maximum.
    MaxGrossNotional,
    /// Net notional (with open orders) would exceed the maximum.
    MaxNetNotional,
}

impl RiskReason {
    /// Every reason, in report order.
    pub const ALL: [RiskReason; 9] = [
        RiskReason::KillSwitch,
        RiskReason::DailyLossLimit,
        RiskReason::MaxOrderSize,
        RiskReason::MaxOrderRate,
        RiskReason::NoReferencePrice,
        RiskReason::PriceBand,
        RiskReason::MaxPosition,
        RiskReason::MaxGrossNotional,
        RiskReason::MaxNetNotional,
    ];
    /// Stable text name.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskReason::KillSwitch => "kill_switch",
            RiskReason::DailyLossLimit => "daily_loss_limit",
            RiskReason::MaxOrderSize => "max_order_size",
            RiskReason::MaxOrderRate => "max_order_rate",
            RiskReason::NoReferencePrice => "no_reference_price",
            RiskReason::PriceBand => "price_band",
            RiskReason::MaxPosition => "max_position",
            RiskReason::MaxGrossNotional => "max_gross_notional",
            RiskReason::MaxNetNotional => "max_net_notional",
        }
    }
    /// Parses [`RiskReason::as_str`] output.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for RiskReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order refused by pre-trade risk, with the reason and the numbers behind it.
#[derive(Clone, PartialEq, Serialize, Deserialize, Debug)]
pub struct RiskReject {
    /// The order as it would have been sent.
    pub order: Order,
    /// The limit it breached.
    pub reason: RiskReason,
    /// The numbers, e.g. `position 900 + 200 > max 1000`.
    pub detail: String,
}

/// What an execution report says happened.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
pub enum FillStatus {
    /// Part of the order filled; `leaves` is still working.
    Partial,
    /// The order is completely filled.
    Filled,
    /// The rest of the order was canceled unfilled (IOC without enough liquidity); the
    /// report's quantity is zero.
    Canceled,
}

impl FillStatus {
    /// Stable text name.
    pub fn as_str(self) -> &'static str {
        match self {
            FillStatus::Partial => "partial",
            FillStatus::Filled => "filled",
            FillStatus::Canceled => "canceled",
        }
    }
    /// Parses [`FillStatus::as_str`] output.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "partial" => Some(FillStatus::Partial),
            "filled" => Some(FillStatus::Filled),
            "canceled" => Some(FillStatus::Canceled),
            _ => None,
        }
    }
}

/// An execution report from the (simulated) exchange: a fill, or the cancel of what is left.
#[derive(Clone, PartialEq, Serialize, Deserialize, Debug)]
pub struct Fill {
    /// The order.
    pub order_id: u64,
    /// Execution sequence within the order (0, 1, ...).
    pub exec: u32,
    /// Instrument.
    pub instrument: InstrumentId,
    /// When it happened at the exchange.
    pub ts_event: Timestamp,
    /// The order's side.
    pub side: Side,
    /// Execution price (zero for a cancel).
    pub price: Price,
    /// Executed quantity (zero for a cancel).
    pub quantity: Quantity,
    /// Fee charged for this execution.
    pub fee: Price,
    /// Quantity still working after this report.
    pub leaves: Quantity,
    /// Partial, filled or canceled.
    pub status: FillStatus,
}

impl Fill {
    /// Signed quantity: positive for buys.
    pub fn signed_quantity(&self) -> i64 {
        match self.side {
            Side::Sell => -self.quantity.raw(),
            _ => self.quantity.raw(),
        }
    }
}

/// One instrument's position and its valuation at the latest price.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Debug)]
pub struct Position {
    /// Instrument.
    pub instrument: InstrumentId,
    /// Event time of the valuation.
    pub ts_event: Timestamp,
    /// Signed quantity: positive long, negative short.
    pub quantity: Quantity,
    /// Average entry price of the open quantity (zero when flat).
    pub avg_price: Price,
    /// The price the position is marked at (the last trade known).
    pub mark: Price,
    /// `quantity * mark`.
    pub market_value: Price,
    /// PnL of closed quantity, before fees.
    pub realized_pnl: Price,
    /// PnL of the open quantity at the mark.
    pub unrealized_pnl: Price,
    /// Fees paid.
    pub fees: Price,
    /// Number of fills.
    pub fills: u64,
}

/// The whole portfolio at one event time.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Debug)]
pub struct PortfolioValue {
    /// Event time of the valuation.
    pub ts_event: Timestamp,
    /// Sum of market values.
    pub net_exposure: Price,
    /// Sum of absolute market values.
    pub gross_exposure: Price,
    /// Realized PnL before fees.
    pub realized_pnl: Price,
    /// Unrealized PnL.
    pub unrealized_pnl: Price,
    /// Fees paid.
    pub fees: Price,
    /// Realized + unrealized − fees.
    pub total_pnl: Price,
    /// Instruments with a non-zero position.
    pub open_positions: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_rounds_half_away_from_zero() {
        let p = Price::parse("100.123456789").unwrap();
        let q = Quantity::parse("0.5").unwrap();
        let exact = exact_notional(p, q);
        assert_eq!(exact, 100_123_456_789i128 * 500_000_000);
        assert_eq!(round_money(exact), Price::parse("50.061728395").unwrap()); // .5 rounds up
        assert_eq!(round_money(-exact), Price::parse("-50.061728395").unwrap());
        assert_eq!(money_to_exact(Price::parse("1").unwrap()), 10i128.pow(18));
    }

    #[test]
    fn names_round_trip() {
        for r in RiskReason::ALL {
            assert_eq!(RiskReason::from_name(r.as_str()), Some(r));
        }
        for s in [
            FillStatus::Partial,
            FillStatus::Filled,
            FillStatus::Canceled,
        ] {
            assert_eq!(FillStatus::from_name(s.as_str()), Some(s));
        }
        assert_eq!(OrderType::from_name("limit"), Some(OrderType::Limit));
        assert_eq!(TimeInForce::from_name("gtc"), Some(TimeInForce::Gtc));
        assert_eq!(TimeInForce::from_name("day"), None);
    }
}
