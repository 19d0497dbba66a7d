//! The same pipeline on 1 and 4 workers writes byte-identical files.

mod common;

#[test]
fn output_is_identical_for_1_and_4_workers() {
    let text = r#"
[pipeline]
name = "determinism"
allowed_lateness = "200ms"

[[source]]
kind = "synthetic"
instruments = 6
seed = 9
duration = "20m"
events_per_second = 300
fault_rate = 0.01

[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "10s"

[[operator]]
name = "vbars"
kind = "volume_bars"
input = "trades"
volume = 5000

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

[[sink]]
kind = "jsonl"
streams = ["bars", "vbars", "rejects", "trades", "quotes", "indicators", "signals"]

[[sink]]
kind = "parquet"
streams = ["bars", "indicators"]
"#;
    let one = tempfile::tempdir().unwrap();
    let four = tempfile::tempdir().unwrap();
    let s1 = common::run_text(text, 1, one.path());
    let s4 = common::run_text(text, 4, four.path());
    assert!(s1.accounted() && s4.accounted());
    assert_eq!(
        (s1.read, s1.accepted(), s1.rejected.clone()),
        (s4.read, s4.accepted(), s4.rejected.clone())
    );
    assert!(
        s1.rejected_total() > 100,
        "the faults exercise every reject path: {:?}",
        s1.rejected
    );
    for file in [
        "bars.jsonl",
        "vbars.jsonl",
        "rejects.jsonl",
        "trades.jsonl",
        "quotes.jsonl",
        "bars.parquet",
    ] {
        let a = std::fs::read(one.path().join(file)).unwrap();
        let b = std::fs::read(four.path().join(file)).unwrap();
        assert!(!a.is_empty(), "{file} is empty");
        assert!(a == b, "{file} differs between 1 and 4 workers");
    }
}

#[test]
fn an_operator_holding_output_back_does_not_stall_the_sources() {
    // One volume bar per instrument that never fills: it is flushed at the end of the stream,
    // and meanwhile the sources keep flowing through many chunks on every worker.
    let text = r#"
[[source]]
kind = "synthetic"
instruments = 4
duration = "30m"
events_per_second = 500

[[operator]]
name = "never_full"
kind = "volume_bars"
input = "trades"
volume = 1000000000

[[sink]]
kind = "jsonl"
streams = ["never_full"]
"#;
    let out = tempfile::tempdir().unwrap();
    let summary = common::run_text(text, 4, out.path());
    assert!(summary.read > 800_000, "{summary}");
    let flushed = std::fs::read_to_string(out.path().join("never_full.jsonl")).unwrap();
    assert_eq!(
        flushed.lines().count(),
        4,
        "one partial bar per instrument at the end"
    );
}

#[test]
fn paced_replay_follows_event_time_and_loses_nothing() {
    // Two seconds of event time at 4× real time take at least half a second.
    let text = r#"
[[source]]
kind = "synthetic"
instruments = 2
duration = "2s"
events_per_second = 500

[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "1s"

[[sink]]
kind = "discard"
streams = ["bars"]
"#;
    for workers in [1, 2] {
        let out = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let summary = common::run_text_with(
            text,
            &tickflow_pipelines::RunOptions {
                workers,
                output_dir: out.path().to_path_buf(),
                speed: Some(4.0),
                ..tickflow_pipelines::RunOptions::default()
            },
        );
        assert!(started.elapsed() >= std::time::Duration::from_millis(450));
        assert!(summary.read > 500 && summary.accounted(), "{summary}");
    }
}
