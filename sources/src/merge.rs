//! k-way merge of part readers in event-time order.
//!
//! Ties are broken by part position, so the merged order is deterministic. A bad row has no
//! trustworthy time: it is passed on as soon as its reader reaches it.
//!
//! A part may be *deferred* with a lower bound of its event times (a recorded day starts no
//! earlier than that day's midnight): it is not read — and so not opened, when its reader opens
//! lazily ([`crate::LazyPart`]) — until the merge reaches that time. Opening a day's files only
//! when the replay gets to that day spreads the decompression over the run instead of doing it
//! all before the first record. The merged order is the same: a deferred part joins before any
//! record at or after its bound is passed on.

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
    /// Deferred readers by (lower bound of their event times, index), latest first.
    deferred: Vec<(Timestamp, usize)>,
}

impl Merger {
    /// A merger over readers, in part order.
    pub fn new(readers: Vec<Box<dyn PartReader>>) -> Self {
        Self::with_deferred(readers.into_iter().map(|r| (None, r)).collect())
    }

    /// A merger over `parts` (numbered as in their plan), each opened lazily (a [`LazyPart`])
    /// and first read when the merge reaches its earliest event time.
    ///
    /// [`LazyPart`]: crate::LazyPart
    pub fn lazy<'a>(
        parts: impl IntoIterator<Item = (usize, &'a crate::Part)>,
        registry: &std::sync::Arc<tickflow_core::InstrumentRegistry>,
    ) -> Self {
        Self::with_deferred(
            parts
                .into_iter()
                .map(|(i, part)| {
                    let lazy = crate::LazyPart::new(part.clone(), i, registry.clone());
                    (part.earliest(), Box::new(lazy) as Box<dyn PartReader>)
                })
                .collect(),
        )
    }

    /// A merger over readers in part order, each with an optional lower bound of its event
    /// times: a reader with a bound is first read when the merge reaches it.
    pub fn with_deferred(parts: Vec<(Option<Timestamp>, Box<dyn PartReader>)>) -> Self {
        let mut readers = Vec::with_capacity(parts.len());
        let mut needs_refill = Vec::new();
        let mut deferred = Vec::new();
        for (i, (bound, r)) in parts.into_iter().enumerate() {
            readers.push(r);
            match bound {
                Some(t) => deferred.push((t, i)),
                None => needs_refill.push(i),
            }
        }
        needs_refill.reverse();
        deferred.sort_unstable_by(|a, b| b.cmp(a));
        Self {
            heads: readers.iter().map(|_| None).collect(),
            readers,
            heap: BinaryHeap::new(),
            needs_refill,
            deferred,
        }
    }

    /// The next item in event-time order, or `None` when every part is exhausted.
    pub fn next_item(&mut self) -> Option<SourceItem> {
        loop {
            if let Some(bad) = self.refill() {
                return Some(bad);
            }
            // Bring in the deferred parts the merge has reached (all of them once the others
            // are exhausted), then read their heads before passing anything on.
            let next = self.heap.peek().map(|Reverse((t, _))| *t);
            let mut joined = false;
            while let Some(&(bound, i)) = self.deferred.last() {
                if next.is_some_and(|t| t < bound) {
                    break;
                }
                self.deferred.pop();
                self.needs_refill.push(i);
                joined = true;
            }
            if joined {
                continue;
            }
            while let Some(Reverse((_, i))) = self.heap.pop() {
                if let Some(e) = self.heads[i].take() {
                    self.needs_refill.push(i);
                    return Some(SourceItem::Event(e));
                }
            }
            return None;
        }
    }

    /// Reads the heads of the readers that need one; a bad row is handed back at once.
    fn refill(&mut self) -> Option<SourceItem> {
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
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

    /// A reader that records when it is first read.
    struct Watched(VecReader, Arc<AtomicBool>);
    impl PartReader for Watched {
        fn next_item(&mut self) -> Option<SourceItem> {
            self.1.store(true, Ordering::Relaxed);
            self.0.next_item()
        }
    }

    #[test]
    fn deferred_parts_are_read_only_when_the_merge_reaches_them_and_order_is_kept() {
        let parts = || {
            vec![
                vec![ev(10, 0), ev(20, 0), ev(40, 0)],
                vec![ev(20, 1), ev(30, 1)],
                vec![ev(5, 2), ev(35, 2)],
            ]
        };
        let eager: Vec<_> = {
            let mut m = Merger::new(
                parts()
                    .into_iter()
                    .map(|v| Box::new(VecReader(v.into_iter())) as Box<dyn PartReader>)
                    .collect(),
            );
            std::iter::from_fn(|| m.next_item()).collect()
        };
        let read = Arc::new(AtomicBool::new(false));
        let mut deferred = Vec::new();
        for (i, v) in parts().into_iter().enumerate() {
            let bound = [None, Some(Timestamp(15)), Some(Timestamp(1))][i];
            let r: Box<dyn PartReader> = if i == 1 {
                Box::new(Watched(VecReader(v.into_iter()), read.clone()))
            } else {
                Box::new(VecReader(v.into_iter()))
            };
            deferred.push((bound, r));
        }
        let mut m = Merger::with_deferred(deferred);
        let first = m.next_item().unwrap();
        let second = m.next_item().unwrap();
        assert!(
            !read.load(Ordering::Relaxed),
            "part 1 is not read before time 15"
        );
        let mut lazy = vec![first, second];
        lazy.extend(std::iter::from_fn(|| m.next_item()));
        assert!(read.load(Ordering::Relaxed));
        assert_eq!(lazy, eager, "the same order as reading every part at once");
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
