//! SQL over a running pipeline: the pipeline's streams go through the tap into the hub, and
//! continuous and snapshot queries read them.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow_array::RecordBatch;
use common::{assert_same_rows, to_json};
use serde_json::Value;
use tickflow_pipelines::{Pipeline, RunOptions, Summary, run, stream_schemas};
use tickflow_sql::output::{Collect, Parquet};
use tickflow_sql::{QueryDef, Retention, SqlEngine, Started};

fn engine_for(pipeline: &Pipeline, retention: Retention) -> Arc<SqlEngine> {
    let engine = Arc::new(SqlEngine::new(retention).expect("engine"));
    for s in stream_schemas(pipeline) {
        engine
            .hub()
            .declare(&s.name, s.schema, s.time_column)
            .expect("declare");
    }
    engine
}

fn start(engine: &SqlEngine, name: &str, sql: &str) -> (Started, Collect) {
    let out = Collect::default();
    let def = QueryDef {
        name: name.into(),
        sql: sql.into(),
        lateness_ns: 0,
    };
    let started = engine
        .start_blocking(def, Box::new(out.clone()))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    (started, out)
}

fn run_with(pipeline: &Pipeline, engine: &Arc<SqlEngine>, out: &Path) -> Summary {
    let opts = RunOptions {
        output_dir: out.to_path_buf(),
        tap: Some(engine.hub().clone()),
        ..RunOptions::default()
    };
    run(pipeline, &opts).expect("run")
}

fn ok(q: &Started) {
    let err = q.stats.error.lock().unwrap().clone();
    assert!(err.is_none(), "{}", q.stats.summary(&q.name));
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

fn sample(rel: &str) -> Option<PathBuf> {
    let root = std::env::var_os("TICKFLOW_SAMPLE_DATA").filter(|v| !v.is_empty())?;
    let p = PathBuf::from(root).join(rel);
    p.exists().then_some(p)
}

#[test]
fn lean_ticks_one_minute_ohlcv_from_a_continuous_query_equals_duckdb() {
    let Some(tick) = sample("us-equities/tick") else {
        eprintln!("SKIPPED: set TICKFLOW_SAMPLE_DATA to ../shared/data");
        return;
    };
    let Some(python) = std::env::var_os("TICKFLOW_PYTHON").filter(|v| !v.is_empty()) else {
        eprintln!("SKIPPED: set TICKFLOW_PYTHON to a Python with duckdb (scripts/test.sh does)");
        return;
    };
    // One day of four symbols.
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("[pipeline]\nname = \"lean-sql\"\nallowed_lateness = \"1s\"\n");
    for sym in ["aig", "bac", "ibm", "spy"] {
        let path = tick.join(format!("{sym}_20131007_trade.zip"));
        text.push_str(&format!(
            "\n[[source]]\nkind = \"replay\"\npath = {:?}\n",
            path.display().to_string()
        ));
    }
    let pipeline = Pipeline::parse(&text, "test.toml").unwrap();
    let engine = engine_for(&pipeline, Retention::default());
    let (ohlcv, bars) = start(
        &engine,
        "ohlcv",
        "SELECT symbol, window_start, count(*) AS trades,
                first_value(price ORDER BY ts_event, seq) AS open, max(price) AS high,
                min(price) AS low, last_value(price ORDER BY ts_event, seq) AS close,
                sum(size) AS volume
         FROM tumble('trades', 'ts_event', INTERVAL '1 minute')
         GROUP BY symbol, window_start",
    );
    // The rows the stream carried, for DuckDB.
    let all = {
        let q = engine
            .handle()
            .block_on(engine.plan(QueryDef {
                name: "rows".into(),
                sql: "SELECT symbol, ts_event, seq, price, size FROM trades".into(),
                lateness_ns: 0,
            }))
            .unwrap();
        let out = Parquet::create(dir.path(), "rows", q.schema().clone()).unwrap();
        engine.start(q, Box::new(out)).unwrap()
    };
    let summary = run_with(&pipeline, &engine, &dir.path().join("out"));
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    engine.wait();
    ok(&ohlcv);
    ok(&all);
    let trades_in = ohlcv.stats.rows_in.load(Ordering::Relaxed);
    assert!(trades_in > 100_000, "only {trades_in} trades: {summary}");
    assert_eq!(trades_in, all.stats.rows_out.load(Ordering::Relaxed));
    assert_eq!(
        ohlcv.stats.late_rows.load(Ordering::Relaxed),
        0,
        "the job's watermark is exact"
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/duckdb_ohlcv.py");
    let res = std::process::Command::new(python)
        .arg(&script)
        .arg(dir.path().join("rows.parquet"))
        .output()
        .expect("run python");
    assert!(
        res.status.success(),
        "duckdb: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let want: Vec<BTreeMap<String, Value>> = String::from_utf8(res.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got = to_json(&bars.batches());
    assert!(got.len() > 1000, "{} bars", got.len());
    assert_same_rows("lean 1-minute OHLCV", got, want);
}

const SYNTHETIC: &str = r#"
[pipeline]
name = "sql-synthetic"

[[source]]
kind = "synthetic"
instruments = 3
duration = "20m"

[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "1m"

[[sink]]
kind = "jsonl"
streams = ["quotes", "bars"]
"#;

#[test]
fn snapshot_queries_read_recent_history_and_current_state() {
    let pipeline = Pipeline::parse(SYNTHETIC, "test.toml").unwrap();
    let engine = engine_for(
        &pipeline,
        Retention {
            span_ns: 5 * 60 * 1_000_000_000,
            max_rows: 10_000_000,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let summary = run_with(&pipeline, &engine, dir.path());
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);

    // latest_quotes: the last quote of each instrument, as the quotes file has it.
    let (_, got) = engine
        .query_blocking("SELECT symbol, ts_event, bid, ask FROM latest_quotes ORDER BY symbol")
        .unwrap();
    let got = to_json(&got);
    let mut last: BTreeMap<String, Value> = BTreeMap::new();
    for line in std::fs::read_to_string(dir.path().join("quotes.jsonl"))
        .unwrap()
        .lines()
    {
        let v: Value = serde_json::from_str(line).unwrap();
        last.insert(v["instrument"].as_str().unwrap().to_string(), v);
    }
    assert_eq!(got.len(), 3);
    assert_eq!(got.len(), last.len());
    for row in &got {
        let want = &last[row["symbol"].as_str().unwrap()];
        assert_eq!(
            row["bid"].as_f64(),
            want["bid"].as_f64(),
            "{row:?} vs {want}"
        );
        assert_eq!(
            row["ts_event"].as_i64().unwrap(),
            parse_ts(want["ts_event"].as_str().unwrap())
        );
    }

    // Bars: the history keeps the last 5 minutes of event time behind the watermark.
    let (_, b) = engine
        .query_blocking(
            "SELECT count(*) AS n, min(\"end\") AS first_end, max(\"end\") AS last_end FROM bars",
        )
        .unwrap();
    let b = &to_json(&b)[0];
    let n = b["n"].as_i64().unwrap();
    let span = b["last_end"].as_i64().unwrap() - b["first_end"].as_i64().unwrap();
    assert!(n >= 3 * 4, "{b:?}");
    assert!(
        span <= 6 * 60 * 1_000_000_000,
        "history spans {span} ns: {b:?}"
    );
    let total = std::fs::read_to_string(dir.path().join("bars.jsonl"))
        .unwrap()
        .lines()
        .count() as i64;
    assert!(n < total, "retention kept all {total} bars");

    // Windows over the history in a snapshot.
    let (_, w) = engine
        .query_blocking(
            "SELECT symbol, count(*) AS n FROM tumble('trades', 'ts_event', INTERVAL '1 minute') \
             GROUP BY symbol ORDER BY symbol",
        )
        .unwrap();
    assert_eq!(rows(&w), 3);
}

#[test]
fn bad_queries_are_refused_with_what_is_wrong_and_never_disturb_the_job() {
    let pipeline = Pipeline::parse(SYNTHETIC, "test.toml").unwrap();
    let engine = engine_for(&pipeline, Retention::default());
    let plan = |sql: &str| {
        engine
            .handle()
            .block_on(engine.plan(QueryDef {
                name: "q".into(),
                sql: sql.into(),
                lateness_ns: 0,
            }))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let e = plan("SELECT symbol FORM trades");
    assert!(e.contains("Line: 1, Column:"), "{e}");
    let e = plan("SELECT * FROM treads");
    assert!(e.contains("treads"), "{e}");
    let e = plan("SELECT colour FROM trades");
    assert!(e.contains("colour"), "{e}");
    let e = plan("SELECT count(*) FROM tumble('trades', 'ts', INTERVAL '1 minute')");
    assert!(e.contains("no column ts"), "{e}");
    let e = plan(
        "SELECT count(*) FROM hop('trades', 'ts_event', INTERVAL '7 seconds', INTERVAL '1 minute')",
    );
    assert!(e.contains("multiple of the slide"), "{e}");
    let e = plan("SELECT * FROM latest_quotes");
    assert!(e.contains("at least one stream"), "{e}");
    let e = plan("DROP TABLE trades");
    assert!(!e.is_empty());
    let snap = engine
        .query_blocking("SELECT nope FROM bars")
        .unwrap_err()
        .to_string();
    assert!(snap.contains("nope"), "{snap}");

    // A query that fails while running stops alone; the job and the other query go on.
    let (bad, _) = start(
        &engine,
        "bad",
        "SELECT CAST(symbol AS INT) AS n FROM trades",
    );
    let (good, out) = start(
        &engine,
        "good",
        "SELECT symbol, window_start, count(*) AS n FROM tumble('trades', 'ts_event', INTERVAL '1 minute') GROUP BY symbol, window_start",
    );
    let dir = tempfile::tempdir().unwrap();
    let summary = run_with(&pipeline, &engine, dir.path());
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    engine.wait();
    assert!(
        bad.stats.error.lock().unwrap().is_some(),
        "{}",
        bad.stats.summary("bad")
    );
    ok(&good);
    let counted: i64 = to_json(&out.batches())
        .iter()
        .map(|r| r["n"].as_i64().unwrap())
        .sum();
    assert_eq!(counted as u64, good.stats.rows_in.load(Ordering::Relaxed));
    assert!(counted > 0);
}

#[test]
fn a_stream_joined_with_current_state_sees_the_state_as_of_its_watermark() {
    let pipeline = Pipeline::parse(SYNTHETIC, "test.toml").unwrap();
    let engine = engine_for(&pipeline, Retention::default());
    let (q, out) = start(
        &engine,
        "bars_with_quotes",
        "SELECT b.symbol, b.\"end\" AS bar_end, q.ts_event AS quote_ts, q.bid, q.ask
         FROM bars b JOIN latest_quotes q ON b.instrument_id = q.instrument_id",
    );
    let dir = tempfile::tempdir().unwrap();
    let summary = run_with(&pipeline, &engine, dir.path());
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    engine.wait();
    ok(&q);
    let got = to_json(&out.batches());
    // Quote times per symbol from the file.
    let mut quotes: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for line in std::fs::read_to_string(dir.path().join("quotes.jsonl"))
        .unwrap()
        .lines()
    {
        let v: Value = serde_json::from_str(line).unwrap();
        let ts = parse_ts(v["ts_event"].as_str().unwrap());
        quotes
            .entry(v["instrument"].as_str().unwrap().to_string())
            .or_default()
            .push(ts);
    }
    let bars = std::fs::read_to_string(dir.path().join("bars.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(got.len(), bars, "every bar joined with a quote");
    for row in &got {
        let (bar_end, quote_ts) = (
            row["bar_end"].as_i64().unwrap(),
            row["quote_ts"].as_i64().unwrap(),
        );
        let list = &quotes[row["symbol"].as_str().unwrap()];
        // The quote current at the bar's end (the last before it) or a newer one, never one
        // the job had not yet reached.
        let as_of = list.iter().copied().filter(|&t| t < bar_end).max().unwrap();
        assert!(quote_ts >= as_of, "{row:?}: quote older than {as_of}");
        assert!(
            list.contains(&quote_ts),
            "{row:?}: not a quote of this symbol"
        );
    }
}

/// A JSON Lines time (RFC 3339) in nanoseconds.
fn parse_ts(s: &str) -> i64 {
    tickflow_core::Timestamp::parse_rfc3339(s)
        .unwrap_or_else(|e| panic!("time {s}: {e}"))
        .0
}
