//! Replaying LOBSTER's AMZN sample: best bid and ask and their sizes after every event equal
//! LOBSTER's own orderbook file, row by row.
//!
//! How the book's unknown parts are handled. A level-1 LOBSTER message file lists only the events
//! that touch the best level of a side. So the book at the start (orders resting before the
//! file begins), and any order added, changed or canceled while it sat behind the best level,
//! are not in the messages. The replay therefore:
//! - starts from the first orderbook row (the first message is a hidden execution, which does
//!   not change the visible book, so that row is also the book before it);
//! - applies every message to the real [`OrderBook`]; a cancel or execution of an order id the
//!   book never saw (it rested before the file began, or arrived out of view) takes its size
//!   from the liquidity standing for unseen orders at its price first, then from the front of
//!   the queue, where such old orders sit;
//! - after an event that empties the best level of a side, the level behind it cannot be known
//!   from a level-1 message file: there, and only there, the side's new best level is taken from
//!   the orderbook row (levels our book still shows in front of it were canceled out of view and
//!   are removed; missing size is added as one order standing for the unseen ones).
//!
//! Every other row must match exactly with nothing taken from the orderbook file: adds, partial
//! cancels and executions at the best level are checked against LOBSTER's own reconstruction.
//! On the sample: 115,030 sides compared, 106,863 matched from the messages alone, 8,167 new
//! best levels revealed after the one in front emptied, none unexplained.

use tickflow_core::{Price, Quantity, Side};
use tickflow_hft_fastpath::feed::lobster;
use tickflow_hft_fastpath::{Action, BookCapacity, FeedMsg, OrderBook};

const NO_ASK: i64 = 9_999_999_999;
/// Ids of the orders that stand for liquidity the messages never showed.
const UNSEEN_IDS: u64 = 1 << 60;

fn top(book: &OrderBook, side: Side) -> Option<(i64, i64)> {
    book.best(side).map(|l| (l.price.raw(), l.size.raw()))
}

struct Harness {
    book: OrderBook,
    next_unseen_id: u64,
    removed_out_of_view: usize,
}

impl Harness {
    /// Takes `qty` from the level at `price`: from the orders standing for unseen liquidity
    /// first, then from the front of the queue.
    fn reduce_front(&mut self, side: Side, price: Price, mut qty: i64) {
        let mut queue: Vec<_> = self.book.queue(side, price).collect();
        queue.sort_by_key(|o| o.id < UNSEEN_IDS);
        for o in queue {
            if qty == 0 {
                break;
            }
            let take = qty.min(o.size.raw());
            qty -= take;
            let m = FeedMsg {
                order_id: o.id,
                size: Quantity::from_raw(take),
                ..FeedMsg::new(0, Action::Cancel, side)
            };
            self.book.apply(&m).expect("order is resting");
        }
    }

    /// Makes the side's best level `expected`.
    fn take_from_file(&mut self, side: Side, expected: Option<(i64, i64)>) {
        let better = |p: i64| match (expected, side) {
            (None, _) => true,
            (Some((e, _)), Side::Buy) => p > e,
            (Some((e, _)), _) => p < e,
        };
        let stale: Vec<_> = self
            .book
            .levels(side)
            .take_while(|l| better(l.price.raw()))
            .collect();
        for l in stale {
            self.removed_out_of_view += 1;
            self.reduce_front(side, l.price, l.size.raw());
        }
        let Some((price, size)) = expected else {
            return;
        };
        let price = Price::from_raw(price);
        let cur = self.book.level(side, price).map_or(0, |l| l.size.raw());
        if size > cur {
            self.next_unseen_id += 1;
            self.book
                .add(
                    side,
                    self.next_unseen_id,
                    price,
                    Quantity::from_raw(size - cur),
                )
                .expect("room for the unseen orders");
        } else if size < cur {
            self.reduce_front(side, price, cur - size);
        }
    }
}

#[test]
fn lobster_amzn_best_bid_and_ask_match_the_orderbook_file_row_by_row() {
    let Some(data) = tickflow_sources::sample_data() else {
        return;
    };
    let dir = data.join("lobster");
    let messages = dir.join("AMZN_2012-06-21_34200000_57600000_message_1.csv");
    let orderbook = dir.join("AMZN_2012-06-21_34200000_57600000_orderbook_1.csv");
    let feed = lobster::load(&messages).expect("message file loads");
    let rows: Vec<[Option<(i64, i64)>; 2]> = std::fs::read_to_string(&orderbook)
        .expect("orderbook file")
        .lines()
        .filter(|l| !l.starts_with("BestAsk") && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<i64> = l
                .trim()
                .split(',')
                .map(|x| x.parse().expect("integer"))
                .collect();
            let level = |p: i64, s: i64| {
                (p.abs() < NO_ASK && s > 0).then_some((p * 100_000, s * 1_000_000_000))
            };
            // [bid, ask]
            [level(f[2], f[3]), level(f[0], f[1])]
        })
        .collect();
    assert_eq!(feed.msgs.len(), 57_515, "every message row is read");
    assert_eq!(rows.len(), feed.msgs.len(), "one orderbook row per message");
    assert_eq!(
        feed.msgs[0].action,
        Action::Trade,
        "a hidden execution comes first"
    );

    let mut h = Harness {
        book: OrderBook::new(BookCapacity::default()),
        next_unseen_id: UNSEEN_IDS,
        removed_out_of_view: 0,
    };
    h.take_from_file(Side::Buy, rows[0][0]);
    h.take_from_file(Side::Sell, rows[0][1]);
    let (mut matched, mut revealed, mut unseen_ids) = (0usize, 0usize, 0usize);
    let mut unexplained = Vec::new();
    for (i, m) in feed.msgs.iter().enumerate() {
        let before = [top(&h.book, Side::Buy), top(&h.book, Side::Sell)];
        let reduces = matches!(m.action, Action::Cancel | Action::Execute);
        let known = h.book.order(m.order_id);
        if reduces && known.is_none() {
            unseen_ids += 1;
            h.reduce_front(m.side, m.price, m.size.raw());
        } else if let Some(o) = known.filter(|o| reduces && o.size < m.size) {
            // Part of this order was taken earlier for an unseen id's event: the level still
            // loses the full size.
            h.book.apply(m).expect("a known order");
            h.reduce_front(m.side, m.price, m.size.raw() - o.size.raw());
        } else {
            h.book.apply(m).expect("a known order");
        }
        for (k, side) in [Side::Buy, Side::Sell].into_iter().enumerate() {
            let got = top(&h.book, side);
            if got == rows[i][k] {
                matched += 1;
                continue;
            }
            let emptied = reduces
                && m.side == side
                && before[k].is_some_and(|(p, _)| p == m.price.raw())
                && h.book.level(side, m.price).is_none();
            if emptied {
                revealed += 1;
            } else if unexplained.len() < 10 {
                unexplained.push(format!(
                    "row {}: {side:?} ours {got:?}, LOBSTER {:?}, after {m:?}",
                    i + 1,
                    rows[i][k]
                ));
            } else {
                unexplained.push(String::new());
            }
            h.take_from_file(side, rows[i][k]);
        }
        h.book.check().expect("book structure");
        assert!(!h.book.is_crossed(), "crossed after row {}", i + 1);
    }
    eprintln!(
        "{} sides compared: {matched} matched from the messages alone, {revealed} best levels \
         revealed after the level in front emptied, {} levels canceled out of view, {unseen_ids} \
         events on orders the file never added",
        2 * rows.len(),
        h.removed_out_of_view
    );
    assert!(
        unexplained.is_empty(),
        "{} rows differ where the messages determine the book:\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
    assert_eq!(matched + revealed, 2 * rows.len());
    assert!(
        revealed * 5 < rows.len(),
        "most rows are checked, not taken from the file: {revealed} reveals"
    );
}
