//! What a job writes as Parquet replays: the trades and quotes a run accepted, replayed from
//! its Parquet files, give the same bars, indicators and signals as the run itself.

mod common;

/// A synthetic day's operators; `source` is the pipeline's source section, `sinks` its sinks.
fn pipeline(source: &str, sinks: &str) -> String {
    format!(
        r#"
[pipeline]
name = "parquet-replay"
allowed_lateness = "500ms"

{source}

[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "10s"

[[operator]]
name = "indicators"
kind = "indicators"
input = "bars"

[[operator]]
name = "signals"
kind = "signals"
input = "indicators"
buy = "macd crosses_above 0"
sell = "macd crosses_below 0"

{sinks}
"#
    )
}

#[test]
fn a_runs_parquet_trades_and_quotes_replay_to_the_same_bars_indicators_and_signals() {
    let recorded = tempfile::tempdir().unwrap();
    let synthetic = r#"
[[source]]
kind = "synthetic"
instruments = 5
seed = 21
duration = "15m"
events_per_second = 200
fault_rate = 0.01
"#;
    let first = common::run_text(
        &pipeline(
            synthetic,
            r#"
[[sink]]
kind = "parquet"
streams = ["trades", "quotes", "bars", "indicators"]

[[sink]]
kind = "jsonl"
streams = ["bars", "indicators", "signals"]
"#,
        ),
        2,
        recorded.path(),
    );
    assert!(first.rejected.values().sum::<u64>() > 0, "{first}");

    // The whole directory: the trades and quotes files are market data, the bars and
    // indicators files are left out.
    let replayed = tempfile::tempdir().unwrap();
    let source = format!(
        "[[source]]\nkind = \"replay\"\npath = {:?}\n",
        recorded.path().display().to_string()
    );
    let second = common::run_text(
        &pipeline(
            &source,
            "[[sink]]\nkind = \"jsonl\"\nstreams = [\"bars\", \"indicators\", \"signals\", \"rejects\"]\n",
        ),
        1,
        replayed.path(),
    );
    assert!(second.accounted(), "{second}");
    assert_eq!(second.read, first.accepted(), "{second}");
    assert_eq!(
        (second.accepted_trades, second.accepted_quotes),
        (first.accepted_trades, first.accepted_quotes),
        "{second}"
    );
    assert_eq!(second.rejected_total(), 0, "{second}");
    for stream in ["bars.jsonl", "indicators.jsonl", "signals.jsonl"] {
        let a = std::fs::read(recorded.path().join(stream)).unwrap();
        let b = std::fs::read(replayed.path().join(stream)).unwrap();
        assert!(!a.is_empty(), "{stream} is empty");
        assert!(a == b, "{stream} differs after the replay");
    }
}
