//! Kafka against a real Kafka-protocol broker (tansu, started by scripts/test.sh, address in
//! TICKFLOW_KAFKA_BROKERS) and a third-party client (confluent-kafka from PyPI, through
//! TICKFLOW_PYTHON): `tickflow publish`, Kafka sinks and `tickflow signals tail`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

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

/// Copies `files` of the Lean tick data into a new directory and publishes them with
/// `tickflow publish` to a new topic of `partitions` partitions; returns both and what the
/// command printed. `None` (SKIPPED) without the recorded data.
fn publish_lean(
    files: &[&str],
    partitions: &str,
    brokers: &str,
    name: &str,
) -> Option<(tempfile::TempDir, String, String)> {
    let (data, t, stdout) = publish_lean_with(files, partitions, brokers, name, &[])?;
    Some((data, t, stdout))
}

/// [`publish_lean`] with more arguments for `tickflow publish`; `name` is a new topic's name,
/// or, as `=TOPIC`, a topic that exists.
fn publish_lean_with(
    files: &[&str],
    partitions: &str,
    brokers: &str,
    name: &str,
    extra: &[&str],
) -> Option<(tempfile::TempDir, String, String)> {
    let Some(tick) = lean_trades() else {
        eprintln!("SKIPPED: TICKFLOW_SAMPLE_DATA is not set");
        return None;
    };
    let data = tempfile::tempdir().unwrap();
    for f in files {
        std::fs::copy(tick.join(f), data.path().join(f)).unwrap();
    }
    let t = match name.strip_prefix('=') {
        Some(existing) => existing.to_string(),
        None => topic(name),
    };
    let out = tickflow()
        .args([
            "publish",
            "--partitions",
            partitions,
            "--topic",
            &t,
            "--brokers",
            brokers,
        ])
        .args(extra)
        .arg("--data")
        .arg(data.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some((data, t, stdout))
}

#[test]
fn publish_replays_recorded_trades_in_order_per_symbol() {
    let Some((brokers, python)) = setup("publish_replays_recorded_trades_in_order_per_symbol")
    else {
        return;
    };
    // Two symbols' trades of one day.
    let Some((dir, t, stdout)) = publish_lean(
        &["aig_20131007_trade.zip", "bac_20131007_trade.zip"],
        "3",
        &brokers,
        "trades",
    ) else {
        return;
    };
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

/// 1-minute bars and their indicators: the chain every pipeline here runs.
const CHAIN: &str = r#"
[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "1m"

[[operator]]
name = "indicators"
kind = "indicators"
input = "bars"
"#;

/// Signals from the indicators.
const SIGNAL_RULES: &str = r#"
[[operator]]
name = "signals"
kind = "signals"
input = "indicators"
buy = "close crosses_above ema_20"
sell = "close crosses_below ema_20"
"#;

/// A synthetic market whose signals and a query go to topics named after `TOPIC`.
fn signals_pipeline() -> String {
    String::from(
        r#"
[pipeline]
name = "kafka-signals"

[[source]]
kind = "synthetic"
instruments = 3
duration = "2h"
seed = 5
"#,
    ) + CHAIN
        + SIGNAL_RULES
        + r#"
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
"#
}

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
    std::fs::write(&path, signals_pipeline().replace("TOPIC", &t)).unwrap();
    let stdout = run_ok(&[], &dir.path().join("out"), &path, &brokers);
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

fn run_ok(args: &[&str], dir: &Path, pipeline: &Path, brokers: &str) -> String {
    let out = tickflow()
        .args(["run", "-q", "-o"])
        .arg(dir)
        .arg(pipeline)
        .args(args)
        .env("TICKFLOW_KAFKA_BROKERS", brokers)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn records_read(summary: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| l.strip_prefix("records read"))
        .map(|n| n.trim().replace(',', "").parse().unwrap())
        .unwrap_or_else(|| panic!("{summary}"))
}

/// Bars and indicators of a Kafka topic, to files.
fn from_kafka() -> String {
    String::from(
        r#"
[pipeline]
name = "from-kafka"

[[source]]
kind = "kafka"
topic = "TOPIC"
group = "GROUP"
venue = "US"
"#,
    ) + CHAIN
        + r#"
[[sink]]
kind = "jsonl"
streams = ["bars", "indicators", "rejects"]
"#
}

#[test]
fn a_pipeline_reads_a_topic_like_the_files_and_goes_on_where_it_stopped() {
    let Some((brokers, _)) =
        setup("a_pipeline_reads_a_topic_like_the_files_and_goes_on_where_it_stopped")
    else {
        return;
    };
    let tick_files = [
        "aig_20131007_trade.zip",
        "bac_20131007_trade.zip",
        "ibm_20131007_quote.zip",
    ];
    let Some((data, t, _)) = publish_lean(&tick_files, "3", &brokers, "ticks") else {
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        from_kafka().replace("TOPIC", &t).replace("GROUP", &t),
    )
    .unwrap();
    // The files themselves, then the topic on two workers.
    let files = dir.path().join("files");
    let direct = run_ok(
        &["--data", data.path().to_str().unwrap()],
        &files,
        &pipeline,
        &brokers,
    );
    let kafka = dir.path().join("kafka");
    let first = run_ok(&["--workers", "2"], &kafka, &pipeline, &brokers);
    assert_eq!(records_read(&first), records_read(&direct), "{first}");
    for f in ["bars.jsonl", "indicators.jsonl"] {
        let a = std::fs::read_to_string(files.join(f)).unwrap();
        assert!(a.lines().count() > 100, "{f}: {direct}");
        assert_eq!(
            a,
            std::fs::read_to_string(kafka.join(f)).unwrap(),
            "{f}: the topic gives what the files give"
        );
    }
    // The group's offsets moved to the end: a second run has nothing new to read.
    let again = run_ok(&[], &dir.path().join("again"), &pipeline, &brokers);
    assert_eq!(records_read(&again), 0, "{again}");

    // The same files in the binary encoding give the same results.
    let Some((_, bt, _)) = publish_lean_with(
        &tick_files,
        "3",
        &brokers,
        "ticks-binary",
        &["--encoding", "binary"],
    ) else {
        return;
    };
    std::fs::write(
        &pipeline,
        from_kafka().replace("TOPIC", &bt).replace("GROUP", &bt),
    )
    .unwrap();
    let binary = dir.path().join("binary");
    let summary = run_ok(&["--workers", "2"], &binary, &pipeline, &brokers);
    assert_eq!(records_read(&summary), records_read(&direct), "{summary}");
    for f in ["bars.jsonl", "indicators.jsonl"] {
        assert_eq!(
            std::fs::read_to_string(files.join(f)).unwrap(),
            std::fs::read_to_string(binary.join(f)).unwrap(),
            "{f}: the binary topic gives what the files give"
        );
    }
}

#[test]
fn ticks_from_a_third_party_producer_are_read_and_bad_ones_go_to_the_dead_letter_topic() {
    let Some((brokers, python)) = setup(
        "ticks_from_a_third_party_producer_are_read_and_bad_ones_go_to_the_dead_letter_topic",
    ) else {
        return;
    };
    let t = topic("third-party");
    let dlq = format!("{t}-dlq");
    // A trade in the binary encoding, byte by byte as the README's table lays it out: magic,
    // version 1, type 1 (trade), flags 2 (id present), aggressor 1 (buy), action 0, symbol
    // length 3, "AIG", ts_event, ts_recv, trade id 42, price 47.25, size 100.
    let mut binary = b"TF\x01\x01\x02\x01\x00\x03AIG".to_vec();
    binary.extend(1_704_205_803_000_000_000i64.to_le_bytes());
    binary.extend(1_704_205_803_000_000_000i64.to_le_bytes());
    binary.extend(42u64.to_le_bytes());
    binary.extend(47_250_000_000i64.to_le_bytes());
    binary.extend(100_000_000_000i64.to_le_bytes());
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut future = binary.clone();
    future[2] = 9;
    let binary_lines = [
        format!("AIG\thex:{}", hex(&binary)),
        format!("AIG\thex:{}", hex(&future)),
    ];
    let lines = [
        r#"AIG	{"type":"trade","instrument":"AIG","ts_event":"2024-01-02T14:30:00Z","price":"47.125","size":200}"#,
        r#"AIG	{"type":"trade","instrument":"AIG","ts_event":"2024-01-02T14:30:01Z","price":"abc","size":1}"#,
        "AIG\tnot json at all",
        r#"AIG	{"type":"quote","instrument":"AIG","ts_event":1704205802000000000,"bid":47.1,"bid_size":5,"ask":47.2,"ask_size":7}"#,
    ];
    let all: Vec<String> = lines
        .iter()
        .map(|l| l.to_string())
        .chain(binary_lines.iter().cloned())
        .collect();
    produce(&python, &brokers, &t, "1", &all);

    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "[[source]]\nkind = \"kafka\"\ntopic = \"{t}\"\ngroup = \"{t}\"\ndead_letter = \"{dlq}\"\n\n[[sink]]\nkind = \"jsonl\"\nstreams = [\"trades\", \"quotes\", \"rejects\"]\n"
        ),
    )
    .unwrap();
    let summary = run_ok(&[], &dir.path().join("out"), &pipeline, &brokers);
    assert_eq!(records_read(&summary), 6, "{summary}");
    let read = |f: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.path().join("out").join(f))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let trades = read("trades.jsonl");
    assert_eq!(trades.len(), 2, "{summary}");
    assert_eq!(trades[0]["price"].to_string(), "47.125");
    assert_eq!(trades[1]["price"].to_string(), "47.25");
    assert_eq!(trades[1]["size"].to_string(), "100");
    assert_eq!(trades[1]["aggressor"], "buy");
    assert_eq!(trades[1]["trade_id"], 42);
    assert_eq!(trades[1]["ts_event"], "2024-01-02T14:30:03Z");
    assert_eq!(read("quotes.jsonl").len(), 1);
    let rejects = read("rejects.jsonl");
    assert_eq!(rejects.len(), 3, "{rejects:?}");
    let details: Vec<String> = rejects.iter().map(|r| r.to_string()).collect();
    assert!(
        details.iter().any(|d| d.contains("field price")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d.contains("not a JSON object")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("binary message of version 9")),
        "{details:?}"
    );
    assert!(
        details.iter().all(|d| d.contains(&format!("kafka:{t}/0@"))),
        "{details:?}"
    );

    // The dead-letter topic holds the messages as they were, keyed by the reason.
    let dead = consume(&python, &brokers, &dlq, 3);
    assert!(
        dead.iter().any(|(k, _, _)| k.contains("version 9")),
        "{dead:?}"
    );
    assert!(
        dead.iter()
            .any(|(k, _, v)| k.contains("field price") && v["price"] == "abc"),
        "{dead:?}"
    );
    assert!(
        dead.iter()
            .any(|(k, _, v)| k.contains("not a JSON object") && v == "not json at all"),
        "{dead:?}"
    );
}

/// Signals of a Kafka topic, to a topic and a file.
fn restart_pipeline() -> String {
    String::from(
        r#"
[pipeline]
name = "restart"

[[source]]
kind = "kafka"
topic = "TOPIC"
group = "TOPIC"
venue = "US"
"#,
    ) + CHAIN
        + SIGNAL_RULES
        + r#"
[[sink]]
kind = "kafka"
topic = "TOPIC-signals"
streams = ["signals"]

[[sink]]
kind = "jsonl"
streams = ["signals"]
"#
}

#[test]
fn a_job_killed_mid_topic_loses_no_tick_and_its_signals_dedupe_by_id() {
    let Some((brokers, python)) =
        setup("a_job_killed_mid_topic_loses_no_tick_and_its_signals_dedupe_by_id")
    else {
        return;
    };
    let Some((data, t, _)) = publish_lean(
        &[
            "aig_20131007_trade.zip",
            "bac_20131007_trade.zip",
            "ibm_20131007_trade.zip",
        ],
        "2",
        &brokers,
        "restart",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("p.toml");
    std::fs::write(&pipeline, restart_pipeline().replace("TOPIC", &t)).unwrap();

    // The reference: the files, read once.
    let reference = run_ok(
        &["--data", data.path().to_str().unwrap()],
        &dir.path().join("files"),
        &pipeline,
        &brokers,
    );
    let expected: BTreeMap<String, serde_json::Value> =
        std::fs::read_to_string(dir.path().join("files/signals.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["id"].as_str().unwrap().to_string(), v)
            })
            .collect();
    assert!(expected.len() > 5, "{reference}");
    // The reference wrote to the signal topic too; start the topic over for the real test.
    let signals = format!("{t}-signals-restarted");
    std::fs::write(
        &pipeline,
        restart_pipeline()
            .replace("TOPIC-signals", &signals)
            .replace("TOPIC", &t),
    )
    .unwrap();

    // Stopped part-way through the topic (the replay paced to about 16 s), once its progress
    // line says it has passed 16:00 of the recorded day: first killed, then, run again,
    // stopped with SIGTERM, which ends it cleanly without committing the offsets it had
    // read ahead of what it processed. (A stop closes the bars still open with what they
    // hold, so that run's last signals may not be the reference's: it writes them to a topic
    // of its own.)...
    let stopped = dir.path().join("stopped.toml");
    std::fs::write(
        &stopped,
        restart_pipeline()
            .replace("TOPIC-signals", &format!("{t}-signals-stopped"))
            .replace("TOPIC", &t),
    )
    .unwrap();
    let paced_past_four = |out: &str, pipeline: &Path| {
        let mut child = tickflow()
            .args(["run", "--speed", "3600", "-o"])
            .arg(dir.path().join(out))
            .arg(pipeline)
            .env("TICKFLOW_KAFKA_BROKERS", &brokers)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut progress = std::io::BufReader::new(child.stderr.take().unwrap());
        common::read_until(
            &mut progress,
            |line| {
                ["T16:", "T17:", "T18:"]
                    .iter()
                    .any(|h| line.contains(&format!("event time 2013-10-07{h}")))
            },
            "its progress passed 16:00",
        );
        (child, progress)
    };
    let (mut child, _) = paced_past_four("killed", &pipeline);
    child.kill().unwrap();
    child.wait().unwrap();
    let (child, mut progress) = paced_past_four("stopped", &stopped);
    common::sigterm(&child);
    let out = child.wait_with_output().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut progress, &mut log).unwrap();
    assert!(out.status.success(), "{log}");
    assert!(log.contains("the kafka offsets are not committed"), "{log}");
    // ...and started again: it reads every tick, because nothing was committed.
    let rerun = run_ok(&[], &dir.path().join("rerun"), &pipeline, &brokers);
    assert_eq!(
        records_read(&rerun),
        records_read(&reference),
        "no tick lost: {rerun}"
    );

    // The topic has the killed run's signals and the rerun's; by id, exactly the reference.
    let messages = consume(&python, &brokers, &signals, 0);
    assert!(
        messages.len() > expected.len(),
        "the killed run's signals are in the topic too: {} messages, {} signals",
        messages.len(),
        expected.len()
    );
    let mut by_id: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for (_, _, v) in messages {
        let id = v["id"].as_str().unwrap().to_string();
        if let Some(seen) = by_id.get(&id) {
            assert_eq!(*seen, v, "a repeated id carries the same signal");
        }
        by_id.insert(id, v);
    }
    assert_eq!(by_id, expected);
}

#[test]
fn the_shipped_kafka_pipeline_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/kafka.toml");
    let out = tickflow().arg("validate").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The sum of `group`'s committed offsets over the partitions of `topic`, as confluent-kafka
/// reads them.
fn committed(python: &str, brokers: &str, topic: &str, group: &str) -> i64 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kafka_client.py");
    let out = Command::new(python)
        .arg(script)
        .args(["committed", brokers, topic, group])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A `tickflow run` of a pipeline that follows a topic, running in the background; its
/// progress lines tell how many records it has read.
struct LiveJob {
    child: std::process::Child,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl LiveJob {
    fn start(pipeline: &Path, out: &Path, brokers: &str) -> Self {
        Self::start_on(pipeline, out, brokers, 2)
    }

    /// The job on `workers` workers.
    fn start_on(pipeline: &Path, out: &Path, brokers: &str, workers: usize) -> Self {
        use std::io::BufRead;
        let mut child = tickflow()
            .args(["run", "--workers", &workers.to_string(), "-o"])
            .arg(out)
            .arg(pipeline)
            .env("TICKFLOW_KAFKA_BROKERS", brokers)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (r, e) = (read.clone(), stderr.clone());
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(n) = line
                    .strip_prefix("… ")
                    .and_then(|l| l.split(' ').next())
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    r.store(n, std::sync::atomic::Ordering::Relaxed);
                }
                let mut all = e.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        Self {
            child,
            read,
            stderr,
        }
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the job has read `n` records.
    fn wait_read(&mut self, n: u64) {
        wait_for(
            || self.read.load(std::sync::atomic::Ordering::Relaxed) >= n,
            &format!("the live job to read {n} records"),
            || self.log(),
        );
    }

    /// SIGTERM, as Kubernetes stops a pod: the job must finish cleanly; returns its summary.
    fn terminate(mut self) -> String {
        common::sigterm(&self.child);
        let mut stdout = String::new();
        std::io::Read::read_to_string(self.child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}: {stdout}{}", self.log());
        assert!(self.log().contains("tickflow: stopping"), "{}", self.log());
        stdout
    }

    /// SIGKILL: the job dies on the spot.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// Copies the files of `dirs` into `into` (created), for one replay of all of them.
fn gather(into: &Path, dirs: &[&tempfile::TempDir]) -> PathBuf {
    std::fs::create_dir_all(into).unwrap();
    for d in dirs {
        for e in std::fs::read_dir(d.path()).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), into.join(e.file_name())).unwrap();
        }
    }
    into.to_path_buf()
}

/// Waits up to 120 s for `done`, failing with `what` and `log()` if it does not come.
fn wait_for(mut done: impl FnMut() -> bool, what: &str, log: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for {what}:\n{}",
            log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// [`from_kafka`] following its topic, with the trades written too.
fn live_pipeline(topic: &str, group: &str) -> String {
    from_kafka()
        .replace(
            "venue = \"US\"\n",
            "venue = \"US\"\nfollow = true\nsymbols = [\"AIG\", \"BAC\"]\nidle_timeout = \"10s\"\ncommit_interval = \"300ms\"\n",
        )
        .replace(
            "streams = [\"bars\", \"indicators\", \"rejects\"]",
            "streams = [\"trades\", \"bars\", \"indicators\"]",
        )
        .replace("TOPIC", topic)
        .replace("GROUP", group)
}

#[test]
fn a_live_job_follows_the_topic_commits_as_it_goes_and_stops_cleanly() {
    let Some((brokers, python)) =
        setup("a_live_job_follows_the_topic_commits_as_it_goes_and_stops_cleanly")
    else {
        return;
    };
    let day1 = ["aig_20131007_trade.zip", "bac_20131007_trade.zip"];
    let day2 = ["aig_20131008_trade.zip", "bac_20131008_trade.zip"];
    let Some((data1, t, _)) = publish_lean(&day1, "2", &brokers, "live") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pipeline = |group: &str| {
        let p = dir.path().join(format!("{group}.toml"));
        let text = live_pipeline(&t, group) + PARQUET_TRADES + BIG_TRADES;
        assert!(text.contains("follow = true") && text.contains("\"trades\""));
        std::fs::write(&p, text).unwrap();
        p
    };
    let published = |data: &Path| -> u64 {
        let files = dir.path().join("count");
        records_read(&run_ok(
            &["--data", data.to_str().unwrap()],
            &files,
            &pipeline("count"),
            &brokers,
        ))
    };
    let n1 = published(data1.path());

    // Job A follows the topic and commits what its sinks have processed as it goes; it dies
    // by SIGKILL part-way.
    let group = format!("{t}-trader");
    let a = LiveJob::start(&pipeline(&group), &dir.path().join("a"), &brokers);
    wait_for(
        || committed(&python, &brokers, &t, &group) > 0,
        "a periodic commit",
        || a.log(),
    );
    a.kill();
    let c1 = committed(&python, &brokers, &t, &group);
    assert!(c1 > 0 && c1 <= i64::try_from(n1).unwrap(), "{c1} of {n1}");

    // What A wrote: complete lines, and perhaps a last one the kill tore.
    let written_by_a = std::fs::read_to_string(dir.path().join("a/trades.jsonl")).unwrap();
    let kept = &written_by_a[..written_by_a.rfind('\n').map_or(0, |i| i + 1)];
    assert!(kept.lines().count() > 100);

    // Job B goes on from the commit into the same directory, and reads the next day as it is
    // published.
    let mut b = LiveJob::start(&pipeline(&group), &dir.path().join("a"), &brokers);
    let c1 = u64::try_from(c1).unwrap();
    b.wait_read(n1 - c1);
    let (data2, _, _) = publish_lean_with(&day2, "2", &brokers, &format!("={t}"), &[]).unwrap();
    let n2 = published(data2.path());
    b.wait_read(n1 - c1 + n2);
    // SIGTERM: what was read is processed and written, and committed.
    let summary = b.terminate();
    assert_eq!(records_read(&summary), n1 - c1 + n2, "{summary}");
    assert_eq!(
        committed(&python, &brokers, &t, &group),
        i64::try_from(n1 + n2).unwrap()
    );

    // No tick lost: A's and B's trades together are every published trade.
    let all = gather(&dir.path().join("all"), &[&data1, &data2]);
    let files = dir.path().join("files");
    run_ok(
        &["--data", all.to_str().unwrap()],
        &files,
        &pipeline("files"),
        &brokers,
    );
    let lines = |p: PathBuf| -> std::collections::BTreeSet<String> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let expected = lines(files.join("trades.jsonl"));
    let both = std::fs::read_to_string(dir.path().join("a/trades.jsonl")).unwrap();
    assert!(both.starts_with(kept), "B went on after A's lines");
    let got = lines(dir.path().join("a/trades.jsonl"));
    assert!(expected.len() > 1000);
    assert_eq!(
        got.len(),
        expected.len(),
        "trades before and after the kill"
    );
    assert!(
        got == expected,
        "the live jobs' trades are the published trades"
    );
    // So do their Parquet parts: A committed only what its closed parts held, so the part
    // it left open lost nothing (B read those trades again, and wrote on after A's parts).
    parquet_agrees(
        &python,
        "same set",
        &[dir.path().join("a/trades")],
        &files.join("trades.parquet"),
    );
    // And so do the outputs of their continuous query: its results go on after A's, and the
    // input was committed only behind what A's query had made durable.
    let expected = lines(files.join("big_trades.jsonl"));
    assert!(expected.len() > 100, "{} big trades", expected.len());
    assert_eq!(lines(dir.path().join("a/big_trades.jsonl")), expected);
    parquet_agrees(
        &python,
        "same set",
        &[dir.path().join("a/big_trades_pq")],
        &files.join("big_trades_pq.parquet"),
    );

    // A job following the whole topic from the start computes what a replay of the files does.
    let c = LiveJob::start(
        &pipeline(&format!("{t}-whole")),
        &dir.path().join("c"),
        &brokers,
    );
    let mut c = c;
    c.wait_read(n1 + n2);
    let summary = c.terminate();
    assert_eq!(records_read(&summary), n1 + n2, "{summary}");
    for f in ["bars.jsonl", "indicators.jsonl"] {
        let a = std::fs::read_to_string(files.join(f)).unwrap();
        assert!(a.lines().count() > 1000, "{f}");
        assert_eq!(
            a,
            std::fs::read_to_string(dir.path().join("c").join(f)).unwrap(),
            "{f}: the live job gives what the files give"
        );
    }
}

/// Orders from the signals through pre-trade risk to a simulated exchange that fills at the
/// last trade (the trade-only data has no quotes); the fills come back to risk.
const TRADING: &str = r#"
[[operator]]
name = "orders"
kind = "risk"
input = "signals"
prices = "bars"
fills = "fills"
rejects = "risk_rejects"
position_size = 100
max_position = 200
max_orders = 4
rate_window = "10m"

[[operator]]
name = "fills"
kind = "exchange"
input = "orders"
no_quote = "last_trade"
latency = "2ms"
fee_bps = 0.5
"#;

/// The time of the newest complete checkpoint in `dir` (ns), if there is one.
fn newest_checkpoint(dir: &Path) -> Option<i64> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_prefix("ckpt-")?.parse::<i64>().ok()
        })
        .max()
}

#[test]
fn a_live_job_resumes_from_its_checkpoint_as_if_it_had_never_stopped() {
    resumes_as_if_it_had_never_stopped(
        "a_live_job_resumes_from_its_checkpoint_as_if_it_had_never_stopped",
        (2, 2),
    );
}

/// Restarted on three workers, a job checkpointed on one spreads its state over them: the
/// instruments of the one worker's state go to the workers that now read their records (the
/// account's risk gate stays on worker 0), and partitions to their new readers.
#[test]
fn a_live_job_resumed_on_more_workers_goes_on_as_if_it_had_never_stopped() {
    resumes_as_if_it_had_never_stopped(
        "a_live_job_resumed_on_more_workers_goes_on_as_if_it_had_never_stopped",
        (1, 3),
    );
}

/// Job A, on `workers.0` workers, reads the first day of a topic with checkpoints and is
/// killed; job B, on `workers.1`, resumes from the checkpoint and reads the second day: every
/// output is what one uninterrupted replay writes.
fn resumes_as_if_it_had_never_stopped(test: &str, workers: (usize, usize)) {
    let Some((brokers, python)) = setup(test) else {
        return;
    };
    let day1 = ["aig_20131007_trade.zip", "bac_20131007_trade.zip"];
    let day2 = ["aig_20131008_trade.zip", "bac_20131008_trade.zip"];
    let Some((data1, t, _)) = publish_lean(&day1, "2", &brokers, "ckpt") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = dir.path().join("checkpoints");
    let group = format!("{t}-trader");
    // Bars, indicators and signals (each with history: 20-bar averages, crossings) of the
    // trades, orders through pre-trade risk to a simulated exchange whose fills come back to
    // risk, and the portfolio valuation of the fills (differential dataflow) with its report;
    // every stream to files, and continuous SQL queries (tumbling, hopping and session
    // windows) to JSON Lines and Parquet, checkpointed every 30 minutes of event time. The
    // live jobs send bars, signals, orders and the valuation to topics as well.
    let text = live_pipeline(&t, &group)
        .replace(
            "streams = [\"trades\", \"bars\", \"indicators\"]",
            &format!("streams = {STREAMS:?}"),
        )
        .replace(
            "[[sink]]",
            &format!("{SIGNAL_RULES}{TRADING}{PORTFOLIO}{PARQUET}\n[[sink]]"),
        )
        + QUERIES;
    let replay = dir.path().join("replay.toml");
    std::fs::write(&replay, &text).unwrap();
    let live = dir.path().join("live.toml");
    let out_topics = format!("{t}-out");
    std::fs::write(
        &live,
        format!(
            "{text}{}\n[checkpoint]\ndir = \"{}\"\ninterval = \"30m\"\n",
            TO_TOPICS.replace("TOPIC", &out_topics),
            checkpoints.display()
        ),
    )
    .unwrap();
    let n1 = records_read(&run_ok(
        &["--data", data1.path().to_str().unwrap()],
        &dir.path().join("count"),
        &replay,
        &brokers,
    ));

    // Job A reads the first day, checkpointing as its watermark passes each half hour, and
    // dies by SIGKILL.
    let out = dir.path().join("live");
    let mut a = LiveJob::start_on(&live, &out, &brokers, workers.0);
    a.wait_read(n1);
    wait_for(
        || newest_checkpoint(&checkpoints).is_some(),
        "a checkpoint",
        || a.log(),
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    a.kill();
    // The checkpoint B must resume from: the newest complete one.
    let at = newest_checkpoint(&checkpoints).unwrap();
    let at_text = tickflow_core::Timestamp(at).to_string()[..19].to_string();

    // Job B resumes from the checkpoint and reads the second day as it is published.
    let b = LiveJob::start_on(&live, &out, &brokers, workers.1);
    let (data2, _, _) = publish_lean_with(&day2, "2", &brokers, &format!("={t}"), &[]).unwrap();
    let all = gather(&dir.path().join("all"), &[&data1, &data2]);
    let files = dir.path().join("files");
    let whole = run_ok(
        &["--data", all.to_str().unwrap()],
        &files,
        &replay,
        &brokers,
    );
    let n = records_read(&whole);
    // B's watermark reaches the last minute of the second day (the last event time less the
    // allowed lateness); by then the topic is read to its end.
    let last = whole
        .lines()
        .find_map(|l| l.strip_prefix("event time"))
        .and_then(|l| l.split(".. ").nth(1))
        .unwrap_or_else(|| panic!("{whole}"))
        .trim()
        .to_string();
    wait_for(
        || b.log().contains(&format!("event time {}", &last[..16])),
        &format!("job B to read up to {last}"),
        || b.log(),
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let b_log = b.log();
    let summary = b.terminate();
    assert_eq!(
        committed(&python, &brokers, &t, &group),
        i64::try_from(n).unwrap(),
        "{summary}"
    );
    assert!(
        summary.contains(&format!(
            "resumed         from the checkpoint at {}",
            tickflow_core::Timestamp(at)
        )),
        "{summary}"
    );
    assert!(
        newest_checkpoint(&checkpoints).is_some_and(|newer| newer > at),
        "job B checkpoints too: {summary}"
    );
    assert_eq!(
        summary.contains(&format!(
            "taken by {} worker{}, its operator state spread over {} by instrument",
            workers.0,
            if workers.0 == 1 { "" } else { "s" },
            workers.1
        )),
        workers.0 != workers.1,
        "{summary}"
    );
    // The means and bursts folded the rows of their open windows: the checkpoints held such
    // states.
    for q in ["bar_means", "bursts", "flow"] {
        let mut lines = summary
            .lines()
            .skip_while(|l| !l.starts_with(&format!("query {q}:")));
        assert!(
            lines
                .nth(1)
                .is_some_and(|l| l.contains("open windows folded")),
            "{q}: {summary}"
        );
    }

    // B went on with A's files from where the checkpoint left them: each is, byte for byte,
    // what a replay of both days writes — no trade lost or written twice, and bars,
    // indicators, signals, orders, fills and the valuation computed with the state A had
    // built up.
    for stream in STREAMS {
        let f = format!("{stream}.jsonl");
        let expected = std::fs::read_to_string(files.join(&f)).unwrap();
        assert!(
            expected
                .lines()
                .filter(|l| l.contains(&at_text[..10]))
                .count()
                > 3,
            "{f}: rows of the first day"
        );
        let got = std::fs::read_to_string(out.join(&f)).unwrap();
        if got != expected {
            let (g, e): (Vec<_>, Vec<_>) = (got.lines().collect(), expected.lines().collect());
            let first = g.iter().zip(&e).position(|(x, y)| x != y);
            panic!(
                "{f}: {} rows, expected {}; first difference at row {first:?}: {:?}\n{summary}",
                g.len(),
                e.len(),
                first.map(|k| (g[k], e[k]))
            );
        }
    }
    // And B's report is the whole job's: orders, fills and rejects counted since A started,
    // the final positions and PnL, and the backtest figures over both days.
    let report = |summary: &str| -> String {
        let lines: Vec<&str> = summary
            .lines()
            .skip_while(|l| !(l.starts_with("orders ") && l.contains("(fills ")))
            .collect();
        let end = lines
            .iter()
            .position(|l| l.starts_with("backtest "))
            .unwrap_or_else(|| panic!("{summary}"));
        lines[..=end].join("\n")
    };
    assert!(report(&whole).contains("positions       symbol"), "{whole}");
    assert_eq!(report(&summary), report(&whole), "{summary}");
    // The queries went on from the state A's checkpoint held: B's result files, A's cut back
    // to the checkpoint, hold the replay's results (in the order each execution gave them),
    // and B's counters are the whole job's.
    let queries = |summary: &str| -> Vec<String> {
        summary
            .lines()
            .filter(|l| l.starts_with("query "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(queries(&whole).len(), 4, "{whole}");
    // (The live jobs' query to a topic is the replay's `ohlc_5m`.)
    let topic_query = queries(&summary)
        .into_iter()
        .find(|l| l.starts_with("query ohlc_5m_topic:"))
        .unwrap_or_else(|| panic!("{summary}"));
    assert_eq!(
        topic_query.replace("ohlc_5m_topic", "ohlc_5m"),
        queries(&whole)[0],
        "{summary}"
    );
    let others: Vec<String> = queries(&summary)
        .into_iter()
        .filter(|l| *l != topic_query)
        .collect();
    assert_eq!(others, queries(&whole), "{summary}");
    for q in ["ohlc_5m", "bar_means", "flow", "flow_signals"] {
        let f = format!("{q}.jsonl");
        let lines = |p: &Path| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect();
            v.sort();
            v
        };
        let (got, expected) = (lines(&out.join(&f)), lines(&files.join(&f)));
        assert!(
            expected
                .iter()
                .filter(|l| l.contains(&at_text[..10]))
                .count()
                > 3,
            "{f}: results of the first day"
        );
        let missing: Vec<&String> = expected.iter().filter(|l| !got.contains(l)).collect();
        let extra: Vec<&String> = got.iter().filter(|l| !expected.contains(l)).collect();
        assert!(
            got == expected,
            "{f}: {} results, expected {}; missing {missing:?}; extra {extra:?}\n{}\n{summary}",
            got.len(),
            expected.len(),
            b_log
        );
    }
    parquet_agrees(
        &python,
        "same rows",
        &[out.join("bursts")],
        &files.join("bursts.parquet"),
    );
    // A had sent rows after the checkpoint to the topics; B found them and left them out: each
    // topic holds, per key, the replay's rows in order, each once.
    let log = b_log;
    assert!(
        log.contains(&format!("kafka:{out_topics}-bars: "))
            && log.contains("they are not sent again"),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.starts_with("tickflow: query ohlc_5m_topic: ")
                && l.contains("after the checkpoint are in the topic")),
        "{log}"
    );
    // The query's results: each once (in the order each execution gave them).
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let expected = sorted(
        std::fs::read_to_string(files.join("ohlc_5m.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .unwrap()
                    .to_string()
            })
            .collect(),
    );
    let got = sorted(
        consume(&python, &brokers, &format!("{out_topics}-ohlc_5m_topic"), 0)
            .into_iter()
            .map(|(_, _, v)| v.to_string())
            .collect(),
    );
    assert_eq!(got.len(), expected.len(), "ohlc_5m_topic\n{log}");
    assert!(got == expected, "ohlc_5m_topic: the results differ\n{log}");
    for stream in ["bars", "signals", "orders", "portfolio"] {
        let mut expected: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for line in std::fs::read_to_string(files.join(format!("{stream}.jsonl")))
            .unwrap()
            .lines()
        {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let key = v["instrument"].as_str().unwrap_or(stream).to_string();
            expected.entry(key).or_default().push(v);
        }
        let mut got: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for (key, _, v) in consume(&python, &brokers, &format!("{out_topics}-{stream}"), 0) {
            got.entry(key).or_default().push(v);
        }
        let count = |m: &BTreeMap<String, Vec<serde_json::Value>>| -> usize {
            m.values().map(Vec::len).sum()
        };
        assert!(count(&expected) > 10, "{stream}: {}", count(&expected));
        for (key, want) in &expected {
            let have = got.get(key).map(Vec::as_slice).unwrap_or_default();
            let first = have.iter().zip(want).position(|(x, y)| x != y);
            assert!(
                have == want.as_slice(),
                "{stream} {key}: {} messages, expected {}; first difference at {first:?}: {:?}\n{log}",
                have.len(),
                want.len(),
                first.map(|k| (&have[k], &want[k]))
            );
        }
        assert_eq!(count(&got), count(&expected), "{stream}");
    }
    // The live jobs wrote Parquet as rolled parts, A's cut back to the checkpoint: together
    // they hold the rows of the replay's single files, in order.
    for stream in ["trades", "bars", "positions"] {
        let parts = out.join(stream);
        let n = std::fs::read_dir(&parts)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".parquet")
            })
            .count();
        assert!(n >= 2, "{stream}: {n} parts");
        parquet_agrees(
            &python,
            "exact",
            &[parts],
            &files.join(format!("{stream}.parquet")),
        );
    }
}

/// Checks with pyarrow that the rows of Parquet parts directories `dirs` together are the rows
/// of Parquet file `file`: the same rows in the same order (`exact`), the same rows in any order
/// (`same rows`), or the same set of rows (`same set`: a row may be in more than one part). A
/// trade's `seq` numbers it within its source (a topic, files) and is left out.
fn parquet_agrees(python: &str, mode: &str, dirs: &[PathBuf], file: &Path) {
    let check = Command::new(python)
        .args([
            "-c",
            "import sys, pyarrow as pa, pyarrow.parquet as pq\n\
             mode, file, *dirs = sys.argv[1:]\n\
             b = pq.read_table(file)\n\
             a = pa.concat_tables([pq.read_table(d) for d in dirs])\n\
             drop = [c for c in ['seq'] if c in a.column_names]\n\
             a = a.drop_columns(drop); b = b.drop_columns(drop)\n\
             rows = lambda t: set(zip(*[t.column(c).to_pylist() for c in t.column_names]))\n\
             listed = lambda t: sorted(zip(*[t.column(c).to_pylist() for c in t.column_names]), key=repr)\n\
             same = a.equals(b) if mode == 'exact' else listed(a) == listed(b) if mode == 'same rows' else rows(a) == rows(b)\n\
             print(a.num_rows, b.num_rows, same)",
            mode,
        ])
        .arg(file)
        .args(dirs)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && said.trim().ends_with("True") && !said.starts_with("0 "),
        "{}: {said}{}",
        file.display(),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// Kafka sinks of the resume test: streams to topics `TOPIC-<stream>`, and the `ohlc_5m`
/// query of [`QUERIES`] to one too.
const TO_TOPICS: &str = r#"
[[sink]]
kind = "kafka"
topic = "TOPIC-{stream}"
partitions = 2
streams = ["bars", "signals", "orders", "portfolio"]

[[query]]
name = "ohlc_5m_topic"
sink = "kafka"
topic = "TOPIC-{stream}"
partitions = 2
sql = """
SELECT symbol, window_start, window_end, count(*) AS trades, min(price) AS low,
       max(price) AS high, sum(size) AS volume
FROM tumble('trades', 'ts_event', INTERVAL '5 minutes')
GROUP BY symbol, window_start, window_end
"""
"#;

/// A Parquet sink of the trades, parts rolled after a second.
const PARQUET_TRADES: &str = r#"
[[sink]]
kind = "parquet"
streams = ["trades"]
roll = "1s"
"#;

/// A continuous query of the trades, to JSON Lines and to Parquet parts rolled after a second.
const BIG_TRADES: &str = r#"
[[query]]
name = "big_trades"
sink = "jsonl"
sql = "SELECT symbol, ts_event, price, size FROM trades WHERE size >= 500"

[[query]]
name = "big_trades_pq"
sink = "parquet"
roll = "1s"
sql = "SELECT symbol, ts_event, price, size FROM trades WHERE size >= 500"
"#;

/// Parquet sinks of the resume test: parts rolled after a second (a live job's commits and
/// checkpoints wait for the parts holding their rows to close).
const PARQUET: &str = r#"
[[sink]]
kind = "parquet"
streams = ["trades", "bars", "positions"]
roll = "1s"
"#;

/// The continuous queries of the resume test: five-minute bars of the trades and half-hour
/// means of the bars every ten minutes to JSON Lines, bursts of trading (sessions) to Parquet,
/// and ten-minute means as a stream of the dataflow that a signals operator trades on. The
/// means and the bursts fold the rows of their open windows into aggregate states every few
/// rows, so that checkpoints hold such states; the five-minute bars keep their rows (few
/// enough to stay under the default).
const QUERIES: &str = r#"
[[query]]
name = "ohlc_5m"
sink = "jsonl"
sql = """
SELECT symbol, window_start, window_end, count(*) AS trades, min(price) AS low,
       max(price) AS high, sum(size) AS volume
FROM tumble('trades', 'ts_event', INTERVAL '5 minutes')
GROUP BY symbol, window_start, window_end
"""

[[query]]
name = "bar_means"
sink = "jsonl"
fold_rows = 16
sql = """
SELECT symbol, window_end, avg(close) AS mean_close, count(*) AS bars
FROM hop('bars', 'end', INTERVAL '10 minutes', INTERVAL '30 minutes')
GROUP BY symbol, window_end
"""

[[query]]
name = "bursts"
sink = "parquet"
roll = "1s"
fold_rows = 24
sql = """
SELECT symbol, window_start, window_end, count(*) AS trades, sum(size) AS volume
FROM session('trades', 'ts_event', INTERVAL '2 minutes', 'symbol')
GROUP BY symbol, window_start, window_end
"""

[[query]]
name = "flow"
sink = "stream"
# Windows close a quarter of an hour late: some close after a checkpoint time that they end
# before.
lateness = "15m"
fold_rows = 32
sql = """
SELECT instrument_id, window_end, count(*) AS trades,
       CAST(avg(price) AS DOUBLE) AS mean,
       CAST((max(price) + min(price)) / 2 AS DOUBLE) AS mid
FROM tumble('trades', 'ts_event', INTERVAL '10 minutes')
GROUP BY instrument_id, window_end
"""

[[operator]]
name = "flow_signals"
kind = "signals"
input = "flow"
buy = "mid crosses_above mean"
sell = "mid crosses_below mean"

[[sink]]
kind = "jsonl"
streams = ["flow", "flow_signals"]
"#;

/// The streams the resume test writes and compares.
const STREAMS: [&str; 8] = [
    "trades",
    "bars",
    "indicators",
    "signals",
    "orders",
    "fills",
    "positions",
    "portfolio",
];

/// The portfolio valuation of the fills of [`TRADING`], marked at the bars' closes.
const PORTFOLIO: &str = r#"
[[operator]]
name = "positions"
kind = "portfolio"
input = "fills"
prices = "bars"
totals = "portfolio"
capital = 1000000
"#;

/// Sends `lines` ("KEY<TAB>VALUE") to `topic` (created with `partitions` when missing) through
/// the third-party client.
fn produce(python: &str, brokers: &str, topic: &str, partitions: &str, lines: &[String]) {
    use std::io::Write;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kafka_client.py");
    let mut child = Command::new(python)
        .arg(&script)
        .args(["produce", brokers, topic, partitions])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_resumed_job_rejects_and_dead_letters_each_bad_message_once() {
    let Some((brokers, python)) =
        setup("a_resumed_job_rejects_and_dead_letters_each_bad_message_once")
    else {
        return;
    };
    let (t, dlq) = (topic("bad-resume"), topic("bad-resume-dlq"));
    // One AIG trade a second from 14:30, every 25th message undecodable (its own text).
    let t0 = 1_704_205_800_000_000_000i64;
    let bad = |k: i64| k % 25 == 7;
    let messages = |from: i64, to: i64| -> Vec<String> {
        (from..to)
            .map(|k| {
                if bad(k) {
                    format!("AIG\tnot json {k}")
                } else {
                    format!(
                        r#"AIG	{{"type":"trade","instrument":"AIG","ts_event":{},"price":"47.{k:03}","size":100}}"#,
                        t0 + k * 1_000_000_000
                    )
                }
            })
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = dir.path().join("checkpoints");
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "[[source]]\nkind = \"kafka\"\ntopic = \"{t}\"\ngroup = \"{t}\"\ndead_letter = \"{dlq}\"\n\
             follow = true\nsymbols = [\"AIG\"]\nidle_timeout = \"10s\"\ncommit_interval = \"300ms\"\n\n\
             [[sink]]\nkind = \"jsonl\"\nstreams = [\"trades\", \"rejects\"]\n\n\
             [checkpoint]\ndir = \"{}\"\ninterval = \"5m\"\n",
            checkpoints.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let dead_letters = |count: usize| -> Vec<String> {
        consume(&python, &brokers, &dlq, count)
            .into_iter()
            .map(|(k, _, _)| k)
            .collect()
    };

    // Job A reads seven minutes waiting in the topic, checkpoints at 14:35 (within them), then
    // reads two minutes more, whose bad messages it dead-letters after the checkpoint, and is
    // killed before the next checkpoint (14:40).
    produce(&python, &brokers, &t, "1", &messages(0, 420));
    let a = LiveJob::start_on(&pipeline, &out, &brokers, 1);
    let at = t0 + 300_000_000_000;
    wait_for(
        || newest_checkpoint(&checkpoints) == Some(at),
        "the checkpoint at 14:35",
        || a.log(),
    );
    produce(&python, &brokers, &t, "1", &messages(420, 540));
    let first = (0..540).filter(|k| bad(*k)).count();
    assert_eq!(dead_letters(first).len(), first, "{}", a.log());
    a.kill();
    assert_eq!(newest_checkpoint(&checkpoints), Some(at));

    // Job B resumes from it: the messages after it are read again, and six minutes more.
    produce(&python, &brokers, &t, "1", &messages(540, 900));
    let b = LiveJob::start_on(&pipeline, &out, &brokers, 1);
    let all = (0..900).filter(|k| bad(*k)).count();
    wait_for(
        || dead_letters(0).len() >= all,
        "the dead letters of the last minutes",
        || b.log(),
    );
    wait_for(
        || b.log().contains("event time 2024-01-02T14:44"),
        "job B to read up to 14:44",
        || b.log(),
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let log = b.log();
    let summary = b.terminate();
    assert!(
        log.contains("dead letters that the job before the restart sent after the checkpoint"),
        "{log}"
    );

    // Each bad message is in the dead-letter topic once, and in the rejects once; each good
    // one is a trade once.
    let positions = |texts: &[String]| -> Vec<i64> {
        let mut v: Vec<i64> = texts
            .iter()
            .map(|s| {
                let after = s
                    .split(&format!("{t}/0@"))
                    .nth(1)
                    .unwrap_or_else(|| panic!("{s}"));
                let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().unwrap()
            })
            .collect();
        v.sort_unstable();
        v
    };
    let expected: Vec<i64> = (0..900).filter(|k| bad(*k)).collect();
    assert_eq!(positions(&dead_letters(0)), expected, "dead letters\n{log}");
    let lines = |f: &str| -> Vec<String> {
        std::fs::read_to_string(out.join(f))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        positions(&lines("rejects.jsonl")),
        expected,
        "rejects\n{summary}"
    );
    let trades = lines("trades.jsonl");
    assert_eq!(trades.len(), 900 - expected.len(), "{summary}");
    let prices: std::collections::BTreeSet<String> = trades
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["price"].to_string())
        .collect();
    assert_eq!(prices.len(), trades.len(), "a trade twice\n{summary}");
}
