//! The L3 order book: every resting order by id, in FIFO queues per price level, with an L2
//! view (best bid/ask, depth N) over the same structure.
//!
//! Memory is allocated once in [`OrderBook::new`]: a slab of order nodes with a free list, a
//! fixed [`IdMap`] from venue id to node, and one ladder of levels per side, each a vector
//! sorted so that the best level is at the end (adding or removing near the top moves few
//! elements, and most activity is near the top). Nothing on [`OrderBook::apply`] allocates;
//! when a capacity is reached the event is refused with [`BookError::Full`] and the book is
//! unchanged.
//!
//! Every resting order carries a sequence number from a book-wide counter, given when it joins
//! the tail of its queue (again when a modify costs it its priority). Queue position follows from
//! it: the orders ahead of a position are those at the same level with a smaller sequence number
//! ([`OrderBook::queue_ahead`]). The simulated venue places our orders in these queues by
//! sequence number without adding them to the book, so the book stays exactly the venue's.
//!
//! Price-level feeds ([`Action::Level`]) are kept in the same structure: each level holds one
//! aggregate order with an id derived from side and price.

use tickflow_core::{Price, Quantity, Side};

use crate::idmap::IdMap;
use crate::msg::{Action, FeedMsg};

const NIL: u32 = u32::MAX;
/// Ids of the aggregate orders that stand for whole levels of price-level feeds.
const LEVEL_ID_BIT: u64 = 1 << 63;

/// Why an event was refused. The book is unchanged after an error.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum BookError {
    /// The event names an order the book does not hold.
    #[error("unknown order id {0}")]
    UnknownOrder(u64),
    /// An add reuses the id of a resting order.
    #[error("order id {0} is already resting")]
    DuplicateOrder(u64),
    /// Size zero or negative where a positive size is needed.
    #[error("size {0} is not positive")]
    BadSize(i64),
    /// Side missing where one is needed.
    #[error("the event has no side")]
    NoSide,
    /// The order slab, the id map or a ladder is at its capacity.
    #[error("the book is at its capacity")]
    Full,
}

/// What an event did, for the venue's queue tracking.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Effect {
    /// Nothing the venue needs to know (an add, a clear, a size increase).
    None,
    /// A resting order lost `qty` without trading.
    Reduced {
        /// Side of the order.
        side: Side,
        /// Its price.
        price: Price,
        /// Its sequence number.
        seq: u64,
        /// Amount removed.
        qty: Quantity,
    },
    /// A trade against resting liquidity on `side` at `price`.
    Traded {
        /// Side of the resting liquidity.
        side: Side,
        /// Trade price.
        price: Price,
        /// Sequence number of the resting order that traded; `u64::MAX` for liquidity the book
        /// does not show (hidden orders).
        seq: u64,
        /// Amount traded.
        qty: Quantity,
        /// Whether the book lost the amount with this event (LOBSTER executions); `false` when a
        /// cancel follows (Databento fills) or the liquidity was hidden.
        reduced: bool,
    },
    /// The book was cleared.
    Cleared,
}

/// A price level as seen from outside.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LevelView {
    /// Price.
    pub price: Price,
    /// Sum of the resting sizes.
    pub size: Quantity,
    /// Number of resting orders.
    pub orders: u32,
}

/// A resting order as seen from outside.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OrderView {
    /// Venue id.
    pub id: u64,
    /// Side.
    pub side: Side,
    /// Price.
    pub price: Price,
    /// Remaining size.
    pub size: Quantity,
    /// Queue sequence number.
    pub seq: u64,
}

#[derive(Clone, Copy)]
struct Node {
    id: u64,
    price: i64,
    size: i64,
    seq: u64,
    prev: u32,
    next: u32,
    side: u8,
}

#[derive(Clone, Copy, Debug)]
struct Level {
    /// Sort key: the price for bids, its negation for asks, so that better is larger.
    key: i64,
    total: i64,
    count: u32,
    head: u32,
    tail: u32,
}

/// One side's levels, sorted by key ascending: the best level is last.
struct Ladder {
    levels: Vec<Level>,
}

impl Ladder {
    /// Index of the level with `key`, or where it would be inserted. Scans the top few levels
    /// first (where most events land), then bisects.
    #[inline]
    fn find(&self, key: i64) -> Result<usize, usize> {
        let n = self.levels.len();
        let scan = n.min(8);
        for i in (n - scan..n).rev() {
            let k = self.levels[i].key;
            if k == key {
                return Ok(i);
            }
            if k < key {
                return Err(i + 1);
            }
        }
        self.levels[..n - scan].binary_search_by(|l| l.key.cmp(&key))
    }
}

#[inline]
fn side_index(side: Side) -> Option<usize> {
    match side {
        Side::Buy => Some(0),
        Side::Sell => Some(1),
        Side::None => None,
    }
}

#[inline]
fn key_of(side_ix: usize, price: i64) -> i64 {
    if side_ix == 0 { price } else { -price }
}

#[inline]
fn side_of(ix: u8) -> Side {
    if ix == 0 { Side::Buy } else { Side::Sell }
}

/// Capacities fixed at start.
#[derive(Clone, Copy, Debug)]
pub struct BookCapacity {
    /// Resting orders.
    pub orders: usize,
    /// Price levels per side.
    pub levels: usize,
}

impl Default for BookCapacity {
    /// Room for 65,536 resting orders and 16,384 levels a side: a busy futures book holds tens
    /// of thousands of orders. The id map's size follows the order capacity, and a map that
    /// fits the CPU's caches is what keeps an update near 100 ns, so the capacity is better
    /// sized to the feed ([`BookCapacity::for_feed`]) than generous.
    fn default() -> Self {
        Self {
            orders: 1 << 16,
            levels: 1 << 14,
        }
    }
}

impl BookCapacity {
    /// Twice the peak of resting orders and levels the feed reaches (at least 4,096 of each),
    /// found by replaying it into a scratch book at start-up. The scratch book starts at that
    /// floor and is rebuilt four times larger whenever the feed overflows it, so a small feed
    /// costs a small book.
    pub fn for_feed(msgs: &[FeedMsg]) -> Self {
        let mut probe_cap = BookCapacity {
            orders: 4096,
            levels: 4096,
        };
        loop {
            let mut probe = OrderBook::new(probe_cap);
            let (mut orders, mut levels, mut full) = (0usize, 0usize, false);
            for m in msgs {
                full |= probe.apply(m) == Err(BookError::Full);
                orders = orders.max(probe.len());
                levels = levels.max(probe.sides[0].levels.len().max(probe.sides[1].levels.len()));
            }
            if !full || probe_cap.orders >= 1 << 24 {
                return Self {
                    orders: (orders * 2).next_power_of_two().max(4096),
                    levels: (levels * 2).next_power_of_two().max(4096),
                };
            }
            probe_cap = BookCapacity {
                orders: probe_cap.orders * 4,
                levels: probe_cap.levels * 4,
            };
        }
    }
}

/// The order book of one instrument.
pub struct OrderBook {
    sides: [Ladder; 2],
    nodes: Vec<Node>,
    /// Slots given back since the last clear, linked through `next`.
    free: u32,
    /// Slots at and above this one have not been used since the last clear.
    unused: u32,
    ids: IdMap,
    next_seq: u64,
    level_cap: usize,
}

impl OrderBook {
    /// An empty book with all its memory allocated.
    pub fn new(cap: BookCapacity) -> Self {
        assert!(
            cap.orders < NIL as usize,
            "order capacity must fit u32 slots"
        );
        // Every node is written here, so the pages are in memory before the loop runs.
        let nodes = vec![
            Node {
                id: 0,
                price: 0,
                size: 0,
                seq: 0,
                prev: NIL,
                next: NIL,
                side: 0,
            };
            cap.orders
        ];
        Self {
            sides: [
                Ladder {
                    levels: Vec::with_capacity(cap.levels),
                },
                Ladder {
                    levels: Vec::with_capacity(cap.levels),
                },
            ],
            free: NIL,
            unused: 0,
            nodes,
            ids: IdMap::with_capacity(cap.orders),
            next_seq: 1,
            level_cap: cap.levels,
        }
    }

    /// The sequence number the next order to join a queue will get: a position behind every
    /// order resting now.
    #[inline]
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Resting orders.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no order rests.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Applies one feed message.
    #[inline]
    pub fn apply(&mut self, m: &FeedMsg) -> Result<Effect, BookError> {
        match m.action {
            Action::Add => {
                self.add(m.side, m.order_id, m.price, m.size)?;
                Ok(Effect::None)
            }
            Action::Cancel => self.reduce(m.order_id, m.size.raw(), false),
            Action::Execute => self.reduce(m.order_id, m.size.raw(), true),
            Action::Modify => self.modify(m.side, m.order_id, m.price, m.size),
            Action::Fill => {
                let o = self
                    .order(m.order_id)
                    .ok_or(BookError::UnknownOrder(m.order_id))?;
                Ok(Effect::Traded {
                    side: o.side,
                    price: o.price,
                    seq: o.seq,
                    qty: m.size,
                    reduced: false,
                })
            }
            Action::Trade if m.flags & FeedMsg::PRINT != 0 => Ok(Effect::None),
            Action::Trade => Ok(Effect::Traded {
                side: match m.side {
                    Side::Buy => Side::Sell,
                    Side::Sell => Side::Buy,
                    Side::None => Side::None,
                },
                price: m.price,
                seq: u64::MAX,
                qty: m.size,
                reduced: false,
            }),
            Action::Clear => {
                self.clear();
                Ok(Effect::Cleared)
            }
            Action::Level => self.set_level(m.side, m.price, m.size),
        }
    }

    /// A new order at the tail of its level.
    pub fn add(
        &mut self,
        side: Side,
        id: u64,
        price: Price,
        size: Quantity,
    ) -> Result<u64, BookError> {
        let s = side_index(side).ok_or(BookError::NoSide)?;
        if size.raw() <= 0 {
            return Err(BookError::BadSize(size.raw()));
        }
        if self.ids.get(id).is_some() {
            return Err(BookError::DuplicateOrder(id));
        }
        let Some(slot) = self.vacant() else {
            return Err(BookError::Full);
        };
        let key = key_of(s, price.raw());
        let li = match self.sides[s].find(key) {
            Ok(i) => i,
            Err(at) => {
                if self.sides[s].levels.len() >= self.level_cap {
                    return Err(BookError::Full);
                }
                self.sides[s].levels.insert(
                    at,
                    Level {
                        key,
                        total: 0,
                        count: 0,
                        head: NIL,
                        tail: NIL,
                    },
                );
                at
            }
        };
        if self.ids.insert(id, slot).is_err() {
            if self.sides[s].levels[li].count == 0 {
                self.sides[s].levels.remove(li);
            }
            return Err(BookError::Full);
        }
        if slot == self.free {
            self.free = self.nodes[slot as usize].next;
        } else {
            self.unused += 1;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let level = &mut self.sides[s].levels[li];
        let tail = level.tail;
        level.tail = slot;
        if tail == NIL {
            level.head = slot;
        }
        level.total += size.raw();
        level.count += 1;
        if tail != NIL {
            self.nodes[tail as usize].next = slot;
        }
        self.nodes[slot as usize] = Node {
            id,
            price: price.raw(),
            size: size.raw(),
            seq,
            prev: tail,
            next: NIL,
            side: s as u8,
        };
        Ok(seq)
    }

    /// Takes up to `qty` off order `id` (all of it when `qty` covers the rest).
    fn reduce(&mut self, id: u64, qty: i64, traded: bool) -> Result<Effect, BookError> {
        if qty <= 0 {
            return Err(BookError::BadSize(qty));
        }
        let slot = self.ids.get(id).ok_or(BookError::UnknownOrder(id))?;
        let node = self.nodes[slot as usize];
        let take = qty.min(node.size);
        let side = side_of(node.side);
        if take == node.size {
            self.unlink(slot);
        } else {
            self.nodes[slot as usize].size -= take;
            let s = node.side as usize;
            let li = self.sides[s]
                .find(key_of(s, node.price))
                .expect("a resting order's level exists");
            self.sides[s].levels[li].total -= take;
        }
        let price = Price::from_raw(node.price);
        let qty = Quantity::from_raw(take);
        Ok(if traded {
            Effect::Traded {
                side,
                price,
                seq: node.seq,
                qty,
                reduced: true,
            }
        } else {
            Effect::Reduced {
                side,
                price,
                seq: node.seq,
                qty,
            }
        })
    }

    /// Removes a node from its level (dropping the level when it empties) and frees it.
    fn unlink(&mut self, slot: u32) {
        let node = self.nodes[slot as usize];
        let s = node.side as usize;
        let li = self.sides[s]
            .find(key_of(s, node.price))
            .expect("a resting order's level exists");
        if node.prev != NIL {
            self.nodes[node.prev as usize].next = node.next;
        }
        if node.next != NIL {
            self.nodes[node.next as usize].prev = node.prev;
        }
        let level = &mut self.sides[s].levels[li];
        if level.head == slot {
            level.head = node.next;
        }
        if level.tail == slot {
            level.tail = node.prev;
        }
        level.total -= node.size;
        level.count -= 1;
        if level.count == 0 {
            self.sides[s].levels.remove(li);
        }
        self.ids.remove(node.id);
        self.nodes[slot as usize].next = self.free;
        self.free = slot;
    }

    /// New price and size for a resting order; an unknown id is added (Databento's rule).
    fn modify(
        &mut self,
        side: Side,
        id: u64,
        price: Price,
        size: Quantity,
    ) -> Result<Effect, BookError> {
        let Some(slot) = self.ids.get(id) else {
            if size.raw() <= 0 {
                return Err(BookError::UnknownOrder(id));
            }
            self.add(side, id, price, size)?;
            return Ok(Effect::None);
        };
        let node = self.nodes[slot as usize];
        let node_side = side_of(node.side);
        if size.raw() <= 0 {
            self.unlink(slot);
            return Ok(Effect::Reduced {
                side: node_side,
                price: Price::from_raw(node.price),
                seq: node.seq,
                qty: Quantity::from_raw(node.size),
            });
        }
        if node.price == price.raw() && size.raw() <= node.size {
            // Same or smaller at the same price: keeps its place.
            if size.raw() == node.size {
                return Ok(Effect::None);
            }
            return self.reduce(id, node.size - size.raw(), false);
        }
        // A new price or a larger size: to the back of the (new) queue. Check room first so
        // a refusal leaves the book as it was.
        let s = node.side as usize;
        if node.price != price.raw()
            && self.sides[s].find(key_of(s, price.raw())).is_err()
            && self.sides[s].levels.len() >= self.level_cap
        {
            return Err(BookError::Full);
        }
        self.unlink(slot);
        self.add(node_side, id, price, size)
            .expect("room was checked and the id was just freed");
        Ok(Effect::Reduced {
            side: node_side,
            price: Price::from_raw(node.price),
            seq: node.seq,
            qty: Quantity::from_raw(node.size),
        })
    }

    /// Price-level data: the level at `price` holds `size` from now on.
    fn set_level(&mut self, side: Side, price: Price, size: Quantity) -> Result<Effect, BookError> {
        let s = side_index(side).ok_or(BookError::NoSide)?;
        let id = LEVEL_ID_BIT | ((s as u64) << 62) | (price.raw() as u64 & ((1 << 62) - 1));
        match self.ids.get(id) {
            None if size.raw() <= 0 => Ok(Effect::None),
            None => {
                self.add(side, id, price, size)?;
                Ok(Effect::None)
            }
            Some(slot) => {
                let old = self.nodes[slot as usize].size;
                if size.raw() >= old {
                    // More liquidity joins behind whatever was there.
                    let extra = size.raw() - old;
                    self.nodes[slot as usize].size = size.raw();
                    let li = self.sides[s]
                        .find(key_of(s, price.raw()))
                        .expect("level exists");
                    self.sides[s].levels[li].total += extra;
                    Ok(Effect::None)
                } else {
                    self.reduce(id, old - size.raw().max(0), false)
                }
            }
        }
    }

    /// The slot a new order takes: one given back, else the first never used.
    #[inline]
    fn vacant(&self) -> Option<u32> {
        if self.free != NIL {
            Some(self.free)
        } else {
            ((self.unused as usize) < self.nodes.len()).then_some(self.unused)
        }
    }

    /// Removes every order without visiting them: the levels are emptied, every slot becomes
    /// unused again and the id map is wiped in one sequential pass. Unlinking a venue's
    /// 11,000 resting orders one by one took 200–500 µs of the loop (a cache miss per order).
    pub fn clear(&mut self) {
        for side in &mut self.sides {
            side.levels.clear();
        }
        self.free = NIL;
        self.unused = 0;
        self.ids.clear();
    }

    /// Best level of a side.
    #[inline]
    pub fn best(&self, side: Side) -> Option<LevelView> {
        let s = side_index(side)?;
        self.sides[s].levels.last().map(|l| view(s, l))
    }

    /// Best bid.
    #[inline]
    pub fn best_bid(&self) -> Option<LevelView> {
        self.best(Side::Buy)
    }

    /// Best ask.
    #[inline]
    pub fn best_ask(&self) -> Option<LevelView> {
        self.best(Side::Sell)
    }

    /// The best `out.len()` levels of a side, best first; returns how many were written.
    #[inline]
    pub fn depth(&self, side: Side, out: &mut [LevelView]) -> usize {
        let Some(s) = side_index(side) else {
            return 0;
        };
        let levels = &self.sides[s].levels;
        let n = out.len().min(levels.len());
        for (o, l) in out.iter_mut().zip(levels.iter().rev()) {
            *o = view(s, l);
        }
        n
    }

    /// Levels of a side, best first.
    pub fn levels(&self, side: Side) -> impl Iterator<Item = LevelView> + '_ {
        let s = side_index(side);
        s.into_iter()
            .flat_map(move |s| self.sides[s].levels.iter().rev().map(move |l| view(s, l)))
    }

    /// The level at `price`.
    pub fn level(&self, side: Side, price: Price) -> Option<LevelView> {
        let s = side_index(side)?;
        let i = self.sides[s].find(key_of(s, price.raw())).ok()?;
        Some(view(s, &self.sides[s].levels[i]))
    }

    /// A resting order.
    #[inline]
    pub fn order(&self, id: u64) -> Option<OrderView> {
        let slot = self.ids.get(id)?;
        Some(node_view(&self.nodes[slot as usize]))
    }

    /// The orders of a level in queue order (first to trade first).
    pub fn queue(&self, side: Side, price: Price) -> impl Iterator<Item = OrderView> + '_ {
        let head = side_index(side)
            .and_then(|s| {
                let i = self.sides[s].find(key_of(s, price.raw())).ok()?;
                Some(self.sides[s].levels[i].head)
            })
            .unwrap_or(NIL);
        let mut slot = head;
        std::iter::from_fn(move || {
            if slot == NIL {
                return None;
            }
            let n = &self.nodes[slot as usize];
            slot = n.next;
            Some(node_view(n))
        })
    }

    /// Size resting ahead of a queue position: the orders at `price` on `side` with a smaller
    /// sequence number than `seq` (for our order placed when [`OrderBook::next_seq`] was `seq`).
    pub fn queue_ahead(&self, side: Side, price: Price, seq: u64) -> Quantity {
        let raw = self
            .queue(side, price)
            .take_while(|o| o.seq < seq)
            .map(|o| o.size.raw())
            .sum();
        Quantity::from_raw(raw)
    }

    /// Checks the structure: sorted uncrossed... (see the list below). Allocation is fine here:
    /// this is for tests and debugging, not the loop. Crossing is checked separately by
    /// [`OrderBook::is_crossed`], since a book may cross inside a venue event.
    ///
    /// Checked: levels strictly sorted; no empty level; no order with a size ≤ 0; each level's
    /// total and count equal the sum and number of its orders; queue links consistent; sequence
    /// numbers increase along each queue; the id map names exactly the resting orders.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = 0usize;
        for s in 0..2 {
            let levels = &self.sides[s].levels;
            for w in levels.windows(2) {
                if w[0].key >= w[1].key {
                    return Err(format!("side {s}: levels out of order at key {}", w[1].key));
                }
            }
            for l in levels {
                seen += self.check_one(s, l)?;
            }
        }
        if seen != self.ids.len() {
            return Err(format!(
                "{} ids mapped but {seen} orders queued",
                self.ids.len()
            ));
        }
        Ok(())
    }

    /// Checks the level at `price` on `side` (absent is fine): see [`OrderBook::check`].
    pub fn check_level(&self, side: Side, price: Price) -> Result<(), String> {
        let Some(s) = side_index(side) else {
            return Ok(());
        };
        match self.sides[s].find(key_of(s, price.raw())) {
            Ok(i) => self.check_one(s, &self.sides[s].levels[i]).map(|_| ()),
            Err(_) => Ok(()),
        }
    }

    fn check_one(&self, s: usize, l: &Level) -> Result<usize, String> {
        let price = key_of(s, l.key);
        if l.count == 0 || l.total <= 0 {
            return Err(format!(
                "side {s} level {price}: empty level (count {}, total {})",
                l.count, l.total
            ));
        }
        let (mut total, mut count, mut prev, mut slot, mut last_seq) =
            (0i64, 0u32, NIL, l.head, 0u64);
        while slot != NIL {
            let n = &self.nodes[slot as usize];
            if n.size <= 0 {
                return Err(format!("order {} has size {}", n.id, n.size));
            }
            if n.price != price || n.side as usize != s {
                return Err(format!("order {} is queued at the wrong level", n.id));
            }
            if n.prev != prev {
                return Err(format!("order {}: broken back link", n.id));
            }
            if n.seq <= last_seq {
                return Err(format!("order {}: queue out of sequence", n.id));
            }
            if self.ids.get(n.id) != Some(slot) {
                return Err(format!("order {}: id map disagrees", n.id));
            }
            last_seq = n.seq;
            total += n.size;
            count += 1;
            prev = slot;
            slot = n.next;
        }
        if l.tail != prev {
            return Err(format!("side {s} level {price}: wrong tail"));
        }
        if total != l.total || count != l.count {
            return Err(format!(
                "side {s} level {price}: total {} / count {} but orders sum to {total} / {count}",
                l.total, l.count
            ));
        }
        Ok(count as usize)
    }

    /// Whether the best bid is at or above the best ask.
    pub fn is_crossed(&self) -> bool {
        match (self.best_bid(), self.best_ask()) {
            (Some(b), Some(a)) => b.price >= a.price,
            _ => false,
        }
    }
}

#[inline]
fn view(s: usize, l: &Level) -> LevelView {
    LevelView {
        price: Price::from_raw(key_of(s, l.key)),
        size: Quantity::from_raw(l.total),
        orders: l.count,
    }
}

fn node_view(n: &Node) -> OrderView {
    OrderView {
        id: n.id,
        side: side_of(n.side),
        price: Price::from_raw(n.price),
        size: Quantity::from_raw(n.size),
        seq: n.seq,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashMap};

    fn small() -> OrderBook {
        OrderBook::new(BookCapacity {
            orders: 256,
            levels: 64,
        })
    }

    fn p(x: i64) -> Price {
        Price::from_raw(x)
    }

    fn q(x: i64) -> Quantity {
        Quantity::from_raw(x)
    }

    #[test]
    fn fifo_queues_and_queue_position() {
        let mut b = small();
        b.add(Side::Buy, 1, p(100), q(5)).unwrap();
        b.add(Side::Buy, 2, p(100), q(7)).unwrap();
        let ours = b.next_seq();
        b.add(Side::Buy, 3, p(100), q(2)).unwrap();
        b.add(Side::Buy, 4, p(99), q(1)).unwrap();
        b.add(Side::Sell, 5, p(101), q(3)).unwrap();
        assert_eq!(
            b.best_bid(),
            Some(LevelView {
                price: p(100),
                size: q(14),
                orders: 3
            })
        );
        assert_eq!(b.best_ask().unwrap().price, p(101));
        assert_eq!(b.queue_ahead(Side::Buy, p(100), ours), q(12));
        let ids: Vec<u64> = b.queue(Side::Buy, p(100)).map(|o| o.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        // Executing the head shortens the queue ahead of us.
        let e = b
            .apply(&FeedMsg {
                order_id: 1,
                size: q(5),
                ..FeedMsg::new(0, Action::Execute, Side::Buy)
            })
            .unwrap();
        assert!(matches!(e, Effect::Traded { reduced: true, .. }));
        assert_eq!(b.queue_ahead(Side::Buy, p(100), ours), q(7));
        // A size increase sends order 2 behind us.
        b.apply(&FeedMsg {
            order_id: 2,
            price: p(100),
            size: q(8),
            ..FeedMsg::new(0, Action::Modify, Side::Buy)
        })
        .unwrap();
        assert_eq!(b.queue_ahead(Side::Buy, p(100), ours), q(0));
        let mut d = [LevelView::default(); 4];
        assert_eq!(b.depth(Side::Buy, &mut d), 2);
        assert_eq!((d[0].price, d[0].size, d[1].price), (p(100), q(10), p(99)));
        b.check().unwrap();
        b.clear();
        assert!(b.is_empty() && b.best_bid().is_none());
        b.check().unwrap();
    }

    #[test]
    fn a_cleared_book_gives_back_every_slot_and_id() {
        let mut b = OrderBook::new(BookCapacity {
            orders: 64,
            levels: 16,
        });
        for round in 0..3 {
            for id in 0..64u64 {
                let (side, px) = if id % 2 == 0 {
                    (Side::Buy, 100 - (id % 7) as i64)
                } else {
                    (Side::Sell, 101 + (id % 5) as i64)
                };
                b.add(side, id, p(px), q(1 + round)).unwrap();
                // Some orders leave and their slots are taken again before the clear.
                if id % 3 == 0 && round > 0 {
                    b.apply(&FeedMsg {
                        order_id: id,
                        size: q(1 + round),
                        ..FeedMsg::new(0, Action::Cancel, side)
                    })
                    .unwrap();
                    b.add(side, id, p(px), q(1 + round)).unwrap();
                }
            }
            assert_eq!(b.add(Side::Buy, 999, p(90), q(1)), Err(BookError::Full));
            b.check().unwrap();
            b.clear();
            assert!(b.is_empty() && b.best_bid().is_none() && b.best_ask().is_none());
            b.check().unwrap();
        }
        // The same ids are free again.
        b.add(Side::Buy, 7, p(100), q(1)).unwrap();
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn refusals_leave_the_book_unchanged() {
        let mut b = OrderBook::new(BookCapacity {
            orders: 2,
            levels: 1,
        });
        b.add(Side::Buy, 1, p(10), q(1)).unwrap();
        assert_eq!(
            b.add(Side::Buy, 1, p(10), q(1)),
            Err(BookError::DuplicateOrder(1))
        );
        assert_eq!(b.add(Side::Buy, 2, p(11), q(1)), Err(BookError::Full));
        assert_eq!(b.add(Side::Buy, 2, p(10), q(0)), Err(BookError::BadSize(0)));
        assert_eq!(b.add(Side::None, 2, p(10), q(1)), Err(BookError::NoSide));
        assert_eq!(
            b.apply(&FeedMsg {
                order_id: 9,
                size: q(1),
                ..FeedMsg::new(0, Action::Cancel, Side::Buy)
            }),
            Err(BookError::UnknownOrder(9))
        );
        b.add(Side::Buy, 2, p(10), q(1)).unwrap();
        assert_eq!(b.add(Side::Buy, 3, p(10), q(1)), Err(BookError::Full));
        assert_eq!(b.len(), 2);
        b.check().unwrap();
    }

    #[test]
    fn price_level_feeds_set_levels() {
        let mut b = small();
        let lvl = |price, size| FeedMsg {
            price: p(price),
            size: q(size),
            ..FeedMsg::new(0, Action::Level, Side::Sell)
        };
        b.apply(&lvl(101, 5)).unwrap();
        b.apply(&lvl(102, 3)).unwrap();
        b.apply(&lvl(101, 8)).unwrap();
        assert_eq!(b.best_ask().unwrap().size, q(8));
        let e = b.apply(&lvl(101, 2)).unwrap();
        assert!(matches!(e, Effect::Reduced { qty, .. } if qty == q(6)));
        b.apply(&lvl(101, 0)).unwrap();
        assert_eq!(b.best_ask().unwrap().price, p(102));
        b.check().unwrap();
    }

    /// A from-scratch model: orders in a map, levels recomputed by scanning every order.
    #[derive(Default)]
    struct Model {
        orders: HashMap<u64, (Side, i64, i64, u64)>,
        seq: u64,
    }

    impl Model {
        fn levels(&self, side: Side) -> Vec<(i64, i64, u32)> {
            let mut m: BTreeMap<i64, (i64, u32)> = BTreeMap::new();
            for (s, price, size, _) in self.orders.values() {
                if *s == side {
                    let e = m.entry(*price).or_default();
                    e.0 += size;
                    e.1 += 1;
                }
            }
            let mut v: Vec<_> = m.into_iter().map(|(p, (t, c))| (p, t, c)).collect();
            if side == Side::Buy {
                v.reverse();
            }
            v
        }
    }

    proptest! {
        #[test]
        fn matches_a_recomputation_from_scratch(
            ops in proptest::collection::vec((0u8..5, 0u64..40, 95i64..106, 1i64..20, any::<bool>()), 1..300)
        ) {
            let mut b = small();
            let mut m = Model::default();
            for (op, id, price, size, buy) in ops {
                let side = if buy { Side::Buy } else { Side::Sell };
                match op {
                    0 => {
                        let r = b.add(side, id, p(price), q(size));
                        if m.orders.contains_key(&id) {
                            prop_assert_eq!(r, Err(BookError::DuplicateOrder(id)));
                        } else {
                            m.seq += 1;
                            prop_assert!(r.is_ok());
                            m.orders.insert(id, (side, price, size, m.seq));
                        }
                    }
                    1 | 2 => {
                        let action = if op == 1 { Action::Cancel } else { Action::Execute };
                        let r = b.apply(&FeedMsg { order_id: id, size: q(size), ..FeedMsg::new(0, action, side) });
                        match m.orders.get_mut(&id) {
                            None => prop_assert_eq!(r, Err(BookError::UnknownOrder(id))),
                            Some(o) => {
                                prop_assert!(r.is_ok());
                                o.2 -= size.min(o.2);
                                if o.2 == 0 { m.orders.remove(&id); }
                            }
                        }
                    }
                    3 => {
                        let r = b.apply(&FeedMsg { order_id: id, price: p(price), size: q(size), ..FeedMsg::new(0, Action::Modify, side) });
                        prop_assert!(r.is_ok());
                        match m.orders.get_mut(&id) {
                            None => { m.seq += 1; m.orders.insert(id, (side, price, size, m.seq)); }
                            Some(o) => {
                                if o.1 != price || size > o.2 { m.seq += 1; o.3 = m.seq; }
                                o.1 = price; o.2 = size;
                            }
                        }
                    }
                    _ => {
                        // Queue position of a hypothetical order of ours placed at `seq`.
                        let seq = m.seq.saturating_sub(size as u64);
                        let expected: i64 = m.orders.values()
                            .filter(|o| o.0 == side && o.1 == price && o.3 < seq + 1)
                            .map(|o| o.2).sum();
                        // Model seqs start at 1 like the book's; ours sits just after `seq`.
                        prop_assert_eq!(b.queue_ahead(side, p(price), seq + 1).raw(), expected);
                    }
                }
                prop_assert!(b.check().is_ok(), "{:?}", b.check());
                for side in [Side::Buy, Side::Sell] {
                    let got: Vec<_> = b.levels(side).map(|l| (l.price.raw(), l.size.raw(), l.orders)).collect();
                    prop_assert_eq!(got, m.levels(side));
                }
                prop_assert_eq!(b.len(), m.orders.len());
            }
        }
    }
}
