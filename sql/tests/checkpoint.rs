//! Continuous queries in a live job's checkpoints: a query resumed from the state it checkpointed,
//! fed only what came after the checkpoint, writes the results the uninterrupted query writes
//! after it, and ends with the same counters.
//!
//! The committed trades and quotes are played as a live job's tap plays them: rows, then each
//! stream's checkpoint mark, then its watermark. The quotes reach each checkpoint one chunk
//! after the trades, so the query must hold the trades that come in between out of its state.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::RecordBatch;
use common::{
    NS, Row, assert_same_rows, declare, input_rows, parse, quotes_batch, to_json, trades_batch,
};
use tickflow_sql::fold::FOLD_ROWS;
use tickflow_sql::output::{Collect, QueryOutput};
use tickflow_sql::{Hub, QueryDef, QueryHooks, QueryStats, Retention, SqlEngine, SqlError};

/// Event time between checkpoints.
const EVERY: i64 = 60 * NS;

#[derive(Clone)]
enum Ev {
    Rows(&'static str, RecordBatch),
    Watermark(&'static str, i64),
    Mark(&'static str, i64),
    End(&'static str),
}

impl Ev {
    fn stream(&self) -> &'static str {
        match self {
            Ev::Rows(s, _) | Ev::Watermark(s, _) | Ev::Mark(s, _) | Ev::End(s) => s,
        }
    }
}

/// The rows in arrival order, `chunk` at a time, with watermarks `disorder` behind the largest
/// event time seen and a mark per stream at every checkpoint time its watermark passes.
fn events(rows: &[Row], chunk: usize, disorder: i64) -> Vec<Ev> {
    let mut out = Vec::new();
    let (mut max_ts, mut marked) = (i64::MIN, None::<i64>);
    let mut quotes_due: Vec<i64> = Vec::new();
    for part in rows.chunks(chunk) {
        let trades: Vec<&Row> = part.iter().filter(|r| r.stream == "trades").collect();
        let quotes: Vec<&Row> = part.iter().filter(|r| r.stream == "quotes").collect();
        if !trades.is_empty() {
            out.push(Ev::Rows("trades", trades_batch(&trades)));
        }
        if !quotes.is_empty() {
            out.push(Ev::Rows("quotes", quotes_batch(&quotes)));
        }
        out.extend(quotes_due.drain(..).map(|b| Ev::Mark("quotes", b)));
        max_ts = part.iter().map(|r| r.ts).fold(max_ts, i64::max);
        let w = max_ts - disorder;
        let b = w.div_euclid(EVERY) * EVERY;
        let mut quotes_w = w;
        match marked {
            Some(m) if b > m => {
                for t in (m / EVERY + 1..=b / EVERY).map(|k| k * EVERY) {
                    out.push(Ev::Mark("trades", t));
                    quotes_due.push(t);
                }
                // The quotes stay before the checkpoint until their mark.
                quotes_w = quotes_due[0] - 1;
                marked = Some(b);
            }
            None => marked = Some(b),
            _ => {}
        }
        out.push(Ev::Watermark("trades", w));
        out.push(Ev::Watermark("quotes", quotes_w));
    }
    out.push(Ev::End("trades"));
    out.push(Ev::End("quotes"));
    out
}

fn feed(hub: &Hub, events: &[Ev]) {
    for e in events {
        match e {
            Ev::Rows(s, b) => hub.push(s, b.clone()),
            Ev::Watermark(s, w) => hub.advance(s, *w),
            Ev::Mark(s, t) => hub.checkpoint(s, *t),
            Ev::End(s) => hub.finish(s),
        }
    }
}

/// The events after each stream's mark of checkpoint `at`.
fn after(events: &[Ev], at: i64) -> Vec<Ev> {
    let mut past = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for e in events {
        if past.contains(e.stream()) {
            out.push(e.clone());
        } else if let Ev::Mark(s, t) = e
            && *t == at
        {
            past.insert(*s);
        }
    }
    out
}

/// Results in memory, counted, with the checkpoints the output was told of and how many rows
/// it had written by then.
#[derive(Clone, Default)]
struct Counted {
    rows: Collect,
    count: u64,
    told: Arc<Mutex<Vec<(i64, u64)>>>,
}

impl QueryOutput for Counted {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SqlError> {
        self.count += batch.num_rows() as u64;
        self.rows.write(batch)
    }
    fn position(&self) -> Option<u64> {
        Some(self.count)
    }
    fn checkpoint(&mut self, at: i64) -> Result<(), SqlError> {
        self.told.lock().unwrap().push((at, self.count));
        Ok(())
    }
}

/// A checkpoint a query took: its time, the state, and the rows written by then.
type Checkpoint = (i64, Vec<u8>, u64);

/// The checkpoints a query took.
#[derive(Clone, Default)]
struct Taken(
    Arc<Mutex<Vec<Checkpoint>>>,
    Duration,
    Arc<Mutex<Option<std::time::Instant>>>,
);

impl QueryHooks for Taken {
    fn flush_every(&self) -> Duration {
        Duration::from_millis(10)
    }
    /// Checkpoint times at least the gap apart (in wall-clock time) after the last taken.
    fn begin(&mut self, _at: i64) -> bool {
        let last = self.2.lock().unwrap();
        last.is_none_or(|t: std::time::Instant| t.elapsed() >= self.1)
    }
    fn checkpoint(
        &mut self,
        at: i64,
        (state, _): tickflow_sql::checkpoint::Taken,
        position: Option<u64>,
        _: Option<Vec<u8>>,
    ) {
        let rows = position.expect("a counted output");
        self.0.lock().unwrap().push((at, state.unwrap(), rows));
        *self.2.lock().unwrap() = Some(std::time::Instant::now());
    }
    fn durable(&mut self, _t: i64) {}
}

struct Run {
    rows: Vec<RecordBatch>,
    stats: Arc<QueryStats>,
    taken: Vec<Checkpoint>,
    /// The checkpoints its output was told of, with the rows it had written then.
    told: Vec<(i64, u64)>,
}

/// Runs `def` over `events`, resumed from `state` when given.
fn run(def: &QueryDef, events: &[Ev], state: Option<&[u8]>) -> Run {
    run_with(def, events, state, Duration::ZERO)
}

/// [`run`], taking checkpoints at least `gap` apart.
fn run_with(def: &QueryDef, events: &[Ev], state: Option<&[u8]>, gap: Duration) -> Run {
    run_folding(def, events, state, gap, Some(FOLD_ROWS))
}

/// [`run_with`], folding the rows of open windows at `fold` rows a pane (`None`: never).
fn run_folding(
    def: &QueryDef,
    events: &[Ev],
    state: Option<&[u8]>,
    gap: Duration,
    fold: Option<usize>,
) -> Run {
    let engine = SqlEngine::new(Retention::default()).expect("engine");
    declare(engine.hub());
    let mut query = engine
        .handle()
        .block_on(engine.plan(def.clone()))
        .unwrap_or_else(|e| panic!("{}: {e}", def.name));
    query.fold_at(fold);
    if let Some(s) = state {
        query.restore(s).unwrap();
    }
    let (out, taken) = (
        Counted::default(),
        Taken(Arc::default(), gap, Arc::default()),
    );
    let started = engine
        .start_with(query, Box::new(out.clone()), Some(Box::new(taken.clone())))
        .unwrap();
    feed(engine.hub(), events);
    engine.wait();
    let error = started.stats.error.lock().unwrap().clone();
    assert!(error.is_none(), "{}: {error:?}", def.name);
    let taken = taken.0.lock().unwrap().clone();
    let told = out.told.lock().unwrap().clone();
    Run {
        rows: out.rows.batches(),
        stats: started.stats,
        taken,
        told,
    }
}

fn counters(s: &QueryStats) -> [u64; 4] {
    let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    [
        g(&s.rows_in),
        g(&s.rows_out),
        g(&s.windows),
        g(&s.late_rows),
    ]
}

/// The first `n` rows of `batches`.
fn first_rows(batches: &[RecordBatch], mut n: u64) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for b in batches {
        if n == 0 {
            break;
        }
        let k = (b.num_rows() as u64).min(n);
        out.push(b.slice(0, k as usize));
        n -= k;
    }
    out
}

/// The tickflow query of case file `name` and its allowed lateness.
fn case_query(name: &str) -> (String, i64) {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/cases/{name}.sql"));
    let case = parse(&path);
    (case.query, case.lateness_ns)
}

#[test]
fn a_query_resumed_from_its_checkpoint_writes_what_the_uninterrupted_query_writes_after_it() {
    let all = events(&input_rows(), 50, 2 * NS);
    let mut queries: Vec<QueryDef> = [
        "tumble_ohlcv",
        "hop_vwap",
        "session_bursts",
        "tumble_with_lateness",
        "window_join",
        "plain_filter",
    ]
    .iter()
    .map(|name| {
        let (sql, lateness_ns) = case_query(name);
        QueryDef {
            name: name.to_string(),
            sql,
            lateness_ns,
        }
    })
    .collect();
    // Current state: each trade with the instrument's latest quote as of the query's watermark.
    queries.push(QueryDef {
        name: "with_latest_quote".into(),
        sql: "SELECT t.symbol, t.ts_event, t.price FROM trades t \
              JOIN latest_quotes q ON t.instrument_id = q.instrument_id"
            .into(),
        lateness_ns: 0,
    });
    for def in &queries {
        let whole = run(def, &all, None);
        let n = whole.taken.len();
        assert!(n >= 5, "{}: only {n} checkpoints were taken", def.name);
        let whole_rows = to_json(&whole.rows);
        assert!(!whole_rows.is_empty(), "{}: no results", def.name);
        // The output hears of each checkpoint as the state is taken, before any later result:
        // a query stream sends those into the dataflow after the checkpoint time.
        assert_eq!(
            whole.told,
            whole
                .taken
                .iter()
                .map(|(at, _, rows)| (*at, *rows))
                .collect::<Vec<_>>(),
            "{}: checkpoints the output was told of",
            def.name
        );
        for (at, resumed) in resumes_like(def, &all, &whole, &[0, n / 2, n - 1], Some(FOLD_ROWS)) {
            // It goes on taking the same checkpoints.
            let later: Vec<i64> = whole
                .taken
                .iter()
                .map(|t| t.0)
                .filter(|t| *t > at)
                .collect();
            let again: Vec<i64> = resumed.taken.iter().map(|t| t.0).collect();
            assert_eq!(
                again, later,
                "{}: checkpoints after the resume from {at}",
                def.name
            );
        }
        // Without the state, a resumed windowed query misses the rows the checkpoint held.
        let windowed = ["tumble(", "hop(", "session("]
            .iter()
            .any(|f| def.sql.contains(f));
        if windowed {
            let (at, _, written) = whole.taken[n / 2].clone();
            let bare = run(def, &after(&all, at), None);
            let mut rows = to_json(&first_rows(&whole.rows, written));
            rows.extend(to_json(&bare.rows));
            assert_ne!(
                sorted(rows),
                sorted(whole_rows),
                "{}: resuming without the state gives the same results",
                def.name
            );
        }
    }
}

fn sorted(rows: Vec<std::collections::BTreeMap<String, serde_json::Value>>) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn a_state_of_another_query_or_damaged_bytes_are_refused() {
    let all = events(&input_rows(), 50, 2 * NS);
    let (sql, lateness_ns) = case_query("tumble_ohlcv");
    let def = QueryDef {
        name: "q".into(),
        sql,
        lateness_ns,
    };
    let whole = run(&def, &all, None);
    let state = &whole.taken[0].1;
    let engine = SqlEngine::new(Retention::default()).unwrap();
    declare(engine.hub());
    let other = QueryDef {
        lateness_ns: NS,
        ..def.clone()
    };
    let mut q = engine.handle().block_on(engine.plan(other)).unwrap();
    let e = q.restore(state).unwrap_err().to_string();
    assert!(e.contains("other SQL or another allowed lateness"), "{e}");
    let mut q = engine.handle().block_on(engine.plan(def)).unwrap();
    let e = q
        .restore(&state[..state.len() / 2])
        .unwrap_err()
        .to_string();
    assert!(e.contains("damaged"), "{e}");
}

#[test]
fn a_query_catching_up_leaves_out_checkpoints_that_come_too_soon_and_resumes_from_the_ones_it_took()
{
    let all = events(&input_rows(), 50, 2 * NS);
    let (sql, lateness_ns) = case_query("hop_vwap");
    let def = QueryDef {
        name: "q".into(),
        sql,
        lateness_ns,
    };
    let whole = run(&def, &all, None);
    // An hour between checkpoints: only the first is taken, the marks of the others pass.
    let sparse = run_with(&def, &all, None, Duration::from_secs(3600));
    assert_eq!(sparse.taken.len(), 1);
    assert_eq!(sparse.taken[0].0, whole.taken[0].0);
    assert_same_rows("sparse", to_json(&sparse.rows), to_json(&whole.rows));
    assert_eq!(counters(&sparse.stats), counters(&whole.stats));
    // A checkpoint taken after some were left out resumes like any other.
    let (at, state, written) = whole.taken[whole.taken.len() / 2].clone();
    let skipping = run_with(
        &def,
        &after(&all, at),
        Some(&state),
        Duration::from_secs(3600),
    );
    assert_eq!(skipping.taken.len(), 1);
    let mut rows = to_json(&first_rows(&whole.rows, written));
    rows.extend(to_json(&skipping.rows));
    assert_same_rows("resumed", rows, to_json(&whole.rows));
}

/// Resumes `def` from checkpoints `picks` of `whole`, folding at `fold`, and checks that each
/// resumed run writes what the whole run wrote after its checkpoint, with the same counters;
/// returns the resumed runs by checkpoint time.
fn resumes_like(
    def: &QueryDef,
    all: &[Ev],
    whole: &Run,
    picks: &[usize],
    fold: Option<usize>,
) -> Vec<(i64, Run)> {
    let whole_rows = to_json(&whole.rows);
    let mut out = Vec::new();
    for &i in picks {
        let (at, state, written) = whole.taken[i].clone();
        let what = format!("{} resumed from {at} folding at {fold:?}", def.name);
        let resumed = run_folding(def, &after(all, at), Some(&state), Duration::ZERO, fold);
        let mut rows = to_json(&first_rows(&whole.rows, written));
        rows.extend(to_json(&resumed.rows));
        assert_same_rows(&what, rows, whole_rows.clone());
        assert_eq!(
            counters(&resumed.stats),
            counters(&whole.stats),
            "{what}: rows in, rows out, windows, late rows"
        );
        out.push((at, resumed));
    }
    out
}

#[test]
fn a_query_folding_its_open_windows_checkpoints_their_aggregate_states_and_resumes_from_them() {
    let all = events(&input_rows(), 50, 2 * NS);
    for name in [
        "tumble_ohlcv",
        "hop_vwap",
        "session_bursts",
        "tumble_distinct_having",
        "tumble_with_lateness",
        "window_join",
    ] {
        let (sql, lateness_ns) = case_query(name);
        let def = QueryDef {
            name: name.into(),
            sql,
            lateness_ns,
        };
        let kept = run_folding(&def, &all, None, Duration::ZERO, None);
        let folding = run_folding(&def, &all, None, Duration::ZERO, Some(5));
        assert!(
            folding.stats.folded_rows.load(Ordering::Relaxed) > 0,
            "{name}: nothing folded"
        );
        assert_same_rows(name, to_json(&folding.rows), to_json(&kept.rows));
        let n = folding.taken.len();
        assert!(n >= 5, "{name}: only {n} checkpoints were taken");
        // From states of folded rows, and from a checkpoint that kept the rows.
        resumes_like(&def, &all, &folding, &[1, n / 2, n - 1], Some(5));
        resumes_like(&def, &all, &kept, &[n / 2], Some(5));
        // A query keeping the rows refuses states it cannot read.
        let engine = SqlEngine::new(Retention::default()).unwrap();
        declare(engine.hub());
        let mut q = engine.handle().block_on(engine.plan(def.clone())).unwrap();
        q.fold_at(None);
        let refused = folding
            .taken
            .iter()
            .filter(|(_, state, _)| q.restore(state).is_err())
            .count();
        assert!(refused > 0, "{name}: every checkpoint read without folding");
    }
}

#[test]
fn a_long_window_folding_its_rows_checkpoints_a_state_of_constant_size() {
    let all = events(&input_rows(), 50, 2 * NS);
    // One window for the whole half hour of trades.
    let def = QueryDef {
        name: "day".into(),
        sql: "SELECT symbol, window_start, count(*) AS n, sum(size) AS volume, \
              first_value(price ORDER BY ts_event) AS open, \
              last_value(price ORDER BY ts_event) AS close \
              FROM tumble('trades', 'ts_event', INTERVAL '1 day') GROUP BY symbol, window_start"
            .into(),
        lateness_ns: 0,
    };
    let kept = run_folding(&def, &all, None, Duration::ZERO, None);
    let folding = run_folding(&def, &all, None, Duration::ZERO, Some(64));
    assert_same_rows("day", to_json(&folding.rows), to_json(&kept.rows));
    let sizes = |r: &Run| r.taken.iter().map(|t| t.1.len()).collect::<Vec<_>>();
    let (kept, folded) = (sizes(&kept), sizes(&folding));
    assert!(kept.len() >= 20, "{kept:?}");
    // Keeping rows, the state grows with the window; folding, it stays within a pane's rows
    // and a state per symbol.
    assert!(kept[kept.len() - 1] > 10 * kept[0], "{kept:?}");
    let (early, late) = folded.split_at(folded.len() / 2);
    let most = |v: &[usize]| v.iter().copied().max().unwrap_or(0);
    assert!(most(late) * 2 <= most(early) * 3, "{folded:?}");
    assert!(
        folded[folded.len() - 1] * 10 < kept[kept.len() - 1],
        "{folded:?} {kept:?}"
    );
}
