//! A book-imbalance taker: when the resting size of the top `levels` levels leans far enough to
//! one side, buy (or sell) at the opposite best with an IOC order, expecting the price to move
//! toward the heavy side. Imbalance is `(bid_size − ask_size) / (bid_size + ask_size)` in
//! thousandths. Position is kept within `max_position`, and no order follows another within
//! `cooldown_ns` of feed time.

use tickflow_core::{Quantity, Side};

use super::{DEPTH, Intent, Intents, MarketView, OwnState, Strategy};
use crate::msg::OrderKind;

/// Parameters of [`ImbalanceTaker`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImbalanceConfig {
    /// Order size.
    pub qty: Quantity,
    /// Levels summed on each side (at most [`DEPTH`]).
    pub levels: usize,
    /// Imbalance, in thousandths, that triggers an order.
    pub threshold: i64,
    /// Largest absolute position.
    pub max_position: Quantity,
    /// Feed time between two orders.
    pub cooldown_ns: u64,
}

impl ImbalanceConfig {
    /// Defaults for this order size.
    pub fn new(qty: Quantity) -> Self {
        Self {
            qty,
            levels: 1,
            threshold: 500,
            max_position: Quantity::from_raw(qty.raw().saturating_mul(5)),
            cooldown_ns: 1_000_000,
        }
    }
}

/// See the module documentation.
pub struct ImbalanceTaker {
    cfg: ImbalanceConfig,
    last_order_ns: Option<u64>,
}

impl ImbalanceTaker {
    /// An imbalance taker.
    pub fn new(cfg: ImbalanceConfig) -> Self {
        Self {
            cfg,
            last_order_ns: None,
        }
    }

    /// Imbalance of the top levels in thousandths, when the book is tradable.
    pub fn imbalance(&self, view: &MarketView) -> Option<i64> {
        view.tradable()?;
        let n = self.cfg.levels.clamp(1, DEPTH);
        let b: i128 = view.bids[..(view.n_bids as usize).min(n)]
            .iter()
            .map(|l| l.size.raw() as i128)
            .sum();
        let a: i128 = view.asks[..(view.n_asks as usize).min(n)]
            .iter()
            .map(|l| l.size.raw() as i128)
            .sum();
        (a + b > 0).then(|| ((b - a) * 1000 / (a + b)) as i64)
    }
}

impl Strategy for ImbalanceTaker {
    fn on_update(&mut self, view: &MarketView, own: &OwnState, out: &mut Intents) {
        let Some(imb) = self.imbalance(view) else {
            return;
        };
        if self
            .last_order_ns
            .is_some_and(|t| view.ts_ns < t.saturating_add(self.cfg.cooldown_ns))
        {
            return;
        }
        let (b, a) = (view.bids[0], view.asks[0]);
        let max = self.cfg.max_position.raw();
        let q = self.cfg.qty.raw();
        let pending = own.working_qty(Side::Buy) - own.working_qty(Side::Sell);
        let pos = own.position + pending;
        let (side, price) = if imb >= self.cfg.threshold && pos + q <= max {
            (Side::Buy, a.price)
        } else if imb <= -self.cfg.threshold && pos - q >= -max {
            (Side::Sell, b.price)
        } else {
            return;
        };
        if out.push(Intent::New {
            side,
            price,
            qty: self.cfg.qty,
            kind: OrderKind::LimitIoc,
        }) {
            self.last_order_ns = Some(view.ts_ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::LevelView;
    use tickflow_core::Price;

    fn view(ts: u64, bs: i64, as_: i64) -> MarketView {
        let mut v = MarketView {
            ts_ns: ts,
            complete: true,
            n_bids: 1,
            n_asks: 1,
            ..MarketView::default()
        };
        v.bids[0] = LevelView {
            price: Price::from_raw(100),
            size: Quantity::from_raw(bs),
            orders: 1,
        };
        v.asks[0] = LevelView {
            price: Price::from_raw(101),
            size: Quantity::from_raw(as_),
            orders: 1,
        };
        v
    }

    #[test]
    fn takes_the_light_side_within_limits_and_cooldown() {
        let mut cfg = ImbalanceConfig::new(Quantity::from_raw(10));
        cfg.max_position = Quantity::from_raw(10);
        let mut t = ImbalanceTaker::new(cfg);
        let mut own = OwnState::default();
        let mut out = Intents::default();
        t.on_update(&view(0, 90, 10), &own, &mut out);
        assert_eq!(
            out.as_slice(),
            [Intent::New {
                side: Side::Buy,
                price: Price::from_raw(101),
                qty: Quantity::from_raw(10),
                kind: OrderKind::LimitIoc
            }]
        );
        out.clear();
        t.on_update(&view(10, 90, 10), &own, &mut out);
        assert!(out.as_slice().is_empty(), "cooldown");
        own.position = 10;
        t.on_update(&view(5_000_000, 90, 10), &own, &mut out);
        assert!(out.as_slice().is_empty(), "at max position");
        t.on_update(&view(6_000_000, 10, 90), &own, &mut out);
        assert!(matches!(
            out.as_slice(),
            [Intent::New {
                side: Side::Sell,
                ..
            }]
        ));
        out.clear();
        t.on_update(&view(9_000_000, 50, 50), &own, &mut out);
        assert!(out.as_slice().is_empty(), "balanced book");
    }
}
