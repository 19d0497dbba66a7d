//! The recorded feeds load into frames the book accepts.

use tickflow_hft_fastpath::feed;
use tickflow_hft_fastpath::{Action, BookCapacity, FeedMsg, OrderBook};

#[test]
fn binance_depth_diffs_and_trades_load_and_apply() {
    let Some(data) = tickflow_sources::sample_data() else {
        return;
    };
    let (mut trades, mut diffs, mut levels) = (0, 0, 0);
    for entry in std::fs::read_dir(data.join("binance-ws")).unwrap() {
        let path = entry.unwrap().path();
        let f = feed::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!f.instrument.is_empty(), "{}: symbol read", path.display());
        let mut book = OrderBook::new(BookCapacity::default());
        for m in &f.msgs {
            book.apply(m)
                .expect("level updates and trades always apply");
            match m.action {
                Action::Trade => trades += 1,
                Action::Level => {
                    levels += 1;
                    diffs += usize::from(m.is_last() && m.flags & FeedMsg::SNAPSHOT == 0);
                }
                Action::Clear => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        book.check().unwrap();
        assert!(book.best_bid().is_some() && book.best_ask().is_some());
        // Round trip through the wire format, as the loop reads it.
        let frames = tickflow_hft_fastpath::msg::encode_all(&f.msgs);
        for (m, fr) in f.msgs.iter().zip(frames.chunks_exact(FeedMsg::WIRE_LEN)) {
            assert_eq!(FeedMsg::decode(fr).as_ref(), Ok(m));
        }
    }
    eprintln!("{trades} trades, {diffs} depth diffs, {levels} level updates");
    assert_eq!(trades, 39_462, "every trade of the captures (data README)");
    assert_eq!(
        diffs, 40_283,
        "every depth diff of the captures (data README)"
    );
}

#[test]
fn the_fast_path_book_of_each_capture_ends_as_the_replayed_book_does() {
    // Both sync a capture's depth snapshot with the diffs around it (core's `DepthSync`); the
    // replay's book is checked against Binance's own procedure in the sources' tests.
    use std::collections::BTreeMap;
    use tickflow_core::{BookAction, MarketEvent, Side};
    use tickflow_sources::{ReplayFormat, SourceConfig, SourceItem};
    let Some(data) = tickflow_sources::sample_data() else {
        return;
    };
    for name in [
        "cm_btcusd_perp_20240808.gz",
        "spot_btcusdt_20240808.gz",
        "spot_ethusdt_20240808.gz",
        "usdm_btcusdt_20240808.gz",
    ] {
        let path = data.join("binance-ws").join(name);
        let f = feed::load(&path).unwrap();
        let mut book = OrderBook::new(BookCapacity::default());
        for m in &f.msgs {
            book.apply(m).unwrap();
        }
        let mut fast = BTreeMap::new();
        for side in [Side::Buy, Side::Sell] {
            for l in book.levels(side) {
                fast.insert((side, l.price.raw()), l.size.raw());
            }
        }
        let plan = tickflow_sources::plan(&[SourceConfig::Replay {
            path,
            format: ReplayFormat::Auto,
        }])
        .unwrap();
        let mut reader = plan.parts[0].open(&plan.registry).unwrap();
        let mut replayed = BTreeMap::new();
        while let Some(item) = reader.next_item() {
            let SourceItem::Event(MarketEvent::Book(b)) = item else {
                continue;
            };
            match b.action {
                BookAction::Clear => replayed.clear(),
                BookAction::Cancel => {
                    replayed.remove(&(b.side, b.price.raw()));
                }
                _ => {
                    replayed.insert((b.side, b.price.raw()), b.size.raw());
                }
            }
        }
        assert!(replayed.len() > 100, "{name}");
        assert!(fast == replayed, "{name}: the two books differ");
    }
}

#[test]
fn unknown_feed_names_are_refused_with_the_formats_listed() {
    let e = feed::load(std::path::Path::new("/tmp/prices.parquet")).unwrap_err();
    assert!(e.to_string().contains("unknown feed format"), "{e}");
    let e = feed::load(std::path::Path::new(
        "/no/such/AMZN_2012-06-21_1_2_message_1.csv",
    ))
    .unwrap_err();
    assert!(e.to_string().contains("/no/such/AMZN"), "{e}");
}
