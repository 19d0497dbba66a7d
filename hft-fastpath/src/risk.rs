//! Pre-trade risk of the fast path: O(1) checks on every new order, no locks, no allocation.
//!
//! In order: kill switch, max order size, price collar around the mid, max position (the
//! position plus everything working on the order's side, plus the order), and the order rate
//! (at most `max_orders` in any `rate_window_ns` of feed time, kept in a fixed ring of the last
//! `max_orders` send times). Cancels always pass: they only reduce risk.
//!
//! The kill switch is an [`AtomicBool`] shared with whoever controls the loop (another thread,
//! an operator command); the loop reads it with `Relaxed` ordering on each order: it guards no
//! other data, so it only has to become visible eventually, and it does within the next few
//! reads on every platform Rust supports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tickflow_core::{Price, Quantity, Side};

use crate::strategy::OwnState;

/// Limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RiskConfig {
    /// Largest order.
    pub max_order: Quantity,
    /// Largest absolute position, counting working orders.
    pub max_position: Quantity,
    /// Farthest a limit price may be from the mid, in basis points.
    pub collar_bps: i64,
    /// Orders allowed per window (at most [`RiskLimits::RATE_CAP`]).
    pub max_orders: usize,
    /// The window, in ns of feed time.
    pub rate_window_ns: u64,
}

impl RiskConfig {
    /// Limits sized for this order quantity.
    pub fn for_qty(qty: Quantity) -> Self {
        Self {
            max_order: Quantity::from_raw(qty.raw().saturating_mul(2)),
            max_position: Quantity::from_raw(qty.raw().saturating_mul(10)),
            collar_bps: 50,
            max_orders: 1_000,
            rate_window_ns: 1_000_000_000,
        }
    }
}

/// Why an order was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum RiskReject {
    /// The kill switch is on.
    KillSwitch = 0,
    /// Over the max order size (or not positive).
    OrderSize = 1,
    /// Outside the price collar, or no mid to check against.
    PriceCollar = 2,
    /// Would take the position past its limit.
    Position = 3,
    /// Too many orders in the window.
    Rate = 4,
}

impl RiskReject {
    /// All reasons, in check order.
    pub const ALL: [RiskReject; 5] = [
        RiskReject::KillSwitch,
        RiskReject::OrderSize,
        RiskReject::PriceCollar,
        RiskReject::Position,
        RiskReject::Rate,
    ];

    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskReject::KillSwitch => "kill_switch",
            RiskReject::OrderSize => "order_size",
            RiskReject::PriceCollar => "price_collar",
            RiskReject::Position => "position",
            RiskReject::Rate => "rate",
        }
    }
}

/// The checks, with their state.
pub struct RiskLimits {
    cfg: RiskConfig,
    kill: Arc<AtomicBool>,
    sent: [u64; Self::RATE_CAP],
    sent_len: usize,
    sent_next: usize,
    /// Rejects by reason ([`RiskReject`] as index).
    pub rejects: [u64; 5],
}

impl RiskLimits {
    /// Most orders a rate window can count.
    pub const RATE_CAP: usize = 1024;

    /// Checks with these limits and this kill switch.
    pub fn new(cfg: RiskConfig, kill: Arc<AtomicBool>) -> Self {
        Self {
            cfg: RiskConfig {
                max_orders: cfg.max_orders.clamp(1, Self::RATE_CAP),
                ..cfg
            },
            kill,
            sent: [0; Self::RATE_CAP],
            sent_len: 0,
            sent_next: 0,
            rejects: [0; 5],
        }
    }

    /// Checks a new order at feed time `now_ns` with the current mid; on success the order is
    /// counted against the rate limit.
    #[inline]
    pub fn check(
        &mut self,
        side: Side,
        price: Price,
        qty: Quantity,
        mid: Option<i64>,
        own: &OwnState,
        now_ns: u64,
    ) -> Result<(), RiskReject> {
        let r = self.evaluate(side, price, qty, mid, own, now_ns);
        match r {
            Ok(()) => {
                self.sent[self.sent_next] = now_ns;
                self.sent_next = (self.sent_next + 1) % self.cfg.max_orders;
                self.sent_len = (self.sent_len + 1).min(self.cfg.max_orders);
            }
            Err(why) => self.rejects[why as usize] += 1,
        }
        r
    }

    #[inline]
    fn evaluate(
        &self,
        side: Side,
        price: Price,
        qty: Quantity,
        mid: Option<i64>,
        own: &OwnState,
        now_ns: u64,
    ) -> Result<(), RiskReject> {
        if self.kill.load(Ordering::Relaxed) {
            return Err(RiskReject::KillSwitch);
        }
        let q = qty.raw();
        if q <= 0 || q > self.cfg.max_order.raw() {
            return Err(RiskReject::OrderSize);
        }
        let mid = mid.ok_or(RiskReject::PriceCollar)? as i128;
        let off = (price.raw() as i128 - mid).abs();
        if off * 10_000 > mid.abs() * self.cfg.collar_bps as i128 {
            return Err(RiskReject::PriceCollar);
        }
        let worst = match side {
            Side::Buy => own.position as i128 + own.working_qty(Side::Buy) as i128 + q as i128,
            Side::Sell => -(own.position as i128) + own.working_qty(Side::Sell) as i128 + q as i128,
            Side::None => return Err(RiskReject::OrderSize),
        };
        if worst > self.cfg.max_position.raw() as i128 {
            return Err(RiskReject::Position);
        }
        if self.sent_len == self.cfg.max_orders {
            // The oldest of the last `max_orders` sends is the next slot to be overwritten.
            let oldest = self.sent[self.sent_next];
            if now_ns.saturating_sub(oldest) < self.cfg.rate_window_ns {
                return Err(RiskReject::Rate);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::Working;

    fn limits() -> (RiskLimits, Arc<AtomicBool>) {
        let kill = Arc::new(AtomicBool::new(false));
        let cfg = RiskConfig {
            max_order: Quantity::from_raw(10),
            max_position: Quantity::from_raw(20),
            collar_bps: 100,
            max_orders: 3,
            rate_window_ns: 1_000,
        };
        (RiskLimits::new(cfg, kill.clone()), kill)
    }

    const MID: Option<i64> = Some(10_000);

    fn px(x: i64) -> Price {
        Price::from_raw(x)
    }

    fn q(x: i64) -> Quantity {
        Quantity::from_raw(x)
    }

    #[test]
    fn each_limit_refuses_with_its_reason() {
        let (mut r, kill) = limits();
        let own = OwnState::default();
        assert_eq!(
            r.check(Side::Buy, px(10_000), q(11), MID, &own, 0),
            Err(RiskReject::OrderSize)
        );
        assert_eq!(
            r.check(Side::Buy, px(10_101), q(5), MID, &own, 0),
            Err(RiskReject::PriceCollar)
        );
        assert_eq!(
            r.check(Side::Buy, px(10_000), q(5), None, &own, 0),
            Err(RiskReject::PriceCollar),
            "no mid, no order"
        );
        let mut long = OwnState {
            position: 15,
            ..OwnState::default()
        };
        assert_eq!(
            r.check(Side::Buy, px(10_000), q(6), MID, &long, 0),
            Err(RiskReject::Position)
        );
        assert!(
            r.check(Side::Sell, px(10_000), q(10), MID, &long, 0)
                .is_ok()
        );
        long.add(Working {
            id: 1,
            side: Side::Buy,
            price: px(9_990),
            leaves: q(5),
            canceling: false,
        });
        assert_eq!(
            r.check(Side::Buy, px(10_000), q(1), MID, &long, 0),
            Err(RiskReject::Position),
            "working orders count"
        );
        kill.store(true, Ordering::Relaxed);
        assert_eq!(
            r.check(Side::Buy, px(10_000), q(1), MID, &own, 0),
            Err(RiskReject::KillSwitch)
        );
        assert_eq!(r.rejects, [1, 1, 2, 2, 0]);
    }

    #[test]
    fn order_rate_is_a_sliding_window() {
        let (mut r, _) = limits();
        let own = OwnState::default();
        let send = |r: &mut RiskLimits, t| r.check(Side::Buy, px(10_000), q(1), MID, &own, t);
        assert!(send(&mut r, 0).is_ok());
        assert!(send(&mut r, 100).is_ok());
        assert!(send(&mut r, 200).is_ok());
        assert_eq!(send(&mut r, 999), Err(RiskReject::Rate));
        assert!(send(&mut r, 1_000).is_ok(), "the first left the window");
        assert_eq!(send(&mut r, 1_050), Err(RiskReject::Rate));
        assert!(send(&mut r, 1_100).is_ok());
    }
}
