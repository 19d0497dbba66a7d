//! Replaying the CME ESH4 market-by-order file: the fast path's own DBN decoder agrees with the
//! `dbn` crate record by record, and the book's invariants hold after every complete event.

use dbn::decode::{DbnMetadata, DecodeRecord};
use tickflow_core::Side;
use tickflow_hft_fastpath::feed::{self, dbn as fast_dbn};
use tickflow_hft_fastpath::{Action, BookCapacity, OrderBook};

fn esh4() -> Option<std::path::PathBuf> {
    Some(tickflow_sources::sample_data()?.join("cme-mbo/esh4-glbx-mdp3-20231225.mbo.dbn.zst"))
}

#[test]
fn fast_dbn_decoder_agrees_with_the_dbn_crate() {
    let Some(path) = esh4() else {
        return;
    };
    let mut raw = Vec::new();
    std::io::Read::read_to_end(
        &mut zstd::stream::read::Decoder::new(std::fs::File::open(&path).unwrap()).unwrap(),
        &mut raw,
    )
    .unwrap();
    let (ours, _) = fast_dbn::decode(&raw).expect("decodes");
    let mut dec = dbn::decode::DbnDecoder::new(raw.as_slice()).expect("dbn reads it");
    assert!(dec.metadata().version >= 1);
    let mut at: std::collections::HashMap<u32, usize> = Default::default();
    let mut compared = 0;
    while let Some(r) = dec.decode_record::<dbn::MboMsg>().expect("record") {
        let r = r.clone();
        let action = r.action as u8;
        if action == b'N' {
            continue;
        }
        let k = at.entry(r.hd.instrument_id).or_default();
        let m = ours[&r.hd.instrument_id][*k];
        *k += 1;
        let expected_action = match action {
            b'A' => Action::Add,
            b'C' => Action::Cancel,
            b'M' => Action::Modify,
            b'R' => Action::Clear,
            b'F' => Action::Fill,
            b'T' => Action::Trade,
            other => panic!("unexpected action {other}"),
        };
        assert_eq!(m.action, expected_action);
        assert_eq!(m.order_id, r.order_id);
        assert_eq!(m.ts_ns, r.hd.ts_event);
        if r.price != dbn::UNDEF_PRICE {
            assert_eq!(m.price.raw(), r.price);
        }
        assert_eq!(m.size.raw(), i64::from(r.size) * 1_000_000_000);
        let side = match r.side as u8 {
            b'B' => Side::Buy,
            b'A' => Side::Sell,
            _ => Side::None,
        };
        assert_eq!(m.side, side);
        if r.flags.is_last() {
            assert!(m.is_last());
        }
        compared += 1;
    }
    assert!(compared > 60_000, "{compared} records compared");
    assert_eq!(compared, ours.values().map(Vec::len).sum::<usize>());
}

/// 2023-12-25 22:00 and 23:00 UTC: the pre-open of the Christmas-night session (16:00–17:00
/// Chicago). In the pre-open, orders may cross without trading; the opening match at 17:00
/// uncrosses the book. Outside it the book must never be crossed after a complete event.
const PRE_OPEN: std::ops::Range<u64> = 1_703_541_600_000_000_000..1_703_545_200_000_000_000;

#[test]
fn esh4_book_invariants_hold_after_every_event() {
    let Some(path) = esh4() else {
        return;
    };
    let feed = feed::load(&path).expect("loads");
    assert!(feed.msgs.len() > 50_000, "{} messages", feed.msgs.len());
    assert_eq!(feed.tick.raw(), 250_000_000, "ES trades in quarter points");
    let mut book = OrderBook::new(BookCapacity::default());
    let (mut events, mut errors, mut crossed_in_pre_open) = (0, Vec::new(), 0);
    for (i, m) in feed.msgs.iter().enumerate() {
        if let Err(e) = book.apply(m) {
            // Fills of orders that rested before the recording began (it has no snapshot): a
            // fill does not change the book (the cancel that follows does), so the book is
            // still whole.
            assert_eq!(m.action, Action::Fill, "message {i}: {e}");
            errors.push(format!("message {i}: {e}"));
        }
        // After every message: the level it names, and (after a complete event) the five best
        // levels of each side. The whole book, a walk over every resting order, after every
        // 256th event and at the end.
        if let Err(e) = book.check_level(m.side, m.price) {
            panic!("after message {i}: {e}");
        }
        if m.is_last() {
            events += 1;
            for side in [Side::Buy, Side::Sell] {
                let top: Vec<_> = book.levels(side).take(5).collect();
                for l in top {
                    if let Err(e) = book.check_level(side, l.price) {
                        panic!("after message {i}: {e}");
                    }
                }
            }
            if events % 256 == 0
                && let Err(e) = book.check()
            {
                panic!("after message {i}: {e}");
            }
            if book.is_crossed() && PRE_OPEN.contains(&m.ts_ns) {
                crossed_in_pre_open += 1;
                continue;
            }
            assert!(
                !book.is_crossed(),
                "crossed after message {i}: bid {:?} ask {:?}",
                book.best_bid(),
                book.best_ask()
            );
        }
        for l in book.levels(Side::Buy).chain(book.levels(Side::Sell)) {
            assert!(
                l.size.raw() > 0 && l.orders > 0,
                "empty level after message {i}"
            );
        }
    }
    book.check().expect("final book");
    eprintln!(
        "{} messages, {events} complete events ({crossed_in_pre_open} crossed in the pre-open), \
         {} fills of orders from before the recording; final book {} orders, best {:?} / {:?}",
        feed.msgs.len(),
        errors.len(),
        book.len(),
        book.best_bid(),
        book.best_ask()
    );
    assert!(
        errors.len() < 20,
        "{}",
        errors[..errors.len().min(10)].join("\n")
    );
    assert!(
        crossed_in_pre_open > 0,
        "the pre-open cross is seen, and resolved by the open"
    );
    assert!(book.len() > 100, "the book holds the day's resting orders");
}
