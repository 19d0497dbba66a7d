//! The features stream: one vector per instrument and bar, consistent with the bars it was
//! computed from.

mod common;

use std::collections::HashMap;

use serde_json::Value;
use tickflow_pipelines::Pipeline;

use common::lines;

#[test]
fn features_follow_the_bars_and_quotes() {
    let text = tickflow_pipelines::config::DEFAULT_PIPELINE
        .replace("duration = \"6h30m\"", "duration = \"1h\"")
        .replace("events_per_second = 100", "events_per_second = 300");
    let out = tempfile::tempdir().unwrap();
    let summary = common::run_text(&text, 2, out.path());
    assert!(summary.accounted());
    let bars = lines(&out.path().join("bars.jsonl"));
    let features = lines(&out.path().join("features.jsonl"));
    assert_eq!(bars.len(), features.len(), "one vector per bar");
    let key = |r: &Value, t: &str| {
        (
            r["instrument"].as_str().unwrap().to_owned(),
            r[t].as_str().unwrap().to_owned(),
        )
    };
    let by_key: HashMap<_, _> = bars.iter().map(|b| (key(b, "end"), b)).collect();
    let mut prev_close: HashMap<String, f64> = HashMap::new();
    let mut with_spread = 0;
    for f in &features {
        let (inst, end) = key(f, "end");
        let bar = by_key[&(inst.clone(), end)];
        let close = bar["close"].as_f64().unwrap();
        assert_eq!(f["volume"].as_f64(), bar["volume"].as_f64());
        match prev_close.insert(inst, close) {
            Some(p) => {
                let r = f["ret_1"].as_f64().unwrap();
                assert!((r - (close / p).ln()).abs() < 1e-12, "{f}");
            }
            None => assert!(f["ret_1"].is_null(), "no return on the first bar: {f}"),
        }
        if let Some(s) = f["spread_bps"].as_f64() {
            assert!((0.0..1000.0).contains(&s), "{f}");
            with_spread += 1;
        }
        assert!(f.get("rsi_14").is_some() && f.get("ofi").is_some());
    }
    assert!(
        with_spread * 10 >= features.len() * 9,
        "quotes give most bars a spread"
    );
}

#[test]
fn features_refuse_unknown_indicator_columns() {
    let text = tickflow_pipelines::config::DEFAULT_PIPELINE.replace(
        "# indicators = [\"rsi_14\", \"adx_14\"]",
        "indicators = [\"rsi_14\", \"rsi_99\"]",
    );
    let err = Pipeline::parse(&text, "daytrade.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("rsi_99"), "{err}");
    assert!(err.contains("daytrade.toml:"), "{err}");
}

#[test]
fn features_refuse_a_column_that_would_come_twice_where_the_operator_is_named() {
    // The features operator is named on line 48 of the default pipeline.
    for (from, to, says) in [
        (
            "horizons = [1, 5, 15]",
            "horizons = [1, 5, 1]",
            "two columns `ret_1`: `horizons` lists its horizon twice",
        ),
        (
            "# indicators = [\"rsi_14\", \"adx_14\"]",
            "indicators = [\"rsi_14\", \"adx_14\", \"rsi_14\"]",
            "two columns `rsi_14`: `indicators` lists it twice",
        ),
    ] {
        let text = tickflow_pipelines::config::DEFAULT_PIPELINE.replace(from, to);
        assert_ne!(text, tickflow_pipelines::config::DEFAULT_PIPELINE);
        let err = Pipeline::parse(&text, "daytrade.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("daytrade.toml:48:8: operator `features`"),
            "{err}"
        );
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn signal_rules_can_read_feature_columns() {
    let on_features = tickflow_pipelines::config::DEFAULT_PIPELINE
        .replace(
            "name = \"signals\"\nkind = \"signals\"\ninput = \"indicators\"",
            "name = \"signals\"\nkind = \"signals\"\ninput = \"features\"",
        )
        .replace(
            "buy = \"macd crosses_above 0 and adx_14 > 20\"",
            "buy = \"ofi > 1 and ret_5 > 0\"",
        )
        .replace("sell = \"macd crosses_below 0\"", "sell = \"ofi < -1\"");
    assert!(on_features.contains("input = \"features\""));
    Pipeline::parse(&on_features, "daytrade.toml").unwrap_or_else(|e| panic!("{e}"));
    let err = Pipeline::parse(
        &on_features.replace("ofi > 1", "imbalance > 1"),
        "daytrade.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("imbalance"), "{err}");
}
