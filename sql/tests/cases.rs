//! Data-driven continuous-query tests: each `tests/cases/*.sql` file holds a tickflow query, the
//! DuckDB query that computes the same answer in one batch over the same rows, and DuckDB's
//! expected rows (written by `tests/make_cases.py`). The rows are played in arrival order,
//! out of event-time order by up to 2 s, with watermarks; twelve trades arrive ten minutes late.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{NS, assert_same_rows, declare, input_rows, play, to_json};
use serde_json::Value;
use tickflow_sql::output::Collect;
use tickflow_sql::{QueryDef, Retention, SqlEngine};

/// Trades flagged late in trades.csv.
const LATE_TRADES: u64 = 12;

struct Case {
    query: String,
    plain: bool,
    lateness_ns: i64,
    expected: Vec<BTreeMap<String, Value>>,
}

fn parse(path: &Path) -> Case {
    let text = std::fs::read_to_string(path).expect("case file");
    let mut section = "";
    let (mut query, mut expected) = (String::new(), Vec::new());
    let (mut plain, mut lateness_ns) = (false, 0);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("-- ") {
            let name = rest.split([':', ' ']).next().unwrap_or("");
            match name {
                "tickflow" | "duckdb" | "expected" => {
                    section = if name == "tickflow" {
                        "q"
                    } else if name == "expected" {
                        "e"
                    } else {
                        ""
                    };
                    continue;
                }
                "mode" => plain = rest.contains("plain"),
                "lateness" => {
                    let v = rest.split(':').nth(1).expect("lateness value").trim();
                    lateness_ns = v.trim_end_matches('s').parse::<i64>().expect("seconds") * NS;
                }
                _ => {}
            }
            continue;
        }
        match section {
            "q" => {
                query.push_str(line);
                query.push('\n');
            }
            "e" if !line.trim().is_empty() => {
                expected.push(serde_json::from_str(line).expect("expected row"))
            }
            _ => {}
        }
    }
    Case {
        query,
        plain,
        lateness_ns,
        expected,
    }
}

#[test]
fn continuous_queries_match_duckdb() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("cases dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 7, "case files missing in {}", dir.display());
    let rows = input_rows();
    for path in cases {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let case = parse(&path);
        assert!(!case.expected.is_empty(), "{name}: no expected rows");
        let engine = SqlEngine::new(Retention::default()).expect("engine");
        declare(engine.hub());
        let out = Collect::default();
        let def = QueryDef {
            name: name.clone(),
            sql: case.query.clone(),
            lateness_ns: case.lateness_ns,
        };
        let started = engine
            .start_blocking(def, Box::new(out.clone()))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        play(engine.hub(), &rows, 50, 2 * NS);
        engine.wait();
        let stats = &started.stats;
        assert!(
            stats.error.lock().unwrap().is_none(),
            "{name}: {}",
            stats.summary(&name)
        );
        let late = stats.late_rows.load(std::sync::atomic::Ordering::Relaxed);
        let expected_late = if case.plain { 0 } else { LATE_TRADES };
        assert_eq!(
            late,
            expected_late,
            "{name}: late rows; {}",
            stats.summary(&name)
        );
        assert_same_rows(&name, to_json(&out.batches()), case.expected);
        eprintln!("{}", stats.summary(&name));
    }
}
