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

/// A price-level book: `(side, price)` → size, raw.
type Levels = std::collections::BTreeMap<(tickflow_core::Side, i64), i64>;

/// The book the fast path holds at the end of a capture, its feed, and the book its replay
/// through the sources builds.
fn fast_and_replayed_books(path: &std::path::Path) -> (Levels, feed::Feed, Levels) {
    use tickflow_core::{BookAction, MarketEvent, Side};
    use tickflow_sources::{ReplayFormat, SourceConfig, SourceItem};
    let f = feed::load(path).unwrap();
    let mut book = OrderBook::new(BookCapacity::default());
    for m in &f.msgs {
        book.apply(m).unwrap();
    }
    let mut fast = Levels::new();
    for side in [Side::Buy, Side::Sell] {
        for l in book.levels(side) {
            fast.insert((side, l.price.raw()), l.size.raw());
        }
    }
    let plan = tickflow_sources::plan(&[SourceConfig::Replay {
        path: path.to_path_buf(),
        format: ReplayFormat::Auto,
        quote_size: None,
    }])
    .unwrap();
    let mut reader = plan.parts[0].open(&plan.registry).unwrap();
    let mut replayed = Levels::new();
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
    (fast, f, replayed)
}

#[test]
fn the_fast_path_book_of_each_capture_ends_as_the_replayed_book_does() {
    // Both sync a capture's depth snapshot with the diffs around it (core's `DepthSync`); the
    // replay's book is checked against Binance's own procedure in the sources' tests.
    let Some(data) = tickflow_sources::sample_data() else {
        return;
    };
    for name in [
        "cm_btcusd_perp_20240808.gz",
        "spot_btcusdt_20240808.gz",
        "spot_ethusdt_20240808.gz",
        "usdm_btcusdt_20240808.gz",
    ] {
        let (fast, f, replayed) = fast_and_replayed_books(&data.join("binance-ws").join(name));
        assert_eq!(f.gaps, 0, "{name}: its update ids follow on");
        assert_eq!(f.trade_gaps, 0, "{name}: its trade ids follow on");
        assert!(replayed.len() > 100, "{name}");
        assert!(fast == replayed, "{name}: the two books differ");
    }
}

#[test]
fn at_a_depth_gap_the_fast_path_clears_its_book_as_the_replay_does() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usdm_btcusdt_20240808.gz");
    let t = 1_723_161_255_000_000_000u64;
    // Futures diffs: `pu` names the diff before.
    let diff = |n: u64, ids: (u64, u64, u64), bids: &str, asks: &str| {
        let (first, last, prev) = ids;
        let recv = t + n * 1_000_000;
        format!(
            r#"{recv} {{"stream":"btcusdt@depth@0ms","data":{{"e":"depthUpdate","E":{ms},"T":{ms},"s":"BTCUSDT","U":{first},"u":{last},"pu":{prev},"b":[{bids}],"a":[{asks}]}}}}"#,
            ms = recv / 1_000_000
        )
    };
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    for line in [
        diff(
            1,
            (1, 10, 0),
            r#"["100.0","1"],["99.0","2"]"#,
            r#"["101.0","1"]"#,
        ),
        diff(2, (12, 15, 10), "", r#"["102.0","2"]"#),
        // Updates after 15 and up to 18 are missing: levels 100, 99, 101, 102 may be stale.
        diff(3, (20, 22, 18), r#"["98.0","3"]"#, r#"["103.0","1"]"#),
        diff(4, (23, 25, 22), r#"["97.0","1"]"#, ""),
    ] {
        writeln!(gz, "{line}").unwrap();
    }
    gz.finish().unwrap();
    let (fast, f, replayed) = fast_and_replayed_books(&path);
    assert_eq!((f.gaps, f.trade_gaps), (1, 0));
    let prices: Vec<i64> = fast.keys().map(|&(_, p)| p).collect();
    let since = [97, 98, 103].map(|p| tickflow_core::Price::from_int(p).unwrap().raw());
    assert_eq!(prices, since, "the levels updated since the gap");
    assert!(fast == replayed, "the two books differ");
}

#[test]
fn unknown_feed_names_are_refused_with_the_formats_listed() {
    let e = feed::load(std::path::Path::new("/tmp/prices.parquet")).unwrap_err();
    assert!(e.to_string().contains("unknown feed format"), "{e}");
    // A directory: one file is wanted, and the feeds in it are named.
    let dir = tempfile::tempdir().unwrap();
    let e = feed::load(dir.path()).unwrap_err().to_string();
    assert!(e.ends_with("(Binance capture))"), "{e}");
    for f in ["b_20240808.gz", "a.dbn.zst", "notes.txt"] {
        std::fs::write(dir.path().join(f), "").unwrap();
    }
    let e = feed::load(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("a directory; the fast path replays one feed file")
            && e.ends_with(&format!(
                ", such as {} (and 1 more)",
                dir.path().join("a.dbn.zst").display()
            )),
        "{e}"
    );
    let e = feed::load(std::path::Path::new(
        "/no/such/AMZN_2012-06-21_1_2_message_1.csv",
    ))
    .unwrap_err();
    assert!(e.to_string().contains("/no/such/AMZN"), "{e}");
}

#[test]
fn trades_after_missing_trade_ids_are_counted() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spot_btcusdt_20240808.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    // Ids 3 and 4 missing, 7 to 9 missing; 6 again and 5 late are not gaps.
    for (n, id) in [1u64, 2, 5, 6, 6, 10, 5, 11].into_iter().enumerate() {
        let ms = 1_723_161_255_000 + n as u64;
        writeln!(
            gz,
            r#"{} {{"stream":"btcusdt@trade","data":{{"e":"trade","E":{ms},"T":{ms},"s":"BTCUSDT","t":{id},"p":"56000.01","q":"0.5","m":false}}}}"#,
            ms * 1_000_000
        )
        .unwrap();
    }
    gz.finish().unwrap();
    let f = feed::load(&path).unwrap();
    assert_eq!(f.msgs.len(), 8, "every trade is in the feed");
    assert_eq!((f.gaps, f.trade_gaps), (0, 2));
}
