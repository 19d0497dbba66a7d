//! The simulated venue: receives our encoded orders, matches them against the replayed book,
//! and reports fills, honouring queue position.
//!
//! Model (no market impact: the replayed book is the venue's, our orders never change it):
//! - An order arrives `latency_ns` of feed time after it was sent (0: at once).
//! - The part of a limit order that crosses the book fills at once against the displayed levels
//!   (the best 32), at their prices, up to their sizes. The rest of an IOC order is canceled; the rest of a GTC
//!   order joins the queue at its price *behind every order resting there*: it takes the book's
//!   next sequence number, so resting orders (smaller numbers) are ahead of it and every order
//!   that arrives later (that number or larger) is behind it; `ahead` starts at the size resting
//!   there.
//! - Feed events then move our resting orders: a reduction of an order ahead of ours shortens
//!   `ahead`; a trade against an order *behind* ours at our price (or against hidden liquidity
//!   at our price once nothing is ahead), or any trade at a price worse than ours, would have
//!   hit ours first, so ours fills at its price for up to the traded size. With L3 data queue
//!   position is exact; with price-level data a level's decrease counts as ahead of us, the
//!   cautious reading.
//! - A clear of the book cancels our resting orders.
//!
//! Fixed capacities: [`SimVenue::MAX_RESTING`] resting orders, [`SimVenue::MAX_PENDING`]
//! orders in flight, [`SimVenue::MAX_REPORTS`] reports not yet collected. Nothing allocates
//! after [`SimVenue::new`].

use tickflow_core::{Price, Quantity, Side};

use crate::book::{Effect, LevelView, OrderBook};
use crate::msg::{OrderKind, OrderMsg};

/// What happened to one of our orders.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReportKind {
    /// `qty` traded at `price`.
    Fill,
    /// The order is working at the venue (GTC rest).
    Accepted,
    /// The order is done without (further) fills: IOC rest, cancel, book clear.
    Canceled,
    /// The order was refused (venue full, unknown order to cancel, bad message).
    Rejected,
}

/// A report to the strategy side.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Report {
    /// Our order id.
    pub id: u64,
    /// What happened.
    pub kind: ReportKind,
    /// Side of the order.
    pub side: Side,
    /// Fill price (limit price otherwise).
    pub price: Price,
    /// Filled quantity (0 unless a fill).
    pub qty: Quantity,
    /// Quantity still working after this report.
    pub leaves: Quantity,
    /// Whether the fill took liquidity.
    pub taker: bool,
    /// Feed time.
    pub ts_ns: u64,
}

#[derive(Clone, Copy, Debug)]
struct Resting {
    id: u64,
    side: Side,
    price: i64,
    leaves: i64,
    seq: u64,
    ahead: i64,
}

impl Resting {
    /// The report that this order is done, canceled at `ts_ns`.
    fn canceled(&self, ts_ns: u64) -> Report {
        Report {
            id: self.id,
            kind: ReportKind::Canceled,
            side: self.side,
            price: Price::from_raw(self.price),
            qty: Quantity::ZERO,
            leaves: Quantity::ZERO,
            taker: false,
            ts_ns,
        }
    }
}

/// Venue settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VenueConfig {
    /// Feed time from send to arrival.
    pub latency_ns: u64,
}

/// See the module documentation.
pub struct SimVenue {
    cfg: VenueConfig,
    resting: [Option<Resting>; Self::MAX_RESTING],
    pending: [(u64, OrderMsg); Self::MAX_PENDING],
    pending_head: usize,
    pending_len: usize,
    reports: [Report; Self::MAX_REPORTS],
    reports_head: usize,
    reports_len: usize,
    /// Reports that found the report queue full (a sizing error; should stay 0).
    pub reports_dropped: u64,
    depth: [LevelView; 32],
}

const EMPTY_REPORT: Report = Report {
    id: 0,
    kind: ReportKind::Rejected,
    side: Side::None,
    price: Price::ZERO,
    qty: Quantity::ZERO,
    leaves: Quantity::ZERO,
    taker: false,
    ts_ns: 0,
};

const EMPTY_ORDER: OrderMsg = OrderMsg {
    id: 0,
    price: Price::ZERO,
    qty: Quantity::ZERO,
    ts_ns: 0,
    side: Side::None,
    kind: OrderKind::Cancel,
};

/// The report refusing order `o`.
fn rejected(o: &OrderMsg, ts_ns: u64) -> Report {
    Report {
        id: o.id,
        side: o.side,
        price: o.price,
        ts_ns,
        ..EMPTY_REPORT
    }
}

#[inline]
fn better_or_equal(side: Side, a: i64, b: i64) -> bool {
    // For a buyer a lower price is better to pay; this is "a is at least as aggressive as b"
    // from the point of view of an order on `side`.
    match side {
        Side::Buy => a >= b,
        _ => a <= b,
    }
}

impl SimVenue {
    /// Our resting orders at most.
    pub const MAX_RESTING: usize = 32;
    /// Orders in flight at most.
    pub const MAX_PENDING: usize = 64;
    /// Reports waiting to be collected at most.
    pub const MAX_REPORTS: usize = 256;

    /// A venue with nothing working.
    pub fn new(cfg: VenueConfig) -> Self {
        Self {
            cfg,
            resting: [None; Self::MAX_RESTING],
            pending: [(0, EMPTY_ORDER); Self::MAX_PENDING],
            pending_head: 0,
            pending_len: 0,
            reports: [EMPTY_REPORT; Self::MAX_REPORTS],
            reports_head: 0,
            reports_len: 0,
            reports_dropped: 0,
            depth: [LevelView::default(); 32],
        }
    }

    #[inline]
    fn report(&mut self, r: Report) {
        if self.reports_len == Self::MAX_REPORTS {
            self.reports_dropped += 1;
            return;
        }
        let at = (self.reports_head + self.reports_len) % Self::MAX_REPORTS;
        self.reports[at] = r;
        self.reports_len += 1;
    }

    /// The oldest report not yet collected.
    #[inline]
    pub fn next_report(&mut self) -> Option<Report> {
        if self.reports_len == 0 {
            return None;
        }
        let r = self.reports[self.reports_head];
        self.reports_head = (self.reports_head + 1) % Self::MAX_REPORTS;
        self.reports_len -= 1;
        Some(r)
    }

    /// Decodes an order frame from the gateway and submits it, sent at feed time `now_ns`.
    #[inline]
    pub fn submit_frame(
        &mut self,
        frame: &[u8; OrderMsg::WIRE_LEN],
        book: &OrderBook,
        now_ns: u64,
    ) {
        match OrderMsg::decode(frame) {
            Ok(o) => self.submit(o, book, now_ns),
            Err(_) => self.report(Report {
                id: u64::from_le_bytes(frame[0..8].try_into().unwrap_or([0; 8])),
                ts_ns: now_ns,
                ..EMPTY_REPORT
            }),
        }
    }

    /// Submits an order sent at feed time `now_ns`.
    #[inline]
    pub fn submit(&mut self, o: OrderMsg, book: &OrderBook, now_ns: u64) {
        if self.cfg.latency_ns == 0 {
            self.arrive(o, book, now_ns);
            return;
        }
        if self.pending_len == Self::MAX_PENDING {
            self.report(rejected(&o, now_ns));
            return;
        }
        let at = (self.pending_head + self.pending_len) % Self::MAX_PENDING;
        self.pending[at] = (now_ns.saturating_add(self.cfg.latency_ns), o);
        self.pending_len += 1;
    }

    /// Lets in-flight orders that have arrived by feed time `now_ns` reach the book. Call before
    /// applying the feed event stamped `now_ns`.
    #[inline]
    pub fn advance(&mut self, book: &OrderBook, now_ns: u64) {
        while self.pending_len > 0 {
            let (arrival, o) = self.pending[self.pending_head];
            if arrival > now_ns {
                break;
            }
            self.pending_head = (self.pending_head + 1) % Self::MAX_PENDING;
            self.pending_len -= 1;
            self.arrive(o, book, arrival);
        }
    }

    fn arrive(&mut self, o: OrderMsg, book: &OrderBook, now_ns: u64) {
        if o.kind == OrderKind::Cancel {
            let found = self
                .resting
                .iter_mut()
                .find(|r| r.is_some_and(|r| r.id == o.id));
            match found {
                Some(slot) => {
                    let r = slot.take().expect("found");
                    self.report(r.canceled(now_ns));
                }
                // Already filled or canceled: the cancel is refused, nothing else changes.
                None => self.report(Report {
                    id: o.id,
                    ts_ns: now_ns,
                    ..EMPTY_REPORT
                }),
            }
            return;
        }
        let mut leaves = o.qty.raw();
        if leaves <= 0 || o.side == Side::None {
            self.report(rejected(&o, now_ns));
            return;
        }
        // Take what crosses, level by level, at the levels' prices.
        let opposite = if o.side == Side::Buy {
            Side::Sell
        } else {
            Side::Buy
        };
        let n = book.depth(opposite, &mut self.depth);
        for i in 0..n {
            let l = self.depth[i];
            if leaves == 0 || !better_or_equal(o.side, o.price.raw(), l.price.raw()) {
                break;
            }
            let take = leaves.min(l.size.raw());
            leaves -= take;
            self.report(Report {
                id: o.id,
                kind: ReportKind::Fill,
                side: o.side,
                price: l.price,
                qty: Quantity::from_raw(take),
                leaves: Quantity::from_raw(leaves),
                taker: true,
                ts_ns: now_ns,
            });
        }
        if leaves == 0 {
            return;
        }
        let done = |kind| Report {
            id: o.id,
            kind,
            side: o.side,
            price: o.price,
            qty: Quantity::ZERO,
            leaves: Quantity::ZERO,
            taker: false,
            ts_ns: now_ns,
        };
        if o.kind == OrderKind::LimitIoc {
            self.report(done(ReportKind::Canceled));
            return;
        }
        let ahead = book.level(o.side, o.price).map_or(0, |l| l.size.raw());
        let rest = Resting {
            id: o.id,
            side: o.side,
            price: o.price.raw(),
            leaves,
            seq: book.next_seq(),
            ahead,
        };
        match self.resting.iter_mut().find(|r| r.is_none()) {
            Some(slot) => {
                *slot = Some(rest);
                self.report(Report {
                    leaves: Quantity::from_raw(leaves),
                    ..done(ReportKind::Accepted)
                });
            }
            None => self.report(done(ReportKind::Rejected)),
        }
    }

    /// Moves our resting orders after a feed event had `effect` on the book.
    #[inline]
    pub fn on_effect(&mut self, effect: Effect, now_ns: u64) {
        match effect {
            Effect::None => {}
            Effect::Reduced {
                side,
                price,
                seq,
                qty,
            } => {
                for r in self.resting.iter_mut().flatten() {
                    if r.side == side && r.price == price.raw() && seq < r.seq {
                        r.ahead = (r.ahead - qty.raw()).max(0);
                    }
                }
            }
            Effect::Traded {
                side,
                price,
                seq,
                qty,
                reduced,
            } => self.on_trade(side, price.raw(), seq, qty.raw(), reduced, now_ns),
            Effect::Cleared => {
                for i in 0..Self::MAX_RESTING {
                    if let Some(r) = self.resting[i].take() {
                        self.report(r.canceled(now_ns));
                    }
                }
            }
        }
    }

    fn on_trade(&mut self, side: Side, price: i64, seq: u64, qty: i64, reduced: bool, now: u64) {
        let mut available = qty;
        for i in 0..Self::MAX_RESTING {
            let Some(mut r) = self.resting[i] else {
                continue;
            };
            if r.side != side {
                continue;
            }
            // A trade at a price worse (for the resting side) than ours went through us.
            let through = match side {
                Side::Buy => price < r.price,
                _ => price > r.price,
            };
            let at_ours = price == r.price;
            let fills = through || (at_ours && seq >= r.seq && r.ahead == 0);
            if at_ours && seq < r.seq && reduced {
                r.ahead = (r.ahead - qty).max(0);
            }
            if fills && available > 0 {
                let take = available.min(r.leaves);
                available -= take;
                r.leaves -= take;
                self.report(Report {
                    id: r.id,
                    kind: ReportKind::Fill,
                    side: r.side,
                    price: Price::from_raw(r.price),
                    qty: Quantity::from_raw(take),
                    leaves: Quantity::from_raw(r.leaves),
                    taker: false,
                    ts_ns: now,
                });
            }
            self.resting[i] = (r.leaves > 0).then_some(r);
        }
    }

    /// Queue position of our resting order `id`: size ahead of it.
    pub fn queue_ahead(&self, id: u64) -> Option<Quantity> {
        self.resting
            .iter()
            .flatten()
            .find(|r| r.id == id)
            .map(|r| Quantity::from_raw(r.ahead))
    }

    /// Our resting orders: (id, side, price, leaves, queue sequence number).
    pub fn resting(&self) -> impl Iterator<Item = (u64, Side, Price, Quantity, u64)> + '_ {
        self.resting.iter().flatten().map(|r| {
            (
                r.id,
                r.side,
                Price::from_raw(r.price),
                Quantity::from_raw(r.leaves),
                r.seq,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::BookCapacity;
    use crate::msg::{Action, FeedMsg};

    fn q(x: i64) -> Quantity {
        Quantity::from_raw(x)
    }
    fn p(x: i64) -> Price {
        Price::from_raw(x)
    }

    fn book() -> OrderBook {
        let mut b = OrderBook::new(BookCapacity {
            orders: 64,
            levels: 16,
        });
        b.add(Side::Buy, 1, p(99), q(5)).unwrap();
        b.add(Side::Buy, 2, p(99), q(3)).unwrap();
        b.add(Side::Sell, 3, p(101), q(4)).unwrap();
        b.add(Side::Sell, 4, p(102), q(10)).unwrap();
        b
    }

    fn order(id: u64, side: Side, price: i64, qty: i64, kind: OrderKind) -> OrderMsg {
        OrderMsg {
            id,
            price: p(price),
            qty: q(qty),
            ts_ns: 0,
            side,
            kind,
        }
    }

    fn drain(v: &mut SimVenue) -> Vec<Report> {
        std::iter::from_fn(|| v.next_report()).collect()
    }

    fn feed(b: &mut OrderBook, v: &mut SimVenue, m: FeedMsg) {
        let e = b.apply(&m).unwrap();
        v.on_effect(e, m.ts_ns);
    }

    #[test]
    fn crossing_orders_walk_the_book_and_ioc_rests_are_canceled() {
        let b = book();
        let mut v = SimVenue::new(VenueConfig::default());
        v.submit(order(10, Side::Buy, 102, 6, OrderKind::LimitIoc), &b, 0);
        v.submit(order(11, Side::Buy, 101, 6, OrderKind::LimitIoc), &b, 0);
        let r = drain(&mut v);
        let fills: Vec<_> = r
            .iter()
            .map(|r| (r.id, r.kind, r.price.raw(), r.qty.raw()))
            .collect();
        assert_eq!(
            fills,
            [
                (10, ReportKind::Fill, 101, 4),
                (10, ReportKind::Fill, 102, 2),
                (11, ReportKind::Fill, 101, 4),
                (11, ReportKind::Canceled, 101, 0),
            ]
        );
    }

    #[test]
    fn resting_order_fills_only_after_the_queue_ahead() {
        let mut b = book();
        let mut v = SimVenue::new(VenueConfig::default());
        v.submit(order(20, Side::Buy, 99, 4, OrderKind::LimitGtc), &b, 0);
        assert_eq!(drain(&mut v)[0].kind, ReportKind::Accepted);
        assert_eq!(v.queue_ahead(20), Some(q(8)));
        // Someone joins behind us.
        feed(
            &mut b,
            &mut v,
            FeedMsg {
                order_id: 5,
                price: p(99),
                size: q(7),
                ..FeedMsg::new(1, Action::Add, Side::Buy)
            },
        );
        assert_eq!(v.queue_ahead(20), Some(q(8)));
        // The head executes 5 and order 2 cancels 3: nothing ahead of us, no fill yet.
        feed(
            &mut b,
            &mut v,
            FeedMsg {
                order_id: 1,
                size: q(5),
                ..FeedMsg::new(2, Action::Execute, Side::Buy)
            },
        );
        feed(
            &mut b,
            &mut v,
            FeedMsg {
                order_id: 2,
                size: q(3),
                ..FeedMsg::new(3, Action::Cancel, Side::Buy)
            },
        );
        assert_eq!(v.queue_ahead(20), Some(q(0)));
        assert_eq!(
            b.queue_ahead(Side::Buy, p(99), v.resting().next().unwrap().4),
            q(0),
            "the venue's count agrees with the book's queue"
        );
        assert!(drain(&mut v).is_empty());
        // The order behind us executes 6: we were first, so we fill all 4.
        feed(
            &mut b,
            &mut v,
            FeedMsg {
                order_id: 5,
                size: q(6),
                ..FeedMsg::new(4, Action::Execute, Side::Buy)
            },
        );
        let r = drain(&mut v);
        assert_eq!(
            (r[0].kind, r[0].qty, r[0].leaves, r[0].taker),
            (ReportKind::Fill, q(4), q(0), false)
        );
        assert_eq!(v.resting().count(), 0);
    }

    #[test]
    fn trade_through_fills_and_clear_cancels() {
        let mut b = book();
        let mut v = SimVenue::new(VenueConfig { latency_ns: 10 });
        v.submit(order(30, Side::Sell, 103, 5, OrderKind::LimitGtc), &b, 0);
        v.submit(order(31, Side::Sell, 104, 5, OrderKind::LimitGtc), &b, 0);
        v.advance(&b, 5);
        assert!(drain(&mut v).is_empty(), "still in flight");
        v.advance(&b, 10);
        assert_eq!(drain(&mut v).len(), 2);
        // A buyer lifts the 102 level entirely and trades hidden at 105: through both of ours.
        feed(
            &mut b,
            &mut v,
            FeedMsg {
                price: p(105),
                size: q(7),
                ..FeedMsg::new(11, Action::Trade, Side::Buy)
            },
        );
        let r = drain(&mut v);
        assert_eq!(
            r.iter().map(|r| (r.id, r.qty.raw())).collect::<Vec<_>>(),
            [(30, 5), (31, 2)]
        );
        feed(&mut b, &mut v, FeedMsg::new(12, Action::Clear, Side::None));
        let r = drain(&mut v);
        assert_eq!((r[0].id, r[0].kind), (31, ReportKind::Canceled));
        // Canceling an order that is gone is refused.
        v.submit(order(31, Side::Sell, 0, 0, OrderKind::Cancel), &b, 13);
        v.advance(&b, 100);
        assert_eq!(drain(&mut v)[0].kind, ReportKind::Rejected);
    }
}
