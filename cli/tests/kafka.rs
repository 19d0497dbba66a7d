//! Kafka against a real Kafka-protocol broker (tansu, started by scripts/test.sh, address in
//! TICKFLOW_KAFKA_BROKERS) and a third-party client (confluent-kafka from PyPI, through
//! TICKFLOW_PYTHON): `tickflow publish`, Kafka sinks and `tickflow signals tail`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tickflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tickflow"))
}

/// The broker and the Python with confluent-kafka, or `None` (the test says SKIPPED).
fn setup(test: &str) -> Option<(String, String)> {
    let brokers = std::env::var("TICKFLOW_KAFKA_BROKERS").ok();
    let python = std::env::var("TICKFLOW_PYTHON").ok();
    match (brokers, python) {
        (Some(b), Some(p)) if !b.is_empty() && !p.is_empty() => Some((b, p)),
        _ => {
            eprintln!(
                "SKIPPED {test}: TICKFLOW_KAFKA_BROKERS and TICKFLOW_PYTHON are not set (scripts/test.sh sets them)"
            );
            None
        }
    }
}

/// A topic name no other test or run uses.
fn topic(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// Messages read back by confluent-kafka: (key, partition, value).
fn consume(
    python: &str,
    brokers: &str,
    topic: &str,
    count: usize,
) -> Vec<(String, i64, serde_json::Value)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kafka_client.py");
    let out = Command::new(python)
        .arg(script)
        .args(["consume", brokers, topic, &count.to_string(), "60"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "confluent-kafka consumer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["key"].as_str().unwrap().to_string(),
                v["partition"].as_i64().unwrap(),
                v["value"].clone(),
            )
        })
        .collect()
}

fn lean_trades() -> Option<PathBuf> {
    let data = std::env::var("TICKFLOW_SAMPLE_DATA").ok()?;
    let dir = Path::new(&data).join("us-equities/tick");
    dir.exists().then_some(dir)
}

#[test]
fn publish_replays_recorded_trades_in_order_per_symbol() {
    let Some((brokers, python)) = setup("publish_replays_recorded_trades_in_order_per_symbol")
    else {
        return;
    };
    let Some(tick) = lean_trades() else {
        eprintln!("SKIPPED: TICKFLOW_SAMPLE_DATA is not set");
        return;
    };
    // Two symbols' trades of one day.
    let dir = tempfile::tempdir().unwrap();
    for f in ["aig_20131007_trade.zip", "bac_20131007_trade.zip"] {
        std::fs::copy(tick.join(f), dir.path().join(f)).unwrap();
    }
    let t = topic("trades");
    let out = tickflow()
        .args([
            "publish",
            "--partitions",
            "3",
            "--topic",
            &t,
            "--brokers",
            &brokers,
            "--data",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: usize = stdout
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));

    // The same rows as the pipeline reads them from the files.
    let direct = tempfile::tempdir().unwrap();
    let pipeline = direct.path().join("p.toml");
    std::fs::write(
        &pipeline,
        "[[source]]\nkind = \"synthetic\"\n\n[[sink]]\nkind = \"jsonl\"\nstreams = [\"trades\"]\n",
    )
    .unwrap();
    let run = tickflow()
        .args(["run", "-q", "-o"])
        .arg(direct.path().join("out"))
        .arg(&pipeline)
        .arg("--data")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let files: Vec<serde_json::Value> =
        std::fs::read_to_string(direct.path().join("out/trades.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(sent, files.len(), "every trade published once");

    let messages = consume(&python, &brokers, &t, sent);
    assert_eq!(messages.len(), sent);
    // Keyed by symbol, each symbol in one partition, in event-time order there.
    let mut partition_of: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_symbol: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for (key, partition, v) in &messages {
        assert_eq!(v["type"], "trade", "{v}");
        assert_eq!(
            v["instrument"].as_str().unwrap(),
            key,
            "the key is the symbol"
        );
        assert_eq!(
            *partition_of.entry(key.clone()).or_insert(*partition),
            *partition
        );
        by_symbol.entry(key.clone()).or_default().push((
            v["ts_event"].as_str().unwrap().to_string(),
            v["price"].to_string(),
            v["size"].to_string(),
        ));
    }
    assert_eq!(by_symbol.len(), 2);
    let mut expected: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for v in &files {
        expected
            .entry(v["instrument"].as_str().unwrap().to_string())
            .or_default()
            .push((
                v["ts_event"].as_str().unwrap().to_string(),
                v["price"].to_string(),
                v["size"].to_string(),
            ));
    }
    assert_eq!(
        by_symbol, expected,
        "the same trades in the same order per symbol"
    );
}

const SIGNALS: &str = r#"
[pipeline]
name = "kafka-signals"

[[source]]
kind = "synthetic"
instruments = 3
duration = "2h"
seed = 5

[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "1m"

[[operator]]
name = "indicators"
kind = "indicators"
input = "bars"

[[operator]]
name = "signals"
kind = "signals"
input = "indicators"
buy = "close crosses_above ema_20"
sell = "close crosses_below ema_20"

[[sink]]
kind = "jsonl"
streams = ["signals"]

[[sink]]
kind = "kafka"
topic = "TOPIC"
streams = ["signals"]

# A continuous query to a topic, and the same query to a file.
[[query]]
name = "trades_5m"
sink = "kafka"
topic = "TOPIC-{stream}"
sql = "SELECT symbol, window_end, count(*) AS trades, max(price) AS high FROM tumble('trades', 'ts_event', INTERVAL '5 minutes') GROUP BY symbol, window_end"

[[query]]
name = "trades_5m_file"
sink = "jsonl"
sql = "SELECT symbol, window_end, count(*) AS trades, max(price) AS high FROM tumble('trades', 'ts_event', INTERVAL '5 minutes') GROUP BY symbol, window_end"
"#;

#[test]
fn signals_go_to_a_topic_that_third_parties_and_the_console_read() {
    let Some((brokers, python)) =
        setup("signals_go_to_a_topic_that_third_parties_and_the_console_read")
    else {
        return;
    };
    let t = topic("signals");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, SIGNALS.replace("TOPIC", &t)).unwrap();
    let out = tickflow()
        .args(["run", "-q", "-o"])
        .arg(dir.path().join("out"))
        .arg(&path)
        .env("TICKFLOW_KAFKA_BROKERS", &brokers)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("kafka:{t}")), "{stdout}");

    let lines: Vec<String> = std::fs::read_to_string(dir.path().join("out/signals.jsonl"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert!(lines.len() >= 3, "{stdout}");
    let messages = consume(&python, &brokers, &t, lines.len());
    // Per instrument, the topic carries exactly the JSON Lines records, in order.
    let per = |rows: Vec<serde_json::Value>| {
        let mut m: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for v in rows {
            m.entry(v["instrument"].as_str().unwrap().to_string())
                .or_default()
                .push(v);
        }
        m
    };
    for (key, _, v) in &messages {
        assert_eq!(v["instrument"].as_str().unwrap(), key);
    }
    assert_eq!(
        per(messages.into_iter().map(|(_, _, v)| v).collect()),
        per(lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect())
    );

    // The query's results: the same rows as its file twin, keyed by symbol.
    let file: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.path().join("out/trades_5m_file.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(file.len(), 3 * 24, "3 instruments x 24 five-minute windows");
    let rows = consume(&python, &brokers, &format!("{t}-trades_5m"), file.len());
    let symbol_of = |v: &serde_json::Value| v["symbol"].as_str().unwrap().to_string();
    for (key, _, v) in &rows {
        assert_eq!(*key, symbol_of(v));
    }
    let sorted = |mut v: Vec<serde_json::Value>| {
        v.sort_by_key(|r| (symbol_of(r), r["window_end"].as_str().unwrap().to_string()));
        v
    };
    assert_eq!(
        sorted(rows.into_iter().map(|(_, _, v)| v).collect()),
        sorted(file)
    );

    // The trader's console.
    let tail = tickflow()
        .args([
            "signals",
            "tail",
            "--from-beginning",
            "--idle",
            "10",
            "--topic",
            &t,
        ])
        .args(["--max", &lines.len().to_string()])
        .env("TICKFLOW_KAFKA_BROKERS", &brokers)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&tail.stdout);
    assert!(
        tail.status.success(),
        "{}",
        String::from_utf8_lossy(&tail.stderr)
    );
    assert_eq!(printed.lines().count(), lines.len(), "{printed}");
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    let side = first["side"].as_str().unwrap().to_uppercase();
    assert!(
        printed
            .lines()
            .any(|l| l.contains(first["ts_event"].as_str().unwrap())
                && l.contains(&side)
                && l.contains(first["instrument"].as_str().unwrap())),
        "{printed}"
    );
}

#[test]
fn an_unreachable_broker_or_missing_topic_is_a_clear_error() {
    // Nothing listens on port 1.
    let out = tickflow()
        .args([
            "signals",
            "tail",
            "--topic",
            "nope",
            "--brokers",
            "127.0.0.1:1",
        ])
        .env_remove("TICKFLOW_KAFKA_BROKERS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("topic nope") && err.contains("127.0.0.1:1"),
        "{err}"
    );
}
