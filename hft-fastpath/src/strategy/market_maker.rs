//! A market maker: one bid and one ask around a fair value, skewed against inventory.
//!
//! Fair value is the microprice of the top level, `(bid·ask_size + ask·bid_size) / (bid_size +
//! ask_size)`. Quotes sit `half_spread` ticks either side of it, shifted by `skew` ticks per
//! order-size of inventory (long inventory lowers both quotes, so we sell more readily), rounded
//! outwards to the tick grid and never crossing the opposite best (quotes stay passive). A side
//! stops quoting at `max_inventory`. A quote more than `requote` ticks from where it should be is
//! canceled and replaced.

use tickflow_core::{Price, Quantity, Side};

use super::{Intent, Intents, MarketView, OwnState, Strategy, ceil_tick, floor_tick};
use crate::msg::OrderKind;

/// Parameters of [`MarketMaker`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MarketMakerConfig {
    /// Price grid.
    pub tick: Price,
    /// Quote size.
    pub qty: Quantity,
    /// Distance of each quote from fair value, in ticks.
    pub half_spread: i64,
    /// Shift of both quotes per `qty` of inventory, in ticks.
    pub skew: i64,
    /// Inventory at which the side that would add to it stops quoting.
    pub max_inventory: Quantity,
    /// Replace a quote once it is this many ticks from where it should be.
    pub requote: i64,
}

impl MarketMakerConfig {
    /// Defaults for a feed with this tick and quote size.
    pub fn new(tick: Price, qty: Quantity) -> Self {
        Self {
            tick,
            qty,
            half_spread: 1,
            skew: 1,
            max_inventory: Quantity::from_raw(qty.raw().saturating_mul(5)),
            requote: 2,
        }
    }
}

/// See the module documentation.
pub struct MarketMaker {
    cfg: MarketMakerConfig,
}

impl MarketMaker {
    /// A market maker.
    pub fn new(cfg: MarketMakerConfig) -> Self {
        Self { cfg }
    }

    /// Where the bid and ask should be now.
    pub fn targets(&self, view: &MarketView, position: i64) -> Option<(i64, i64)> {
        let (b, a) = view.tradable()?;
        let (bs, as_) = (b.size.raw() as i128, a.size.raw() as i128);
        if bs + as_ == 0 {
            return None;
        }
        let micro = (b.price.raw() as i128 * as_ + a.price.raw() as i128 * bs) / (bs + as_);
        let tick = self.cfg.tick.raw().max(1);
        let inv = position as i128 / self.cfg.qty.raw().max(1) as i128;
        let shift = -inv * self.cfg.skew as i128 * tick as i128;
        let center = (micro + shift) as i64;
        let half = self.cfg.half_spread * tick;
        let bid = floor_tick(center - half, tick).min(a.price.raw() - tick);
        let ask = ceil_tick(center + half, tick).max(b.price.raw() + tick);
        Some((bid, ask))
    }
}

impl Strategy for MarketMaker {
    fn on_update(&mut self, view: &MarketView, own: &OwnState, out: &mut Intents) {
        let Some((bid, ask)) = self.targets(view, own.position) else {
            return;
        };
        let tick = self.cfg.tick.raw().max(1);
        let max = self.cfg.max_inventory.raw();
        for (side, target, allowed) in [
            (Side::Buy, bid, own.position < max),
            (Side::Sell, ask, own.position > -max),
        ] {
            match own.quote(side) {
                Some(w) => {
                    let off = (w.price.raw() - target).abs();
                    if !allowed || off >= self.cfg.requote * tick {
                        out.push(Intent::Cancel { id: w.id });
                    }
                }
                None if allowed && own.working_qty(side) == 0 => {
                    out.push(Intent::New {
                        side,
                        price: Price::from_raw(target),
                        qty: self.cfg.qty,
                        kind: OrderKind::LimitGtc,
                    });
                }
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::LevelView;
    use crate::strategy::Working;

    fn view(bid: i64, bs: i64, ask: i64, as_: i64) -> MarketView {
        let mut v = MarketView {
            complete: true,
            n_bids: 1,
            n_asks: 1,
            ..MarketView::default()
        };
        v.bids[0] = LevelView {
            price: Price::from_raw(bid),
            size: Quantity::from_raw(bs),
            orders: 1,
        };
        v.asks[0] = LevelView {
            price: Price::from_raw(ask),
            size: Quantity::from_raw(as_),
            orders: 1,
        };
        v
    }

    fn mm() -> MarketMaker {
        MarketMaker::new(MarketMakerConfig::new(
            Price::from_raw(10),
            Quantity::from_raw(100),
        ))
    }

    #[test]
    fn quotes_around_the_microprice_and_skews_with_inventory() {
        let m = mm();
        // Wide market 1000 / 1100, balanced: microprice 1050, quotes 1040 / 1060.
        assert_eq!(m.targets(&view(1000, 5, 1100, 5), 0), Some((1040, 1060)));
        // Heavy bid: microprice moves up to 1090.
        assert_eq!(
            m.targets(&view(1000, 9, 1100, 1), 0),
            Some((1080, 1090 + 10))
        );
        // Long 3 units: both quotes 30 lower.
        assert_eq!(m.targets(&view(1000, 5, 1100, 5), 300), Some((1010, 1030)));
        // A one-tick market: both quotes a tick outside it.
        assert_eq!(m.targets(&view(1000, 5, 1010, 5), 0), Some((990, 1020)));
        // Long 10 units: the ask would fall through the bid; it stops a tick above it.
        assert_eq!(m.targets(&view(1000, 5, 1100, 5), 1000), Some((940, 1010)));
        // Crossed or one-sided books are not traded.
        assert_eq!(m.targets(&view(1100, 5, 1000, 5), 0), None);
    }

    #[test]
    fn places_cancels_and_stops_at_max_inventory() {
        let mut m = mm();
        let v = view(1000, 5, 1100, 5);
        let mut own = OwnState::default();
        let mut out = Intents::default();
        m.on_update(&v, &own, &mut out);
        assert_eq!(out.as_slice().len(), 2);
        own.add(Working {
            id: 1,
            side: Side::Buy,
            price: Price::from_raw(1040),
            leaves: Quantity::from_raw(100),
            canceling: false,
        });
        own.add(Working {
            id: 2,
            side: Side::Sell,
            price: Price::from_raw(1060),
            leaves: Quantity::from_raw(100),
            canceling: false,
        });
        out.clear();
        m.on_update(&v, &own, &mut out);
        assert!(out.as_slice().is_empty(), "quotes in place");
        own.position = 500;
        out.clear();
        m.on_update(&v, &own, &mut out);
        assert!(
            out.as_slice().contains(&Intent::Cancel { id: 1 }),
            "no more buying"
        );
    }
}
