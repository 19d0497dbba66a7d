//! Data-driven continuous-query tests: each `tests/cases/*.sql` file holds a tickflow query, the
//! DuckDB query that computes the same answer in one batch over the same rows, and DuckDB's
//! expected rows (written by `tests/make_cases.py`). The rows are played in arrival order,
//! out of event-time order by up to 2 s, with watermarks; twelve trades arrive ten minutes late.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;

use common::{NS, assert_same_rows, declare, input_rows, parse, play, to_json};
use tickflow_sql::output::Collect;
use tickflow_sql::{QueryDef, Retention, SqlEngine};

/// Trades flagged late in trades.csv.
const LATE_TRADES: u64 = 12;

/// The cases whose open windows are folded into aggregate states (each window feed going
/// into an aggregation of its own).
const FOLDING: [&str; 7] = [
    "hop_vwap",
    "session_bursts",
    "tumble_distinct_having",
    "tumble_filtered_stats",
    "tumble_ohlcv",
    "tumble_with_lateness",
    "window_join",
];

/// Each case runs keeping the rows of its open windows, with the default folding, and folding
/// every 5 rows of a pane (often, so that states are folded, merged and read many times):
/// each must give DuckDB's rows.
#[test]
fn continuous_queries_match_duckdb() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("cases dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 8, "case files missing in {}", dir.display());
    let rows = input_rows();
    for path in cases {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let case = parse(&path);
        assert!(!case.expected.is_empty(), "{name}: no expected rows");
        let folds = FOLDING.contains(&name.as_str());
        for fold in [None, Some(tickflow_sql::fold::FOLD_ROWS), Some(5)] {
            let run = format!("{name} (fold at {fold:?})");
            let engine = SqlEngine::new(Retention::default()).expect("engine");
            declare(engine.hub());
            let out = Collect::default();
            let def = QueryDef {
                name: name.clone(),
                sql: case.query.clone(),
                lateness_ns: case.lateness_ns,
            };
            let mut query = engine
                .handle()
                .block_on(engine.plan(def))
                .unwrap_or_else(|e| panic!("{run}: {e}"));
            let folding = query.folding();
            assert_eq!(
                !folding.is_empty() && folding.iter().all(|f| *f),
                folds,
                "{run}: whether the query folds ({folding:?})"
            );
            query.fold_at(fold);
            let started = engine
                .start(query, Box::new(out.clone()))
                .unwrap_or_else(|e| panic!("{run}: {e}"));
            play(engine.hub(), &rows, 50, 2 * NS);
            engine.wait();
            let stats = &started.stats;
            assert!(
                stats.error.lock().unwrap().is_none(),
                "{run}: {}",
                stats.summary(&name)
            );
            let late = stats.late_rows.load(Ordering::Relaxed);
            let expected_late = if case.plain { 0 } else { LATE_TRADES };
            assert_eq!(
                late,
                expected_late,
                "{run}: late rows; {}",
                stats.summary(&name)
            );
            let folded = stats.folded_rows.load(Ordering::Relaxed);
            assert_eq!(
                folded > 0,
                folds && fold == Some(5),
                "{run}: rows folded; {}",
                stats.summary(&name)
            );
            assert_same_rows(&run, to_json(&out.batches()), case.expected.clone());
            eprintln!("{run}: {}", stats.summary(&name));
        }
    }
}
