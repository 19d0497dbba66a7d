//! The two shipped strategies run and every signal they emit is justified by the indicator
//! values written beside it.

mod common;

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;
use tickflow_pipelines::{Pipeline, RunOptions, run};

use common::lines;

/// Indicator rows by (instrument, end), the rows in order, and the signals.
type Outputs = (HashMap<(String, String), Value>, Vec<Value>, Vec<Value>);

/// Runs a shipped pipeline (shortened to two hours) and returns what it wrote.
fn run_shipped(file: &str) -> Outputs {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("duration = \"6h30m\"", "duration = \"2h\"")
        .replace("events_per_second = 100", "events_per_second = 400");
    let pipeline = Pipeline::parse(&text, file).unwrap_or_else(|e| panic!("{e}"));
    let out = tempfile::tempdir().unwrap();
    let summary = run(
        &pipeline,
        &RunOptions {
            workers: 2,
            output_dir: out.path().to_path_buf(),
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert!(summary.accounted());
    let rows = lines(&out.path().join("indicators.jsonl"));
    let by_key = rows
        .iter()
        .map(|r| {
            (
                (
                    r["instrument"].as_str().unwrap().to_owned(),
                    r["end"].as_str().unwrap().to_owned(),
                ),
                r.clone(),
            )
        })
        .collect();
    (by_key, rows, lines(&out.path().join("signals.jsonl")))
}

fn num(row: &Value, name: &str) -> Option<f64> {
    row[name].as_f64()
}

#[test]
fn trend_following_signals_follow_macd_crossings_filtered_by_adx() {
    let (by_key, rows, signals) = run_shipped("trend_following.toml");
    assert!(
        !signals.is_empty(),
        "a two-hour synthetic market produces trend signals"
    );
    // The previous row of each instrument, for the crossing check.
    let mut prev: HashMap<(String, String), Value> = HashMap::new();
    let mut last: HashMap<String, Value> = HashMap::new();
    for r in &rows {
        let inst = r["instrument"].as_str().unwrap().to_owned();
        if let Some(p) = last.insert(inst.clone(), r.clone()) {
            prev.insert((inst, r["end"].as_str().unwrap().to_owned()), p);
        }
    }
    for s in &signals {
        let key = (
            s["instrument"].as_str().unwrap().to_owned(),
            s["ts_event"].as_str().unwrap().to_owned(),
        );
        let row = &by_key[&key];
        let before = &prev[&key];
        let (m, pm) = (num(row, "macd").unwrap(), num(before, "macd").unwrap());
        match s["side"].as_str().unwrap() {
            "buy" => assert!(
                m > 0.0 && pm <= 0.0 && num(row, "adx_14").unwrap() > 20.0,
                "{s} {row}"
            ),
            "sell" => assert!(m < 0.0 && pm >= 0.0, "{s} {row}"),
            other => panic!("side {other}"),
        }
        assert!(s["reason"].as_str().unwrap().starts_with("trend: "));
    }
    // Sides alternate per instrument.
    let mut side: HashMap<&str, &str> = HashMap::new();
    for s in &signals {
        let prev = side.insert(
            s["instrument"].as_str().unwrap(),
            s["side"].as_str().unwrap(),
        );
        assert_ne!(
            prev,
            Some(s["side"].as_str().unwrap()),
            "no repeated side: {s}"
        );
    }
}

#[test]
fn mean_reversion_signals_need_a_band_break_and_an_rsi_extreme() {
    let (by_key, _, signals) = run_shipped("mean_reversion.toml");
    assert!(
        !signals.is_empty(),
        "a two-hour synthetic market produces mean-reversion signals"
    );
    for s in &signals {
        let row = &by_key[&(
            s["instrument"].as_str().unwrap().to_owned(),
            s["ts_event"].as_str().unwrap().to_owned(),
        )];
        let close = num(row, "close").unwrap();
        match s["side"].as_str().unwrap() {
            "buy" => assert!(
                close < num(row, "bb_lower_20").unwrap() && num(row, "rsi_14").unwrap() < 30.0,
                "{s} {row}"
            ),
            _ => assert!(
                close > num(row, "bb_upper_20").unwrap() && num(row, "rsi_14").unwrap() > 70.0,
                "{s} {row}"
            ),
        }
    }
}
