//! Bars rolled up from Lean IBM ticks agree with Lean's own minute bars, and every recorded
//! tick is accounted for.

mod common;

use std::collections::BTreeMap;

use tickflow_core::{Quantity, Timestamp};
use tickflow_sources::replay::lean::read_minute_trade_bars;

#[test]
fn ibm_minute_volume_matches_lean_in_at_least_440_minutes() {
    let Some(data) = tickflow_sources::sample_data() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let ticks = data.join("us-equities/tick/ibm_20131007_trade.zip");
    let summary = common::run_text(&common::replay_pipeline(&ticks, &["bars"]), 2, out.path());
    assert!(summary.accounted(), "{summary}");

    let mut ours: BTreeMap<Timestamp, Quantity> = BTreeMap::new();
    for line in std::fs::read_to_string(out.path().join("bars.jsonl"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let start = Timestamp::parse_rfc3339(v["start"].as_str().unwrap()).unwrap();
        ours.insert(start, Quantity::parse(&v["volume"].to_string()).unwrap());
    }
    let lean =
        read_minute_trade_bars(&data.join("us-equities/minute/ibm_20131007_trade.zip")).unwrap();
    let matching = lean
        .iter()
        .filter(|b| ours.get(&b.start) == Some(&b.volume))
        .count();
    eprintln!(
        "{matching} of {} Lean minutes have equal volume ({} bars of ours)",
        lean.len(),
        ours.len()
    );
    assert!(
        matching >= 440,
        "only {matching} of {} minutes agree on volume",
        lean.len()
    );
}

#[test]
fn every_recorded_tick_is_accounted_for() {
    let Some(data) = tickflow_sources::sample_data() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let summary = common::run_text(
        &common::replay_pipeline(&data.join("us-equities/tick"), &["rejects"]),
        2,
        out.path(),
    );
    eprintln!("{summary}");
    // 2.21 M rows: 1.16 M trades and 1.05 M quote rows, whose bid and ask rows of one instant
    // are read as one quote.
    assert!(summary.read > 1_650_000, "{summary}");
    assert!(summary.accounted(), "{summary}");
    let reject_lines = std::fs::read_to_string(out.path().join("rejects.jsonl"))
        .unwrap()
        .lines()
        .count() as u64;
    assert_eq!(
        reject_lines,
        summary.rejected_total(),
        "every reject is written with its reason"
    );
}
