//! Strategies: what to quote or take after each book update.
//!
//! A strategy sees a [`MarketView`] (the top [`DEPTH`] levels of each side, copied out of the
//! book, so the same strategy runs fused with the book or on another thread behind a ring) and
//! its own state ([`OwnState`]: position and working orders, kept from the venue's reports), and
//! writes up to [`Intents::CAP`] intents. Nothing here allocates.
//!
//! Layout:
//! - `market_maker`: quotes around the microprice, skewed by inventory.
//! - `imbalance`: takes liquidity when the top of book is lopsided.

pub mod imbalance;
pub mod market_maker;

use tickflow_core::{Price, Quantity, Side};

use crate::book::{LevelView, OrderBook};
use crate::msg::OrderKind;

pub use imbalance::{ImbalanceConfig, ImbalanceTaker};
pub use market_maker::{MarketMaker, MarketMakerConfig};

/// Levels per side in a [`MarketView`].
pub const DEPTH: usize = 5;

/// The top of the book after one feed event.
#[derive(Clone, Copy, Debug, Default)]
pub struct MarketView {
    /// Feed time of the event.
    pub ts_ns: u64,
    /// Best bids, best first.
    pub bids: [LevelView; DEPTH],
    /// Best asks, best first.
    pub asks: [LevelView; DEPTH],
    /// Valid entries in `bids`.
    pub n_bids: u8,
    /// Valid entries in `asks`.
    pub n_asks: u8,
    /// Whether the venue event is complete (the book is consistent).
    pub complete: bool,
}

impl MarketView {
    /// Copies the top of `book`.
    #[inline]
    pub fn capture(&mut self, book: &OrderBook, ts_ns: u64, complete: bool) {
        self.ts_ns = ts_ns;
        self.complete = complete;
        self.n_bids = book.depth(Side::Buy, &mut self.bids) as u8;
        self.n_asks = book.depth(Side::Sell, &mut self.asks) as u8;
    }

    /// Best bid.
    #[inline]
    pub fn bid(&self) -> Option<LevelView> {
        (self.n_bids > 0).then_some(self.bids[0])
    }

    /// Best ask.
    #[inline]
    pub fn ask(&self) -> Option<LevelView> {
        (self.n_asks > 0).then_some(self.asks[0])
    }

    /// Both sides present, complete and not crossed: a book a strategy may act on.
    #[inline]
    pub fn tradable(&self) -> Option<(LevelView, LevelView)> {
        let (b, a) = (self.bid()?, self.ask()?);
        (self.complete && b.price < a.price).then_some((b, a))
    }

    /// Mid price (raw), when tradable.
    #[inline]
    pub fn mid_raw(&self) -> Option<i64> {
        let (b, a) = self.tradable()?;
        Some(((b.price.raw() as i128 + a.price.raw() as i128) / 2) as i64)
    }
}

/// One of our working orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Working {
    /// Our id.
    pub id: u64,
    /// Side.
    pub side: Side,
    /// Limit price.
    pub price: Price,
    /// Quantity still working.
    pub leaves: Quantity,
    /// A cancel has been sent.
    pub canceling: bool,
}

/// Our position and working orders, as the venue's reports left them.
#[derive(Clone, Copy, Debug)]
pub struct OwnState {
    /// Signed position (raw quantity).
    pub position: i64,
    /// Working orders; `None` slots are free.
    pub working: [Option<Working>; OwnState::CAP],
}

impl Default for OwnState {
    fn default() -> Self {
        Self {
            position: 0,
            working: [None; OwnState::CAP],
        }
    }
}

impl OwnState {
    /// Working orders we track at most.
    pub const CAP: usize = 16;

    /// The working order on `side` that is not being canceled, if any.
    #[inline]
    pub fn quote(&self, side: Side) -> Option<Working> {
        self.working
            .iter()
            .flatten()
            .find(|w| w.side == side && !w.canceling)
            .copied()
    }

    /// Sum of the quantity working on `side` (raw).
    #[inline]
    pub fn working_qty(&self, side: Side) -> i64 {
        self.working
            .iter()
            .flatten()
            .filter(|w| w.side == side)
            .map(|w| w.leaves.raw())
            .sum()
    }

    /// Records a new working order; `false` when every slot is taken.
    #[inline]
    pub fn add(&mut self, w: Working) -> bool {
        match self.working.iter_mut().find(|s| s.is_none()) {
            Some(slot) => {
                *slot = Some(w);
                true
            }
            None => false,
        }
    }

    /// The slot of order `id`.
    #[inline]
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Working> {
        self.working.iter_mut().flatten().find(|w| w.id == id)
    }

    /// Forgets order `id`.
    #[inline]
    pub fn remove(&mut self, id: u64) {
        for s in self.working.iter_mut() {
            if s.is_some_and(|w| w.id == id) {
                *s = None;
            }
        }
    }
}

/// What a strategy wants done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// A new order.
    New {
        /// Side.
        side: Side,
        /// Limit price.
        price: Price,
        /// Quantity.
        qty: Quantity,
        /// IOC or GTC.
        kind: OrderKind,
    },
    /// Cancel a working order.
    Cancel {
        /// Our id.
        id: u64,
    },
}

/// A fixed-capacity list of intents.
#[derive(Clone, Copy, Debug)]
pub struct Intents {
    items: [Intent; Intents::CAP],
    len: usize,
}

impl Default for Intents {
    fn default() -> Self {
        Self {
            items: [Intent::Cancel { id: 0 }; Intents::CAP],
            len: 0,
        }
    }
}

impl Intents {
    /// Intents per update at most.
    pub const CAP: usize = 4;

    /// Adds an intent; `false` (and nothing added) when full.
    #[inline]
    pub fn push(&mut self, i: Intent) -> bool {
        if self.len == Self::CAP {
            return false;
        }
        self.items[self.len] = i;
        self.len += 1;
        true
    }

    /// The intents.
    #[inline]
    pub fn as_slice(&self) -> &[Intent] {
        &self.items[..self.len]
    }

    /// Empties the list.
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// A trading strategy of the fast path.
pub trait Strategy: Send {
    /// Called after every feed event with the book's top and our state; writes intents.
    fn on_update(&mut self, view: &MarketView, own: &OwnState, out: &mut Intents);
}

/// Rounds `raw` down to the tick grid.
#[inline]
pub fn floor_tick(raw: i64, tick: i64) -> i64 {
    raw.div_euclid(tick) * tick
}

/// Rounds `raw` up to the tick grid.
#[inline]
pub fn ceil_tick(raw: i64, tick: i64) -> i64 {
    -(-raw).div_euclid(tick) * tick
}

/// The strategies, by name (for configuration and the command line).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StrategyKind {
    /// [`MarketMaker`].
    MarketMaker(MarketMakerConfig),
    /// [`ImbalanceTaker`].
    Imbalance(ImbalanceConfig),
}

impl StrategyKind {
    /// Default parameters of a strategy named `name` (`market-maker`, `imbalance`), for a
    /// feed with this tick and a typical order size.
    pub fn by_name(name: &str, tick: Price, qty: Quantity) -> Option<Self> {
        match name {
            "market-maker" | "mm" => {
                Some(StrategyKind::MarketMaker(MarketMakerConfig::new(tick, qty)))
            }
            "imbalance" | "taker" => Some(StrategyKind::Imbalance(ImbalanceConfig::new(qty))),
            _ => None,
        }
    }

    /// The strategy.
    pub fn build(&self) -> Box<dyn Strategy> {
        match *self {
            StrategyKind::MarketMaker(c) => Box::new(MarketMaker::new(c)),
            StrategyKind::Imbalance(c) => Box::new(ImbalanceTaker::new(c)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_rounding() {
        assert_eq!(floor_tick(105, 10), 100);
        assert_eq!(ceil_tick(105, 10), 110);
        assert_eq!(ceil_tick(100, 10), 100);
        assert_eq!(floor_tick(-5, 10), -10);
        assert_eq!(ceil_tick(-5, 10), 0);
    }

    #[test]
    fn intents_are_bounded() {
        let mut i = Intents::default();
        for _ in 0..Intents::CAP {
            assert!(i.push(Intent::Cancel { id: 1 }));
        }
        assert!(!i.push(Intent::Cancel { id: 2 }));
        assert_eq!(i.as_slice().len(), Intents::CAP);
    }
}
