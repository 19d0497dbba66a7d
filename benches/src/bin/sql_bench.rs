//! SQL over live streams, three measurements in one run:
//!
//! 1. **Continuous 1-minute OHLCV over 1,000,000 trades** (8 symbols, one trading day,
//!    generated and seeded): the trades stream into the hub in batches of 8,192 with a
//!    watermark after each, and a `tumble` query emits each minute as it closes. Beside it,
//!    DuckDB's batch query over the same rows (written to Parquet, loaded into a DuckDB table
//!    first; the query alone is timed). The ratio is streaming time over batch time.
//! 2. **Long windows, their rows kept or folded into aggregate states**: the same OHLCV over
//!    1-minute, 1-hour and 1-day tumbling and 1-hour hopping (every 5 minutes) windows, each
//!    run keeping the open windows' rows and folding them (the default): time, and the most
//!    rows and aggregate states the open windows held at once.
//! 3. **Snapshot query latency over Arrow Flight SQL** while a synthetic pipeline runs paced at
//!    500,000 records/s with every stream tapped: a client asks three kinds of snapshot query
//!    back to back and records each round trip.
//!
//! `cargo run --release -p tickflow-benches --bin sql_bench [-- --trades N --runs R --python PY
//! --seconds S --rate R]`

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use arrow_array::builder::{
    BooleanBuilder, Decimal128Builder, StringBuilder, TimestampNanosecondBuilder, UInt32Builder,
    UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::DataType;
use tickflow_benches::{best_of, machine};
use tickflow_core::{ArrowRecord, Trade};
use tickflow_pipelines::{Pipeline, RunOptions, run, stream_schemas};
use tickflow_sql::fold::FOLD_ROWS;
use tickflow_sql::output::{Collect, Parquet, QueryOutput};
use tickflow_sql::{QueryDef, Retention, SqlEngine, flight};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 8192;
const NS: i64 = 1_000_000_000;
const SYMBOLS: usize = 8;

const OHLCV: &str = "SELECT symbol, window_start, count(*) AS trades,
       first_value(price ORDER BY ts_event, seq) AS open, max(price) AS high, min(price) AS low,
       last_value(price ORDER BY ts_event, seq) AS close, sum(size) AS volume
FROM tumble('trades', 'ts_event', INTERVAL '1 minute')
GROUP BY symbol, window_start";

const DUCKDB: &str = r#"
import sys, time, duckdb
con = duckdb.connect()
t0 = time.perf_counter()
con.execute(f"CREATE TABLE trades AS SELECT * FROM read_parquet('{sys.argv[1]}')")
load = time.perf_counter() - t0
q = """SELECT symbol, epoch_ns(ts_event) // 60000000000 AS minute, count(*) AS trades,
       first(price ORDER BY ts_event, seq) AS open, max(price) AS high, min(price) AS low,
       last(price ORDER BY ts_event, seq) AS close, sum(size) AS volume
FROM trades GROUP BY ALL"""
best, rows = float("inf"), 0
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    rows = len(con.execute(q).fetchall())
    best = min(best, time.perf_counter() - t0)
print(f"{best} {load} {rows} {duckdb.__version__}")
"#;

/// `n` trades of 8 symbols over one 6.5-hour session, in event-time order, as batches.
fn trades(n: usize) -> Vec<RecordBatch> {
    let start = 1_704_205_800 * NS; // 2024-01-02 14:30 UTC
    let span = 23_400 * NS;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut prices = [100_000_000_000i128; SYMBOLS]; // 100.00 with 9 decimals
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let m = BATCH.min(n - i);
        let (mut id, mut sym, mut ts, mut recv) = (
            UInt32Builder::new(),
            StringBuilder::new(),
            TimestampNanosecondBuilder::new().with_timezone("UTC"),
            TimestampNanosecondBuilder::new().with_timezone("UTC"),
        );
        let dec = || Decimal128Builder::new().with_data_type(DataType::Decimal128(38, 9));
        let (mut price, mut size, mut aggr, mut tid, mut susp, mut seq) = (
            dec(),
            dec(),
            StringBuilder::new(),
            UInt64Builder::new(),
            BooleanBuilder::new(),
            UInt64Builder::new(),
        );
        for k in i..i + m {
            let s = (next() % SYMBOLS as u64) as usize;
            let t = start + (span as i128 * k as i128 / n as i128) as i64;
            let step = (next() % 5) as i128 - 2;
            prices[s] = (prices[s] + step * 10_000_000).max(1_000_000_000);
            id.append_value(s as u32 + 1);
            sym.append_value(format!("SYM{s}"));
            ts.append_value(t);
            recv.append_value(t);
            price.append_value(prices[s]);
            size.append_value(((next() % 10 + 1) * 100) as i128 * 1_000_000_000);
            aggr.append_value(if next() % 2 == 0 { "buy" } else { "sell" });
            tid.append_value(k as u64);
            susp.append_value(false);
            seq.append_value(k as u64);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(sym.finish()),
            Arc::new(ts.finish()),
            Arc::new(recv.finish()),
            Arc::new(price.finish()),
            Arc::new(size.finish()),
            Arc::new(aggr.finish()),
            Arc::new(tid.finish()),
            Arc::new(susp.finish()),
            Arc::new(seq.finish()),
        ];
        out.push(RecordBatch::try_new(Trade::schema(), cols).expect("trades batch"));
        i += m;
    }
    out
}

/// Streams the batches through a continuous OHLCV query; returns (seconds, result rows).
fn continuous(batches: &[RecordBatch]) -> Result<(f64, usize)> {
    let (secs, rows, _) = continuous_query(batches, OHLCV, Some(FOLD_ROWS))?;
    Ok((secs, rows.len()))
}

/// Each row of `batches` as text, sorted.
fn row_texts(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(move |i| {
                b.columns()
                    .iter()
                    .map(|c| format!("{:?}", c.slice(i, 1)))
                    .collect::<Vec<_>>()
                    .join("|")
            })
        })
        .collect();
    rows.sort();
    rows
}

/// Streams the batches through continuous query `sql`, folding its open windows at `fold`
/// rows a pane (`None`: keeping their rows); returns (seconds, the result rows as text, the most rows and
/// aggregate states its open windows held at once).
fn continuous_query(
    batches: &[RecordBatch],
    sql: &str,
    fold: Option<usize>,
) -> Result<(f64, Vec<String>, u64)> {
    let engine = SqlEngine::new(Retention {
        span_ns: 60 * NS,
        max_rows: 100_000,
    })?;
    engine
        .hub()
        .declare("trades", Trade::schema(), "ts_event")?;
    let out = Collect::default();
    let t0 = Instant::now();
    let mut query = engine.handle().block_on(engine.plan(QueryDef {
        name: "ohlcv".into(),
        sql: sql.into(),
        lateness_ns: 0,
    }))?;
    query.fold_at(fold);
    let q = engine.start(query, Box::new(out.clone()))?;
    for b in batches {
        let last = b
            .column(2)
            .as_any()
            .downcast_ref::<arrow_array::TimestampNanosecondArray>()
            .map(|t| t.value(t.len() - 1))
            .unwrap_or(0);
        engine.hub().push("trades", b.clone());
        engine.hub().advance("trades", last);
    }
    engine.hub().finish("trades");
    engine.wait();
    let secs = t0.elapsed().as_secs_f64();
    if let Some(e) = q
        .stats
        .error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        bail!("the continuous query failed: {e}");
    }
    Ok((
        secs,
        row_texts(&out.batches()),
        q.stats.peak_open.load(Ordering::Relaxed),
    ))
}

/// Long windows over the same trades, keeping their rows and folding them into aggregate
/// states, side by side.
fn long_windows(batches: &[RecordBatch], runs: usize) -> Result<()> {
    let n: usize = batches.iter().map(|b| b.num_rows()).sum();
    println!(
        "\n| open windows over {n} trades | query | seconds (best of {runs}) | trades/s | most rows + states held | results |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for (what, window) in [
        (
            "1-minute tumbling",
            "tumble('trades', 'ts_event', INTERVAL '1 minute')",
        ),
        (
            "1-hour tumbling",
            "tumble('trades', 'ts_event', INTERVAL '1 hour')",
        ),
        (
            "1-day tumbling",
            "tumble('trades', 'ts_event', INTERVAL '1 day')",
        ),
        (
            "1-hour hopping every 5 minutes",
            "hop('trades', 'ts_event', INTERVAL '5 minutes', INTERVAL '1 hour')",
        ),
    ] {
        let sql = OHLCV.replace("tumble('trades', 'ts_event', INTERVAL '1 minute')", window);
        let mut kept_rows: Option<Vec<String>> = None;
        for (mode, fold) in [
            ("rows kept", None),
            ("folded every 4,096 rows of a pane", Some(FOLD_ROWS)),
        ] {
            let (secs, last) = best_of(runs, || continuous_query(batches, &sql, fold));
            let (_, rows, peak) = last?;
            let count = rows.len();
            if *kept_rows.get_or_insert_with(|| rows.clone()) != rows {
                bail!("{what}: the results folding differ from those keeping the rows");
            }
            println!(
                "| {what} | {mode} | {secs:.3} | {:.0} | {peak} | {count} |",
                n as f64 / secs
            );
        }
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Snapshot latency over Flight SQL while a paced pipeline runs.
fn snapshot_latency(rate: u64, seconds: u64) -> Result<()> {
    let text = format!(
        r#"
[pipeline]
name = "sql-load"
granularity = "1ms"

[[source]]
kind = "synthetic"
instruments = 8
duration = "{seconds}s"
events_per_second = {rate}

[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "1s"
"#
    );
    let pipeline = Pipeline::parse(&text, "bench.toml").map_err(|e| anyhow::anyhow!("{e}"))?;
    let engine = Arc::new(SqlEngine::new(Retention {
        span_ns: 60 * NS,
        max_rows: 1_000_000,
    })?);
    for s in stream_schemas(&pipeline) {
        engine.hub().declare(&s.name, s.schema, s.time_column)?;
    }
    let addr = flight::spawn(engine.clone(), "127.0.0.1:0".parse()?)?;
    let queries = [
        (
            "latest quotes",
            "SELECT symbol, bid, ask, ts_event FROM latest_quotes",
        ),
        (
            "last 10 bars",
            "SELECT symbol, \"end\", close, volume FROM bars ORDER BY \"end\" DESC LIMIT 10",
        ),
        (
            "per-symbol aggregate over retained trades",
            "SELECT symbol, count(*) AS n, avg(CAST(price AS DOUBLE)) AS avg_price FROM trades GROUP BY symbol",
        ),
    ];
    let done = Arc::new(AtomicBool::new(false));
    let client = std::thread::spawn({
        let done = done.clone();
        move || -> Result<Vec<Vec<f64>>> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut c = flight::Client::connect(&addr.to_string()).await?;
                let mut lat = vec![Vec::new(); queries.len()];
                while !done.load(Ordering::Relaxed) {
                    for (i, (_, q)) in queries.iter().enumerate() {
                        let t0 = Instant::now();
                        c.query(q).await?;
                        lat[i].push(t0.elapsed().as_secs_f64() * 1e3);
                    }
                }
                Ok(lat)
            })
        }
    });
    let opts = RunOptions {
        output_dir: std::env::temp_dir().join("tickflow-sql-bench"),
        speed: Some(1.0),
        tap: Some(engine.hub().clone()),
        ..RunOptions::default()
    };
    // Let the client connect before the load starts.
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    let summary = run(&pipeline, &opts)?;
    let wall = t0.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let lat = client
        .join()
        .map_err(|_| anyhow::anyhow!("the client thread panicked"))??;
    println!(
        "\npipeline: {} records in {wall:.2} s wall = {:.0} records/s (target {rate}/s, paced at 1x; every stream tapped)",
        summary.read,
        summary.read as f64 / wall
    );
    println!("\n| snapshot query over Flight SQL | queries | p50 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (i, (name, _)) in queries.iter().enumerate() {
        let mut v = lat[i].clone();
        v.sort_by(f64::total_cmp);
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} |",
            v.len(),
            percentile(&v, 0.5),
            percentile(&v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let n: usize = arg("--trades").map_or(Ok(1_000_000), |v| v.parse())?;
    let runs: usize = arg("--runs").map_or(Ok(3), |v| v.parse())?;
    let rate: u64 = arg("--rate").map_or(Ok(500_000), |v| v.parse())?;
    let seconds: u64 = arg("--seconds").map_or(Ok(20), |v| v.parse())?;
    let python = arg("--python")
        .or_else(|| std::env::var("TICKFLOW_PYTHON").ok())
        .unwrap_or_else(|| "python3".into());
    println!("machine: {}", machine());

    let batches = trades(n);
    let (secs, last) = best_of(runs, || continuous(&batches));
    let (_, rows) = last?;
    let dir = tempfile_dir()?;
    let parquet = dir.join("trades.parquet");
    {
        let mut w = Parquet::create(&dir, "trades", Trade::schema())?;
        for b in &batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    let out = Command::new(&python)
        .arg("-c")
        .arg(DUCKDB)
        .arg(&parquet)
        .arg(runs.to_string())
        .output()
        .with_context(|| {
            format!("running {python} (needs duckdb; scripts/test.sh makes a venv)")
        })?;
    if !out.status.success() {
        bail!("duckdb: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    let (duck, load, duck_rows, version) = (
        f[0].parse::<f64>()?,
        f[1].parse::<f64>()?,
        f[2].parse::<usize>()?,
        f[3],
    );
    if duck_rows != rows {
        bail!("tickflow emitted {rows} rows, DuckDB {duck_rows}");
    }
    println!("\n| 1-minute OHLCV over {n} trades | seconds (best of {runs}) | trades/s | ratio |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| tickflow continuous query (streamed in batches of {BATCH}, windows closed by the watermark) | {secs:.3} | {:.0} | {:.2} |",
        n as f64 / secs,
        secs / duck
    );
    println!(
        "| DuckDB {version} batch query over the same rows in a table (load from Parquet {load:.3} s not counted) | {duck:.3} | {:.0} | 1.00 |",
        n as f64 / duck
    );
    println!("({rows} result rows each)");
    std::fs::remove_dir_all(&dir).ok();

    long_windows(&batches, runs)?;

    snapshot_latency(rate, seconds)
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("tickflow-sql-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
