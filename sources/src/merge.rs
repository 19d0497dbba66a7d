//! k-way merge of part readers in event-time order.
//!
//! Ties are broken by part position, so the merged order is deterministic. A bad row has no
//! trustworthy time: it is passed on as soon as its reader reaches it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use tickflow_core::{MarketEvent, Timestamp};

use crate::{PartReader, SourceItem};

/// Merges several parts into one stream ordered by event time (stable across ties).
pub struct Merger {
    readers: Vec<Box<dyn PartReader>>,
    heads: Vec<Option<MarketEvent>>,
    heap: BinaryHeap<Reverse<(Timestamp, usize)>>,
    /// Readers whose head was taken (or that were never read): read before the next pop.
    needs_refill: Vec<usize>,
}

impl Merger {
    /// A merger over readers, in part order.
    pub fn new(readers: Vec<Box<dyn PartReader>>) -> Self {
        let heads = readers.iter().map(|_| None).collect();
        let needs_refill = (0..readers.len()).rev().collect();
        Self {
            readers,
            heads,
            heap: BinaryHeap::new(),
            needs_refill,
        }
    }

    /// The next item in event-time order, or `None` when every part is exhausted.
    pub fn next_item(&mut self) -> Option<SourceItem> {
        while let Some(i) = self.needs_refill.pop() {
            match self.readers[i].next_item() {
                Some(SourceItem::Event(e)) => {
                    self.heap.push(Reverse((e.ts_event(), i)));
                    self.heads[i] = Some(e);
                }
                Some(bad @ SourceItem::Bad(_)) => {
                    // Passed on at once; the reader is read again on the next call.
                    self.needs_refill.push(i);
                    return Some(bad);
                }
                None => {}
            }
        }
        while let Some(Reverse((_, i))) = self.heap.pop() {
            if let Some(e) = self.heads[i].take() {
                self.needs_refill.push(i);
                return Some(SourceItem::Event(e));
            }
        }
        None
    }
}

impl PartReader for Merger {
    fn next_item(&mut self) -> Option<SourceItem> {
        Merger::next_item(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickflow_core::{InstrumentId, Price, Quantity, Reject, RejectReason, SeqNo, Side, Trade};

    struct VecReader(std::vec::IntoIter<SourceItem>);
    impl PartReader for VecReader {
        fn next_item(&mut self) -> Option<SourceItem> {
            self.0.next()
        }
    }

    fn ev(t: i64, part: u16) -> SourceItem {
        SourceItem::Event(MarketEvent::Trade(Trade {
            instrument: InstrumentId(0),
            ts_event: Timestamp(t),
            ts_recv: Timestamp(t),
            price: Price::from_raw(1),
            size: Quantity::from_raw(1),
            aggressor: Side::None,
            trade_id: None,
            suspicious: false,
            seq: SeqNo::new(part, t as u64),
        }))
    }
    fn bad(line: u64) -> SourceItem {
        SourceItem::Bad(Reject {
            instrument: None,
            ts_event: None,
            reason: RejectReason::Malformed,
            detail: String::new(),
            origin: "x".into(),
            line,
            seq: SeqNo(line),
        })
    }

    #[test]
    fn merges_in_time_order_and_keeps_every_bad_row() {
        let a = vec![ev(1, 0), bad(100), ev(5, 0), ev(9, 0)];
        let b = vec![bad(200), ev(2, 1), ev(5, 1), bad(201), bad(202), ev(7, 1)];
        let mut m = Merger::new(vec![
            Box::new(VecReader(a.into_iter())),
            Box::new(VecReader(b.into_iter())),
        ]);
        let mut times = Vec::new();
        let mut bads = Vec::new();
        while let Some(item) = m.next_item() {
            match item {
                SourceItem::Event(e) => times.push((e.ts_event().nanos(), e.seq().source())),
                SourceItem::Bad(r) => bads.push(r.line),
            }
        }
        assert_eq!(times, vec![(1, 0), (2, 1), (5, 0), (5, 1), (7, 1), (9, 0)]);
        bads.sort();
        assert_eq!(bads, vec![100, 200, 201, 202]);
    }
}
