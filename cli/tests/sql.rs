//! SQL from the command line: `[[query]]` in a pipeline file, `tickflow validate` on queries,
//! and `tickflow sql` against a running job's Flight SQL endpoint.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tickflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tickflow"))
}

const PIPELINE: &str = r#"
[pipeline]
name = "cli-sql"

[[source]]
kind = "synthetic"
instruments = 2
duration = "10m"

[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "1m"

[[query]]
name = "ohlcv_5m"
sink = "jsonl"
sql = """
SELECT symbol, window_start, count(*) AS trades, max(price) AS high, min(price) AS low
FROM tumble('trades', 'ts_event', INTERVAL '5 minutes')
GROUP BY symbol, window_start
"""
"#;

/// Runs pipeline `text` from a file in `dir`, its outputs in `dir/out`.
fn run_in(dir: &std::path::Path, text: &str) -> std::process::Output {
    let path = dir.join("p.toml");
    std::fs::write(&path, text).unwrap();
    tickflow()
        .args(["run", "-q", "-o"])
        .arg(dir.join("out"))
        .arg(&path)
        .output()
        .unwrap()
}

#[test]
fn a_pipeline_query_writes_its_results_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), PIPELINE);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("query ohlcv_5m:"), "{stdout}");
    assert!(stdout.contains("4 rows out, 0 late rows"), "{stdout}");
    let text = std::fs::read_to_string(dir.path().join("out/ohlcv_5m.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 4, "2 symbols x 2 windows:\n{text}");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["trades"].as_i64().unwrap() > 0, "{v}");
    }
}

#[test]
fn a_query_that_fails_while_the_job_runs_fails_the_run_and_the_other_queries_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let broken = "\n[[query]]\nname = \"broken\"\nsink = \"jsonl\"\n\
                  sql = \"SELECT symbol, price / (size - size) AS x FROM trades\"\n";
    let out = run_in(dir.path(), &format!("{PIPELINE}{broken}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    // The run's errors say which query failed and why (a job reading Kafka then leaves its
    // offsets uncommitted, so the next run reads the records again), and the other query wrote
    // all its results.
    let errors = stdout.split("query ohlcv_5m:").next().unwrap_or_default();
    assert!(
        errors.contains("query broken failed:") && errors.contains("zero"),
        "{stdout}"
    );
    assert!(stdout.contains("4 rows out, 0 late rows"), "{stdout}");
}

#[test]
fn validate_refuses_a_query_that_does_not_plan_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = PIPELINE.replace(
        "GROUP BY symbol, window_start",
        "GROUP BY symbol, window_start HAVING",
    );
    std::fs::write(&path, text).unwrap();
    let out = tickflow().arg("validate").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml: query ohlcv_5m:"), "{err}");
    assert!(err.contains("Expected: an expression"), "{err}");

    std::fs::write(&path, PIPELINE.replace("tumble('trades'", "tumble('trade'")).unwrap();
    let out = tickflow().arg("run").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no stream named trade"), "{err}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tickflow_sql_queries_a_running_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, PIPELINE).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut job = tickflow()
        .args([
            "run",
            "-q",
            "--sql-linger",
            "60",
            "--sql-listen",
            &addr,
            "-o",
        ])
        .arg(dir.path().join("out"))
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The job ends quickly and then keeps answering; ask until the answer is complete.
    let t0 = Instant::now();
    let table = loop {
        let out = tickflow()
            .args(["sql", "--connect", &addr])
            .arg("SELECT symbol, count(*) AS bars FROM bars GROUP BY symbol ORDER BY symbol")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() && stdout.contains("| 10   |") {
            break stdout;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no answer: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        table.contains("| SYN00  | 10   |") && table.contains("| SYN01  | 10   |"),
        "{table}"
    );

    let out = tickflow()
        .args(["sql", "--connect", &addr, "SELECT nothing FROM bars"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing"), "{err}");
    let _ = job.kill();
    let _ = job.wait();

    let nobody = format!("127.0.0.1:{}", free_port());
    let out = tickflow()
        .args(["sql", "--connect", &nobody, "SELECT 1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot connect to {nobody}"))
            && err.contains(&format!("--sql-listen {nobody}")),
        "{err}"
    );
}

/// A query whose results are a stream: one-minute VWAP and close per instrument, read by a
/// signals operator, written by a sink, and read again by a later query.
const STREAM_PIPELINE: &str = r#"
[pipeline]
name = "query-stream"

[[source]]
kind = "synthetic"
instruments = 3
duration = "30m"
seed = 11

[[query]]
name = "flow"
sink = "stream"
sql = """
SELECT instrument_id, symbol, window_end, count(*) AS trades,
       CAST(sum(price * size) AS DOUBLE) / CAST(sum(size) AS DOUBLE) AS vwap,
       CAST(last_value(price ORDER BY ts_event, seq) AS DOUBLE) AS close
FROM tumble('trades', 'ts_event', INTERVAL '1 minute')
GROUP BY instrument_id, symbol, window_end
"""

# The same aggregation written straight to a file, to compare the stream with.
[[query]]
name = "direct"
sink = "jsonl"
sql = """
SELECT symbol, window_end, count(*) AS trades,
       CAST(sum(price * size) AS DOUBLE) / CAST(sum(size) AS DOUBLE) AS vwap
FROM tumble('trades', 'ts_event', INTERVAL '1 minute')
GROUP BY symbol, window_end
"""

# A later query reads the query stream like any other table.
[[query]]
name = "from_flow"
sink = "jsonl"
sql = "SELECT symbol, \"end\", trades, vwap FROM flow"

[[operator]]
name = "signals"
kind = "signals"
input = "flow"
buy = "close > vwap"
sell = "close < vwap"

[[sink]]
kind = "jsonl"
streams = ["flow", "signals"]
"#;

fn run_pipeline(text: &str, workers: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, text).unwrap();
    let out = tickflow()
        .args(["run", "-q", "--workers", workers, "-o"])
        .arg(dir.path().join("out"))
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, stdout)
}

fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (symbol, window end as the query wrote it) -> (trades, vwap).
fn by_window(
    rows: &[serde_json::Value],
    end: &str,
) -> std::collections::BTreeMap<(String, String), (f64, f64)> {
    rows.iter()
        .map(|v| {
            (
                (
                    v["symbol"].as_str().unwrap().to_string(),
                    v[end].as_str().unwrap().to_string(),
                ),
                (v["trades"].as_f64().unwrap(), v["vwap"].as_f64().unwrap()),
            )
        })
        .collect()
}

#[test]
fn a_query_stream_feeds_signals_sinks_and_later_queries() {
    let (dir, stdout) = run_pipeline(STREAM_PIPELINE, "1");
    let out = dir.path().join("out");
    // 3 instruments x 30 one-minute windows.
    let direct = json_lines(&out.join("direct.jsonl"));
    assert_eq!(direct.len(), 90, "{stdout}");
    let from_flow = json_lines(&out.join("from_flow.jsonl"));
    assert_eq!(
        by_window(&from_flow, "end"),
        by_window(&direct, "window_end"),
        "the stream, read back by a query, is the query's result row for row"
    );

    // The stream's own sink: one record per instrument and window, with the values.
    let flow = json_lines(&out.join("flow.jsonl"));
    assert_eq!(flow.len(), 90);
    let closes: std::collections::BTreeMap<(String, String), (f64, f64)> = flow
        .iter()
        .map(|v| {
            (
                (
                    v["instrument"].as_str().unwrap().to_string(),
                    v["end"].as_str().unwrap().to_string(),
                ),
                (v["close"].as_f64().unwrap(), v["vwap"].as_f64().unwrap()),
            )
        })
        .collect();
    // Every signal follows its rule on the row it was made from.
    let signals = json_lines(&out.join("signals.jsonl"));
    assert!(!signals.is_empty(), "{stdout}");
    for s in &signals {
        let key = (
            s["instrument"].as_str().unwrap().to_string(),
            s["ts_event"].as_str().unwrap().to_string(),
        );
        let (close, vwap) = closes[&key];
        match s["side"].as_str().unwrap() {
            "buy" => assert!(close > vwap, "{s}: close {close} vwap {vwap}"),
            _ => assert!(close < vwap, "{s}: close {close} vwap {vwap}"),
        }
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("flow ") && l.trim_end().ends_with(" 90 out")),
        "the summary counts the stream:\n{stdout}"
    );

    // The same with two workers: identical files.
    let (dir2, _) = run_pipeline(STREAM_PIPELINE, "2");
    for f in ["flow.jsonl", "signals.jsonl", "from_flow.jsonl"] {
        assert_eq!(
            std::fs::read_to_string(out.join(f)).unwrap(),
            std::fs::read_to_string(dir2.path().join("out").join(f)).unwrap(),
            "{f} differs between 1 and 2 workers"
        );
    }
}

#[test]
fn query_streams_that_cannot_work_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.toml");
    let validate = |text: &str| {
        std::fs::write(&path, text).unwrap();
        let out = tickflow().arg("validate").arg(&path).output().unwrap();
        assert!(!out.status.success(), "{text}");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    // A query reading what is computed from its own results.
    let cycle = STREAM_PIPELINE.replace(
        "FROM tumble('trades', 'ts_event', INTERVAL '1 minute')\nGROUP BY instrument_id",
        "FROM tumble('trades', 'ts_event', INTERVAL '1 minute')\nWHERE instrument_id NOT IN (SELECT instrument_id FROM latest_signals)\nGROUP BY instrument_id",
    );
    let e = validate(&cycle);
    assert!(
        e.contains("query flow: it reads `signals`, which is computed from its own results"),
        "{e}"
    );
    // A text column cannot be a value.
    let e = validate(&STREAM_PIPELINE.replace(
        "count(*) AS trades,\n       CAST(sum(price * size)",
        "count(*) AS trades, 'x' AS tag,\n       CAST(sum(price * size)",
    ));
    assert!(
        e.contains("column `tag` (Utf8) cannot go into a stream"),
        "{e}"
    );
    // A rule naming a column the stream does not have.
    let e =
        validate(&STREAM_PIPELINE.replace("buy = \"close > vwap\"", "buy = \"close > vwap_5m\""));
    assert!(e.contains("vwap_5m"), "{e}");
    // `time` belongs to query streams only.
    let e = validate(&STREAM_PIPELINE.replace(
        "name = \"direct\"\nsink = \"jsonl\"",
        "name = \"direct\"\nsink = \"jsonl\"\ntime = \"window_end\"",
    ));
    assert!(e.contains("it needs sink = \"stream\""), "{e}");
}
