//! A seeded synthetic L3 feed for benchmarks and tests that need no recorded data: a mid price
//! that random-walks on a tick grid, limit orders added within a few ticks of it, cancels of
//! random resting orders, and executions that take the head of the best queue (and move the
//! mid when a level empties). The generator keeps its own [`OrderBook`] so every cancel and
//! execution names a resting order and the book never crosses.

use tickflow_core::{Price, Quantity, Side};

use super::Feed;
use crate::book::{BookCapacity, OrderBook};
use crate::msg::{Action, FeedMsg};

/// Shape of the synthetic feed.
#[derive(Clone, Copy, Debug)]
pub struct SyntheticConfig {
    /// Messages to produce.
    pub messages: usize,
    /// Random seed.
    pub seed: u64,
    /// Starting mid price.
    pub start: Price,
    /// Tick size.
    pub tick: Price,
    /// Resting orders the book hovers around.
    pub depth_orders: usize,
    /// Nanoseconds between messages (event time).
    pub spacing_ns: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            messages: 1_000_000,
            seed: 7,
            start: Price::from_raw(100_000_000_000),
            tick: Price::from_raw(10_000_000),
            depth_orders: 400,
            spacing_ns: 1_000,
        }
    }
}

/// SplitMix64: small, fast, and good enough for a synthetic market.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Generates the feed.
pub fn generate(cfg: &SyntheticConfig) -> Feed {
    let mut rng = Rng(cfg.seed);
    let mut book = OrderBook::new(BookCapacity {
        orders: cfg.depth_orders * 4 + 1024,
        levels: 4096,
    });
    let tick = cfg.tick.raw();
    let mut mid = cfg.start.raw() / tick;
    let mut live: Vec<u64> = Vec::with_capacity(cfg.depth_orders * 4);
    let mut next_id = 1u64;
    let mut msgs = Vec::with_capacity(cfg.messages);
    let mut ts = 1_700_000_000_000_000_000u64;
    while msgs.len() < cfg.messages {
        ts += cfg.spacing_ns;
        let roll = rng.below(100);
        // Adds outnumber removals while the book is thin, and the other way round once it
        // holds `depth_orders`, so its depth hovers there.
        let add_share = if book.len() < cfg.depth_orders {
            60
        } else {
            40
        };
        let msg = if roll < add_share || live.is_empty() {
            // Add within 1..=6 ticks of the mid, on the side that keeps the book uncrossed.
            let side = if rng.below(2) == 0 {
                Side::Buy
            } else {
                Side::Sell
            };
            let away = 1 + rng.below(6) as i64;
            let mut px = if side == Side::Buy {
                mid - away
            } else {
                mid + away
            };
            if let (Side::Buy, Some(a)) = (side, book.best_ask()) {
                px = px.min(a.price.raw() / tick - 1);
            }
            if let (Side::Sell, Some(b)) = (side, book.best_bid()) {
                px = px.max(b.price.raw() / tick + 1);
            }
            let id = next_id;
            next_id += 1;
            live.push(id);
            FeedMsg {
                order_id: id,
                price: Price::from_raw(px * tick),
                size: Quantity::from_raw((1 + rng.below(20) as i64) * 1_000_000_000),
                ..FeedMsg::new(ts, Action::Add, side)
            }
        } else if roll < 85 {
            // Cancel.
            let k = rng.below(live.len() as u64) as usize;
            let id = live.swap_remove(k);
            let Some(o) = book.order(id) else { continue };
            FeedMsg {
                order_id: id,
                size: o.size,
                price: o.price,
                ..FeedMsg::new(ts, Action::Cancel, o.side)
            }
        } else {
            let side = if rng.below(2) == 0 {
                Side::Buy
            } else {
                Side::Sell
            };
            let Some(level) = book.best(side) else {
                continue;
            };
            let Some(head) = book.queue(side, level.price).next() else {
                continue;
            };
            let size = Quantity::from_raw(
                head.size
                    .raw()
                    .min((1 + rng.below(10) as i64) * 1_000_000_000),
            );
            FeedMsg {
                order_id: head.id,
                size,
                price: head.price,
                ..FeedMsg::new(ts, Action::Execute, side)
            }
        };
        book.apply(&msg)
            .expect("the generator names resting orders");
        if let (Some(b), Some(a)) = (book.best_bid(), book.best_ask()) {
            mid = (b.price.raw() + a.price.raw()) / 2 / tick;
        }
        if live.len() > cfg.depth_orders * 3 {
            live.retain(|id| book.order(*id).is_some());
        }
        msgs.push(msg);
    }
    Feed::new("SYNTH".into(), msgs, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_feed_is_deterministic_and_valid() {
        let cfg = SyntheticConfig {
            messages: 20_000,
            ..SyntheticConfig::default()
        };
        let a = generate(&cfg);
        let b = generate(&cfg);
        assert_eq!(a.msgs, b.msgs);
        assert_eq!(a.tick, cfg.tick);
        let mut book = OrderBook::new(BookCapacity::default());
        for m in &a.msgs {
            book.apply(m).unwrap();
            assert!(!book.is_crossed());
        }
        book.check().unwrap();
        assert!(book.len() > 50, "the book keeps depth: {}", book.len());
    }
}
