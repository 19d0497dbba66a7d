//! The Flight SQL endpoint of a job: queried by tickflow's own client and by the ADBC Flight
//! SQL driver, a third-party client.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_same_rows, to_json};
use serde_json::Value;
use tickflow_pipelines::{Pipeline, RunOptions, run, stream_schemas};
use tickflow_sql::flight::{self, Client};
use tickflow_sql::output::Collect;
use tickflow_sql::{QueryDef, Retention, SqlEngine, SqlError};

const SYNTHETIC: &str = r#"
[pipeline]
name = "sql-flight"

[[source]]
kind = "synthetic"
instruments = 4
duration = "15m"

[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "1m"
"#;

fn setup() -> (Pipeline, Arc<SqlEngine>, SocketAddr) {
    let pipeline = Pipeline::parse(SYNTHETIC, "test.toml").unwrap();
    let engine = Arc::new(SqlEngine::new(Retention::default()).unwrap());
    for s in stream_schemas(&pipeline) {
        engine
            .hub()
            .declare(&s.name, s.schema, s.time_column)
            .unwrap();
    }
    let addr = flight::spawn(engine.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    (pipeline, engine, addr)
}

fn run_job(pipeline: &Pipeline, engine: &Arc<SqlEngine>, out: &Path) {
    let opts = RunOptions {
        output_dir: out.to_path_buf(),
        tap: Some(engine.hub().clone()),
        ..RunOptions::default()
    };
    let summary = run(pipeline, &opts).unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
}

const BARS_BY_SYMBOL: &str = "SELECT symbol, count(*) AS bars, CAST(sum(volume) AS DOUBLE) AS volume, \
     CAST(max(high) AS DOUBLE) AS high FROM bars GROUP BY symbol ORDER BY symbol";

#[test]
fn snapshot_queries_over_flight_sql_answer_like_the_engine() {
    let (pipeline, engine, addr) = setup();
    let dir = tempfile::tempdir().unwrap();
    run_job(&pipeline, &engine, dir.path());
    let (_, local) = engine.query_blocking(BARS_BY_SYMBOL).unwrap();
    let local = to_json(&local);
    assert_eq!(local.len(), 4);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ask = |sql: &str| {
        rt.block_on(async {
            let mut c = Client::connect(&addr.to_string()).await?;
            c.query(sql).await
        })
    };
    let (_, remote) = ask(BARS_BY_SYMBOL).unwrap();
    assert_same_rows("flight", to_json(&remote), local.clone());

    // Errors come back with what is wrong.
    match ask("SELECT symbol FORM bars") {
        Err(SqlError::Plan(m)) => assert!(m.contains("bars at Line: 1, Column: 20"), "{m}"),
        other => panic!("expected a plan error, got {other:?}"),
    }
    let err = ask("SELECT * FROM nowhere");
    assert!(
        matches!(&err, Err(SqlError::Plan(m)) if m.contains("nowhere")),
        "{err:?}"
    );
    // A query that fails on the data is the query's fault, not the server's.
    let err = ask("SELECT CAST(symbol AS INT) FROM bars");
    assert!(
        matches!(&err, Err(SqlError::Query(m)) if m.contains("Cannot cast string")),
        "{err:?}"
    );

    // A third-party client: the ADBC Flight SQL driver.
    let Some(python) = std::env::var_os("TICKFLOW_PYTHON").filter(|v| !v.is_empty()) else {
        eprintln!("SKIPPED (ADBC part): set TICKFLOW_PYTHON (scripts/test.sh does)");
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/adbc_query.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(addr.to_string())
        .arg(BARS_BY_SYMBOL)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "adbc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let adbc: Vec<BTreeMap<String, Value>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_same_rows("adbc", adbc, local);
}

#[test]
fn a_continuous_query_over_flight_streams_each_window_as_it_closes() {
    let (pipeline, engine, addr) = setup();
    let sql = "SELECT symbol, window_start, count(*) AS n, CAST(sum(size) AS DOUBLE) AS volume \
               FROM tumble('trades', 'ts_event', INTERVAL '1 minute') GROUP BY symbol, window_start";
    // The same query run in the engine, for comparison.
    let local = Collect::default();
    engine
        .start_blocking(
            QueryDef {
                name: "local".into(),
                sql: sql.into(),
                lateness_ns: 0,
            },
            Box::new(local.clone()),
        )
        .unwrap();
    let client = std::thread::spawn({
        let statement = format!("CONTINUOUS {sql}");
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut c = Client::connect(&addr.to_string()).await?;
                let mut got = Vec::new();
                c.run(&statement, |b| {
                    got.push(b.clone());
                    true
                })
                .await?;
                Ok::<_, SqlError>(got)
            })
        }
    });
    // Wait until the remote query is subscribed, then run the job.
    let t0 = Instant::now();
    while engine.queries().len() < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the remote query never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = tempfile::tempdir().unwrap();
    run_job(&pipeline, &engine, dir.path());
    let remote = client.join().unwrap().unwrap();
    engine.wait();
    let want = to_json(&local.batches());
    assert_eq!(want.len(), 4 * 15, "one row per symbol and minute");
    assert_same_rows("continuous over flight", to_json(&remote), want);
}
