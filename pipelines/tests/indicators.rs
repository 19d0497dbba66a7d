//! The indicators stream as a user reads it: one JSON line per instrument and bar, carrying
//! `instrument` and the bar's `end` like the bars file, fields named `<indicator>_<period>`.

mod common;

use std::collections::BTreeMap;

use common::lines;

#[test]
fn indicator_rows_follow_the_bars_and_match_a_recomputation() {
    let text = r#"
[[source]]
kind = "synthetic"
instruments = 3
duration = "2h"
events_per_second = 60

[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "1m"

[[operator]]
name = "indicators"
kind = "indicators"
input = "bars"
ma = 10
wilder = 7

[[sink]]
kind = "jsonl"
streams = ["bars", "indicators"]

[[sink]]
kind = "parquet"
streams = ["indicators"]
"#;
    let out = tempfile::tempdir().unwrap();
    let summary = common::run_text(text, 2, out.path());
    let bars = lines(&out.path().join("bars.jsonl"));
    let rows = lines(&out.path().join("indicators.jsonl"));
    assert_eq!(bars.len(), rows.len(), "one indicator row per bar");
    assert_eq!(
        summary
            .streams
            .iter()
            .find(|(n, _)| n == "indicators")
            .map(|s| s.1),
        Some(rows.len() as u64)
    );

    let mut closes: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut checked = 0;
    for (bar, row) in bars.iter().zip(&rows) {
        assert_eq!(
            (&bar["instrument"], &bar["end"]),
            (&row["instrument"], &row["end"]),
            "same keys, same order"
        );
        for name in [
            "sma_10",
            "ema_10",
            "rsi_7",
            "atr_7",
            "adx_7",
            "macd",
            "bb_upper_10",
            "stoch_k",
            "willr_7",
            "cci_10",
            "obv",
            "mfi_7",
            "roc_10",
            "vwap",
            "stddev_10",
            "zscore_10",
        ] {
            assert!(row.get(name).is_some(), "field {name} missing in {row}");
        }
        let series = closes
            .entry(bar["instrument"].as_str().unwrap().to_owned())
            .or_default();
        series.push(bar["close"].as_f64().unwrap());
        if series.len() >= 10 {
            let want = series[series.len() - 10..].iter().sum::<f64>() / 10.0;
            let got = row["sma_10"].as_f64().unwrap();
            assert!((got - want).abs() < 1e-9 * want, "{got} vs {want}");
            checked += 1;
        } else {
            assert!(
                row["sma_10"].is_null(),
                "no value before the indicator is defined: {row}"
            );
        }
    }
    assert!(checked > 300);
    assert!(out.path().join("indicators.parquet").exists());
}
