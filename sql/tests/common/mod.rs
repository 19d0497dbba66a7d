//! Helpers of the SQL tests: the committed input rows, a feeder that plays them into the hub
//! in arrival order with watermarks, and result comparison.

#![allow(dead_code, reason = "each test binary uses part of the helpers")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Decimal128Builder, StringBuilder, TimestampNanosecondBuilder, UInt32Builder,
    UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Decimal128Type, Float64Type, Int64Type, TimestampNanosecondType, UInt32Type, UInt64Type,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use serde_json::Value;
use tickflow_core::{ArrowRecord, Quote, Trade};
use tickflow_sql::Hub;

pub const NS: i64 = 1_000_000_000;

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// One input row: which stream, when it arrives, and its batch of one row's values.
pub struct Row {
    pub stream: &'static str,
    pub arrival: i64,
    pub ts: i64,
    pub fields: Vec<String>,
}

fn read_csv(path: &Path, stream: &'static str) -> Vec<Row> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let ts_col = header
        .iter()
        .position(|h| *h == "ts_event")
        .expect("ts_event column");
    lines
        .map(|l| {
            let fields: Vec<String> = l.split(',').map(str::to_string).collect();
            Row {
                stream,
                arrival: fields[0].parse().expect("arrival"),
                ts: fields[ts_col].parse().expect("ts_event"),
                fields,
            }
        })
        .collect()
}

/// The committed trades and quotes, merged in arrival order.
pub fn input_rows() -> Vec<Row> {
    let mut rows = read_csv(&data_dir().join("trades.csv"), "trades");
    rows.extend(read_csv(&data_dir().join("quotes.csv"), "quotes"));
    rows.sort_by_key(|r| (r.arrival, r.stream));
    rows
}

fn dec(text: &str) -> i128 {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let neg = int.starts_with('-');
    let int: i128 = int.trim_start_matches('-').parse().expect("decimal");
    let mut f = frac.to_string();
    assert!(f.len() <= 9, "too many decimals in {text}");
    while f.len() < 9 {
        f.push('0');
    }
    let v = int * 1_000_000_000 + f.parse::<i128>().unwrap_or(0);
    if neg { -v } else { v }
}

fn dec_builder() -> Decimal128Builder {
    Decimal128Builder::new().with_data_type(DataType::Decimal128(38, 9))
}

fn ts_builder() -> TimestampNanosecondBuilder {
    TimestampNanosecondBuilder::new().with_timezone("UTC")
}

/// Rows of `trades.csv` (arrival,instrument_id,symbol,ts_event,price,size,aggressor,late) as
/// a batch of the trades schema.
pub fn trades_batch(rows: &[&Row]) -> RecordBatch {
    let (mut id, mut sym, mut ts, mut recv) = (
        UInt32Builder::new(),
        StringBuilder::new(),
        ts_builder(),
        ts_builder(),
    );
    let (mut price, mut size, mut aggr, mut tid, mut susp, mut seq) = (
        dec_builder(),
        dec_builder(),
        StringBuilder::new(),
        UInt64Builder::new(),
        BooleanBuilder::new(),
        UInt64Builder::new(),
    );
    for (n, r) in rows.iter().enumerate() {
        let f = &r.fields;
        id.append_value(f[1].parse().expect("instrument_id"));
        sym.append_value(&f[2]);
        ts.append_value(r.ts);
        recv.append_value(r.arrival);
        price.append_value(dec(&f[4]));
        size.append_value(dec(&f[5]));
        aggr.append_value(&f[6]);
        tid.append_null();
        susp.append_value(false);
        seq.append_value(n as u64);
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
    RecordBatch::try_new(Trade::schema(), cols).expect("trades batch")
}

/// Rows of `quotes.csv` (arrival,instrument_id,symbol,ts_event,bid,bid_size,ask,ask_size).
pub fn quotes_batch(rows: &[&Row]) -> RecordBatch {
    let (mut id, mut sym, mut ts, mut recv) = (
        UInt32Builder::new(),
        StringBuilder::new(),
        ts_builder(),
        ts_builder(),
    );
    let (mut bid, mut bsz, mut ask, mut asz) =
        (dec_builder(), dec_builder(), dec_builder(), dec_builder());
    let (mut upd, mut susp, mut seq) = (
        UInt64Builder::new(),
        BooleanBuilder::new(),
        UInt64Builder::new(),
    );
    for (n, r) in rows.iter().enumerate() {
        let f = &r.fields;
        id.append_value(f[1].parse().expect("instrument_id"));
        sym.append_value(&f[2]);
        ts.append_value(r.ts);
        recv.append_value(r.arrival);
        bid.append_value(dec(&f[4]));
        bsz.append_value(dec(&f[5]));
        ask.append_value(dec(&f[6]));
        asz.append_value(dec(&f[7]));
        upd.append_null();
        susp.append_value(false);
        seq.append_value(n as u64);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(sym.finish()),
        Arc::new(ts.finish()),
        Arc::new(recv.finish()),
        Arc::new(bid.finish()),
        Arc::new(bsz.finish()),
        Arc::new(ask.finish()),
        Arc::new(asz.finish()),
        Arc::new(upd.finish()),
        Arc::new(susp.finish()),
        Arc::new(seq.finish()),
    ];
    RecordBatch::try_new(Quote::schema(), cols).expect("quotes batch")
}

/// Declares `trades` and `quotes` in the hub.
pub fn declare(hub: &Hub) {
    hub.declare("trades", Trade::schema(), "ts_event")
        .expect("declare trades");
    hub.declare("quotes", Quote::schema(), "ts_event")
        .expect("declare quotes");
}

/// Plays the rows into the hub in arrival order, `chunk` rows at a time; after each chunk both
/// streams' watermarks move to the largest event time seen less `disorder` (the input's
/// bounded out-of-orderness). Ends both streams at the end.
pub fn play(hub: &Hub, rows: &[Row], chunk: usize, disorder: i64) {
    let mut max_ts = i64::MIN;
    for part in rows.chunks(chunk) {
        let trades: Vec<&Row> = part.iter().filter(|r| r.stream == "trades").collect();
        let quotes: Vec<&Row> = part.iter().filter(|r| r.stream == "quotes").collect();
        if !trades.is_empty() {
            hub.push("trades", trades_batch(&trades));
        }
        if !quotes.is_empty() {
            hub.push("quotes", quotes_batch(&quotes));
        }
        max_ts = part.iter().map(|r| r.ts).fold(max_ts, i64::max);
        hub.advance("trades", max_ts - disorder);
        hub.advance("quotes", max_ts - disorder);
    }
    hub.finish("trades");
    hub.finish("quotes");
}

/// Result rows as JSON objects: times as integer nanoseconds, decimals as floats.
pub fn to_json(batches: &[RecordBatch]) -> Vec<BTreeMap<String, Value>> {
    let mut out = Vec::new();
    for b in batches {
        let schema: SchemaRef = b.schema();
        for i in 0..b.num_rows() {
            let mut row = BTreeMap::new();
            for (c, field) in schema.fields().iter().enumerate() {
                let col = b.column(c);
                let v = if col.is_null(i) {
                    Value::Null
                } else {
                    match col.data_type() {
                        DataType::Utf8 => Value::from(col.as_string::<i32>().value(i)),
                        DataType::Utf8View => Value::from(col.as_string_view().value(i)),
                        DataType::Int64 => Value::from(col.as_primitive::<Int64Type>().value(i)),
                        DataType::UInt64 => Value::from(col.as_primitive::<UInt64Type>().value(i)),
                        DataType::UInt32 => Value::from(col.as_primitive::<UInt32Type>().value(i)),
                        DataType::Float64 => {
                            Value::from(col.as_primitive::<Float64Type>().value(i))
                        }
                        DataType::Boolean => Value::from(col.as_boolean().value(i)),
                        DataType::Decimal128(_, s) => {
                            let raw = col.as_primitive::<Decimal128Type>().value(i);
                            Value::from(raw as f64 / 10f64.powi(i32::from(*s)))
                        }
                        DataType::Timestamp(arrow_schema::TimeUnit::Nanosecond, _) => {
                            Value::from(col.as_primitive::<TimestampNanosecondType>().value(i))
                        }
                        other => panic!("column {} of type {other} in a result", field.name()),
                    }
                };
                row.insert(field.name().clone(), v);
            }
            out.push(row);
        }
    }
    out
}

/// Sort key: every string and integer value, in column-name order.
fn key(row: &BTreeMap<String, Value>) -> String {
    row.values()
        .filter(|v| v.is_string() || v.is_i64() || v.is_u64())
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("|")
}

/// Compares result rows with the expected ones (order ignored; numbers to 1e-9 relative).
pub fn assert_same_rows(
    what: &str,
    mut got: Vec<BTreeMap<String, Value>>,
    mut want: Vec<BTreeMap<String, Value>>,
) {
    got.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} rows, expected {}; first rows: got {:?}, expected {:?}",
        got.len(),
        want.len(),
        got.first(),
        want.first()
    );
    for (n, (g, w)) in got.iter().zip(&want).enumerate() {
        let gk: Vec<&String> = g.keys().collect();
        let wk: Vec<&String> = w.keys().collect();
        assert_eq!(gk, wk, "{what}: row {n} has other columns");
        for (col, wv) in w {
            let gv = &g[col];
            let same = match (gv.as_f64(), wv.as_f64()) {
                (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
                _ => gv == wv,
            };
            assert!(
                same,
                "{what}: row {n} column {col}: got {gv}, expected {wv}\n got  {g:?}\n want {w:?}"
            );
        }
    }
}

/// A case file of `tests/cases`: the tickflow query, whether it reads its streams without
/// windows, its allowed lateness and DuckDB's expected rows.
pub struct Case {
    pub query: String,
    pub plain: bool,
    pub lateness_ns: i64,
    pub expected: Vec<BTreeMap<String, Value>>,
}

/// Reads a case file.
pub fn parse(path: &Path) -> Case {
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
