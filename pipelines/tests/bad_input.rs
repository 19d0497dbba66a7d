//! Bad input never stops a run: each bad row is reported and counted, good rows are kept.

mod common;

use tickflow_core::RejectReason;

#[test]
fn garbage_rows_are_counted_and_good_rows_become_bars() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("trades.csv");
    std::fs::write(
        &csv,
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n\
         binance-futures,BTCUSDT,1582329602111000,1582329602418379,1,buy,9682,0.132\n\
         binance-futures,BTCUSDT,1582329602116000\n\
         \u{1}\u{2}garbage,,,\n\
         binance-futures,BTCUSDT,1582329602116000,1582329602418420,2,buy,NaN,0.4\n\
         binance-futures,BTCUSDT,1582329602117000,1582329602418420,3,sell,-5,0.25\n\
         binance-futures,BTCUSDT,1582329602118000,1582329602418420,4,sell,9681.5,0\n\
         binance-futures,BTCUSDT,1582329602119000,1582329602418420,4,sell,9681.5,0.5\n\
         binance-futures,BTCUSDT,1582329602120000,1582329602418420,5,sell,9681.5,0.25\n\
         binance-futures,BTCUSDT,1582329602120000,1582329602418420,5,sell,9681.5,0.25\n\
         binance-futures,BTCUSDT,15823296",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let summary = common::run_text(
        &common::replay_pipeline(&csv, &["bars", "rejects"]),
        1,
        out.path(),
    );
    assert_eq!(summary.read, 10);
    assert_eq!(summary.accepted_trades, 3, "{summary}");
    assert!(summary.accounted(), "{summary}");
    let r = |reason| summary.rejected.get(&reason).copied().unwrap_or(0);
    assert_eq!(r(RejectReason::Malformed), 3, "{summary}");
    assert_eq!(r(RejectReason::NonFinitePrice), 1);
    assert_eq!(r(RejectReason::NonPositivePrice), 1);
    assert_eq!(r(RejectReason::NonPositiveSize), 1);
    assert_eq!(r(RejectReason::Duplicate), 1);
    let rejects = std::fs::read_to_string(out.path().join("rejects.jsonl")).unwrap();
    // Each reject at its line of the file, whether the reader refused the row or normalize
    // refused the record read from it.
    let mut at: Vec<(u64, String)> = rejects
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                r["line"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    at.sort();
    let expected = [
        (3, "malformed"),
        (4, "malformed"),
        (5, "non_finite_price"),
        (6, "non_positive_price"),
        (7, "non_positive_size"),
        (10, "duplicate"),
        (11, "malformed"),
    ];
    assert_eq!(at, expected.map(|(l, r)| (l, r.to_owned())), "{rejects}");
    assert!(
        rejects.contains(r#""line":3"#) && rejects.contains("expected 8 columns, found 3"),
        "{rejects}"
    );
    let bars = std::fs::read_to_string(out.path().join("bars.jsonl")).unwrap();
    let bar: serde_json::Value = serde_json::from_str(bars.lines().next().unwrap()).unwrap();
    assert_eq!(bar["trade_count"], 3);
    assert_eq!(bar["volume"].to_string(), "0.882");
}

#[test]
fn a_corrupt_file_is_reported_and_the_others_still_run() {
    let Some(data) = tickflow_sources::sample_data() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        data.join("tardis/tardis_binance-futures_trades_BTCUSDT.csv"),
        dir.path().join("good.csv"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("zzz_20131007_trade.zip"),
        b"PK\x03\x04 this is not a zip",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let text =
        common::replay_pipeline(&dir.path().join("good.csv"), &["rejects"]).replace("good.csv", "");
    let summary = common::run_text(&text, 1, out.path());
    assert_eq!(summary.accepted_trades, 9_999, "{summary}");
    assert_eq!(
        summary.rejected.get(&RejectReason::Malformed),
        Some(&1),
        "the corrupt zip is reported: {summary}"
    );
    let rejects = std::fs::read_to_string(out.path().join("rejects.jsonl")).unwrap();
    assert!(
        rejects.contains("zzz_20131007_trade.zip") && rejects.contains("cannot open"),
        "{rejects}"
    );
    assert!(summary.accounted());
}

#[test]
fn a_missing_path_is_an_error_that_names_it() {
    let pipeline = tickflow_pipelines::Pipeline::parse(
        &common::replay_pipeline(std::path::Path::new("/no/such/dir"), &["bars"]),
        "t.toml",
    )
    .unwrap();
    let err = tickflow_pipelines::run(&pipeline, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("/no/such/dir"), "{err}");
}

#[test]
fn a_query_stream_without_the_sql_layer_is_refused_before_the_run() {
    let text = "[[source]]\nkind = \"synthetic\"\nduration = \"1m\"\n\n[[query]]\nname = \"flow\"\nsink = \"stream\"\nsql = \"SELECT instrument_id, ts_event, price FROM trades\"\n";
    let pipeline = tickflow_pipelines::Pipeline::parse(text, "t.toml").unwrap();
    let err = tickflow_pipelines::run(&pipeline, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("query `flow` has sink = \"stream\", but no SQL engine runs it"),
        "{err}"
    );
}
