//! Query results as a stream of the dataflow (`[[query]]` with `sink = "stream"`).
//!
//! The SQL layer runs the query beside the dataflow and sends its result batches, and the
//! watermark it has reached, through a [`QueryFeeds`] channel. Worker 0 turns each result row
//! into an [`IndicatorRow`] — keyed by `instrument_id`, at the row's event-time column, with
//! every numeric (or boolean) column as a value — and feeds it into the dataflow, where signal
//! rules, predict operators, sinks and later queries read the stream like any other row stream.
//!
//! Progress: the stream's capability follows the query's watermark. A result row goes out at
//! its own event time, or at that watermark when the row's window closed before it (a window
//! closes only once the watermark has passed its end), so nothing is ever dropped for being
//! late. The channel is unbounded: the query never waits for the dataflow, so back-pressure
//! from the dataflow to the query (through the stream hub) cannot close into a cycle.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use arrow_array::{Array, RecordBatch, TimestampNanosecondArray, UInt32Array};
use arrow_schema::{DataType, Schema, TimeUnit};
use tickflow_core::{IndicatorRow, InstrumentId, Timestamp};

/// What the SQL layer sends for a query whose results are a stream.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    /// Result rows.
    Rows(RecordBatch),
    /// The query has seen every input row up to this event time.
    Watermark(i64),
    /// The query has ended; no more rows.
    End,
}

/// The channels from the SQL layer to a run, one per query stream. Cloning shares them.
#[derive(Clone, Default)]
pub struct QueryFeeds(Arc<Mutex<BTreeMap<String, Receiver<FeedEvent>>>>);

impl std::fmt::Debug for QueryFeeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("QueryFeeds")
            .field(&self.lock().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl QueryFeeds {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Receiver<FeedEvent>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens the feed of query stream `name`; the SQL layer sends the results to the sender.
    pub fn open(&self, name: &str) -> Sender<FeedEvent> {
        let (tx, rx) = channel();
        self.lock().insert(name.to_string(), rx);
        tx
    }

    /// The names of the open feeds.
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Takes the receivers (once, by the worker that feeds the dataflow).
    pub(crate) fn take(&self) -> BTreeMap<String, Receiver<FeedEvent>> {
        std::mem::take(&mut *self.lock())
    }
}

/// Columns a query stream picks its event time from, in order, when `time` is not set.
pub const TIME_COLUMNS: [&str; 3] = ["window_end", "end", "ts_event"];

/// The key column of a query stream's results.
pub const KEY: &str = "instrument_id";

/// How a query's results become rows of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct RowColumns {
    /// The event-time column.
    pub time: String,
    /// The value columns, in result order.
    pub values: Vec<String>,
}

fn is_ns_timestamp(t: &DataType) -> bool {
    matches!(t, DataType::Timestamp(TimeUnit::Nanosecond, _))
}

/// Checks that results of `schema` can be a stream and says which columns go where: a
/// `UInt32` `instrument_id`, a nanosecond timestamp event-time column (`time`, or the first
/// of [`TIME_COLUMNS`]), and numeric or boolean values. A `symbol` text column and other
/// timestamps are left out; any other column is refused, by name.
pub fn row_columns(query: &str, schema: &Schema, time: Option<&str>) -> Result<RowColumns, String> {
    let columns = || {
        schema
            .fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match schema.field_with_name(KEY) {
        Ok(f) if f.data_type() == &DataType::UInt32 => {}
        Ok(f) => {
            return Err(format!(
                "query {query}: the `{KEY}` column of a query stream must be UInt32 (the stream \
                 tables' own), not {}",
                f.data_type()
            ));
        }
        Err(_) => {
            return Err(format!(
                "query {query}: a query stream needs an `{KEY}` column to key its rows by \
                 (its columns: {})",
                columns()
            ));
        }
    }
    let time = match time {
        Some(t) => t.to_string(),
        None => TIME_COLUMNS
            .iter()
            .find(|c| schema.field_with_name(c).is_ok())
            .map(|c| c.to_string())
            .ok_or_else(|| {
                format!(
                    "query {query}: name the event-time column of its stream with `time = ...` \
                     (none of {} is among its columns: {})",
                    TIME_COLUMNS.join(", "),
                    columns()
                )
            })?,
    };
    match schema.field_with_name(&time) {
        Ok(f) if is_ns_timestamp(f.data_type()) => {}
        Ok(f) => {
            return Err(format!(
                "query {query}: the event-time column `{time}` must be a nanosecond timestamp, \
                 not {}",
                f.data_type()
            ));
        }
        Err(_) => {
            return Err(format!(
                "query {query}: its results have no column `{time}` (its columns: {})",
                columns()
            ));
        }
    }
    let mut values = Vec::new();
    for f in schema.fields() {
        let name = f.name();
        if name == KEY || *name == time {
            continue;
        }
        let ty = f.data_type();
        if ty.is_numeric() || ty == &DataType::Boolean {
            values.push(name.clone());
        } else if matches!(ty, DataType::Timestamp(..))
            || (name == "symbol"
                && matches!(
                    ty,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ))
        {
            continue;
        } else {
            return Err(format!(
                "query {query}: column `{name}` ({ty}) cannot go into a stream; a query stream \
                 carries `{KEY}`, an event time and numeric or boolean values"
            ));
        }
    }
    if values.is_empty() {
        return Err(format!(
            "query {query}: a query stream needs at least one numeric value column (its columns: {})",
            columns()
        ));
    }
    Ok(RowColumns { time, values })
}

/// Decodes a result batch into rows named `names`. Rows without an instrument or an event
/// time cannot be keyed; they are left out and counted in the second element.
pub(crate) fn decode(
    batch: &RecordBatch,
    time: &str,
    names: &Arc<[String]>,
) -> Result<(Vec<IndicatorRow>, usize), String> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| format!("the results have no column `{name}`"))
    };
    let keys = column(KEY)?
        .as_any()
        .downcast_ref::<UInt32Array>()
        .ok_or_else(|| format!("`{KEY}` is not UInt32"))?
        .clone();
    let times = column(time)?;
    let times = times
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .ok_or_else(|| format!("`{time}` is not a nanosecond timestamp"))?
        .clone();
    let values = names
        .iter()
        .map(|n| {
            let c = column(n)?;
            let c = arrow_cast::cast(c, &DataType::Float64)
                .map_err(|e| format!("`{n}` cannot be read as a number: {e}"))?;
            Ok(c.as_any()
                .downcast_ref::<arrow_array::Float64Array>()
                .ok_or_else(|| format!("`{n}` did not become Float64"))?
                .clone())
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut rows = Vec::with_capacity(batch.num_rows());
    let mut unkeyed = 0;
    for i in 0..batch.num_rows() {
        if keys.is_null(i) || times.is_null(i) {
            unkeyed += 1;
            continue;
        }
        rows.push(IndicatorRow {
            instrument: InstrumentId(keys.value(i)),
            end: Timestamp(times.value(i)),
            names: names.clone(),
            values: values
                .iter()
                .map(|v| (!v.is_null(i)).then(|| v.value(i)))
                .collect(),
        });
    }
    Ok((rows, unkeyed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{BooleanArray, Float64Array, Int64Array, StringArray};
    use arrow_schema::Field;

    fn schema(extra: Vec<Field>) -> Schema {
        let mut fields = vec![
            Field::new("instrument_id", DataType::UInt32, true),
            Field::new("symbol", DataType::Utf8, true),
            Field::new(
                "window_start",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "window_end",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                true,
            ),
        ];
        fields.extend(extra);
        Schema::new(fields)
    }

    #[test]
    fn picks_key_time_and_numeric_values() {
        let s = schema(vec![
            Field::new("vwap", DataType::Float64, true),
            Field::new("trades", DataType::Int64, false),
            Field::new("up", DataType::Boolean, true),
        ]);
        let c = row_columns("q", &s, None).unwrap();
        assert_eq!(c.time, "window_end");
        assert_eq!(c.values, ["vwap", "trades", "up"]);
        let c = row_columns("q", &s, Some("window_start")).unwrap();
        assert_eq!(c.time, "window_start");
    }

    #[test]
    fn refuses_what_cannot_be_a_stream_by_name() {
        let no_key = Schema::new(vec![Field::new("x", DataType::Float64, true)]);
        let e = row_columns("q", &no_key, None).unwrap_err();
        assert!(e.contains("needs an `instrument_id` column"), "{e}");
        let text = schema(vec![Field::new("reason", DataType::Utf8, true)]);
        let e = row_columns("q", &text, None).unwrap_err();
        assert!(
            e.contains("column `reason` (Utf8) cannot go into a stream"),
            "{e}"
        );
        let s = schema(vec![Field::new("x", DataType::Float64, true)]);
        let e = row_columns("q", &s, Some("x")).unwrap_err();
        assert!(e.contains("`x` must be a nanosecond timestamp"), "{e}");
        let e = row_columns("q", &s, Some("nope")).unwrap_err();
        assert!(e.contains("no column `nope`"), "{e}");
        let only_keys = schema(vec![]);
        let e = row_columns("q", &only_keys, None).unwrap_err();
        assert!(e.contains("at least one numeric value column"), "{e}");
    }

    #[test]
    fn decodes_rows_and_counts_unkeyed_ones() {
        let s = Arc::new(schema(vec![
            Field::new("vwap", DataType::Float64, true),
            Field::new("trades", DataType::Int64, false),
            Field::new("up", DataType::Boolean, true),
        ]));
        let ts = |v: Vec<Option<i64>>| {
            Arc::new(TimestampNanosecondArray::from(v).with_timezone("UTC")) as Arc<dyn Array>
        };
        let batch = RecordBatch::try_new(
            s.clone(),
            vec![
                Arc::new(UInt32Array::from(vec![Some(1), None, Some(2)])),
                Arc::new(StringArray::from(vec!["A", "B", "C"])),
                ts(vec![Some(0), Some(0), Some(0)]),
                ts(vec![Some(60), Some(60), None]),
                Arc::new(Float64Array::from(vec![Some(10.5), Some(1.0), None])),
                Arc::new(Int64Array::from(vec![3, 4, 5])),
                Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
            ],
        )
        .unwrap();
        let c = row_columns("q", &s, None).unwrap();
        let names: Arc<[String]> = c.values.into();
        let (rows, unkeyed) = decode(&batch, &c.time, &names).unwrap();
        assert_eq!(unkeyed, 2, "a null instrument and a null time");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].instrument, InstrumentId(1));
        assert_eq!(rows[0].end, Timestamp(60));
        assert_eq!(rows[0].values, [Some(10.5), Some(3.0), Some(1.0)]);
        assert_eq!(rows[0].get("trades"), Some(3.0));
    }
}
