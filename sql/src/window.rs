//! Event-time windows: the `tumble`, `hop` and `session` table functions' arguments, and the
//! buffers that hold a stream's rows until the watermark closes their windows.
//!
//! Windows are half-open, `[window_start, window_end)`, in nanoseconds of the time column.
//! Tumbling and hopping windows are aligned to the Unix epoch (a 1-minute window starts on the
//! minute). A session window of one key holds rows less than `gap` apart; it ends at its last
//! row's time plus `gap`.
//!
//! A row is *late* when the windows it belongs to have already been emitted: it is counted and
//! reported, never folded silently into a later window.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, TimestampNanosecondArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Expr;

use crate::error::SqlError;

/// Column names the window functions add.
pub const WINDOW_START: &str = "window_start";
/// See [`WINDOW_START`].
pub const WINDOW_END: &str = "window_end";

/// The shape of a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `size` ns.
    Tumble { size: i64 },
    /// Windows of `size` ns starting every `slide` ns (`size` a multiple of `slide`).
    Hop { slide: i64, size: i64 },
    /// Per key, rows less than `gap` ns apart.
    Session { gap: i64, keys: Vec<String> },
}

/// One call of a window table function: which stream, which time column, which windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    /// The stream (table) windowed.
    pub table: String,
    /// Its event-time column (a nanosecond timestamp).
    pub time_column: String,
    /// The windows.
    pub kind: WindowKind,
}

impl WindowSpec {
    /// Reads the arguments of `tumble(table, time_column, size)`, `hop(table, time_column,
    /// slide, size)` or `session(table, time_column, gap [, key, ...])`.
    pub fn from_args(function: &str, args: &[Expr]) -> Result<Self, SqlError> {
        let usage = match function {
            "tumble" => "tumble('stream', 'time_column', INTERVAL '1 minute')",
            "hop" => "hop('stream', 'time_column', INTERVAL 'slide', INTERVAL 'size')",
            "session" => "session('stream', 'time_column', INTERVAL 'gap' [, 'key_column', ...])",
            _ => {
                return Err(SqlError::plan(format!(
                    "unknown window function {function}"
                )));
            }
        };
        let bad = |what: String| SqlError::plan(format!("{function}(): {what}; usage: {usage}"));
        let name_at = |i: usize, what: &str| -> Result<String, SqlError> {
            match args.get(i) {
                Some(Expr::Literal(ScalarValue::Utf8(Some(s)), _))
                | Some(Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _))
                | Some(Expr::Literal(ScalarValue::Utf8View(Some(s)), _)) => Ok(s.clone()),
                Some(Expr::Column(c)) => Ok(c.name.clone()),
                Some(other) => Err(bad(format!(
                    "argument {} ({what}) must be a name, got {other}",
                    i + 1
                ))),
                None => Err(bad(format!("argument {} ({what}) is missing", i + 1))),
            }
        };
        let interval_at = |i: usize, what: &str| -> Result<i64, SqlError> {
            let ns = match args.get(i) {
                Some(Expr::Literal(v, _)) => interval_nanos(v),
                _ => None,
            }
            .ok_or_else(|| {
                bad(format!(
                    "argument {} ({what}) must be an interval of days or less, like INTERVAL '1 minute'",
                    i + 1
                ))
            })?;
            if ns <= 0 {
                return Err(bad(format!("{what} must be positive")));
            }
            Ok(ns)
        };
        let table = name_at(0, "stream")?;
        let time_column = name_at(1, "time column")?;
        let kind = match function {
            "tumble" => {
                if args.len() != 3 {
                    return Err(bad(format!("takes 3 arguments, got {}", args.len())));
                }
                WindowKind::Tumble {
                    size: interval_at(2, "size")?,
                }
            }
            "hop" => {
                if args.len() != 4 {
                    return Err(bad(format!("takes 4 arguments, got {}", args.len())));
                }
                let slide = interval_at(2, "slide")?;
                let size = interval_at(3, "size")?;
                if size % slide != 0 {
                    return Err(bad(format!(
                        "the size ({size} ns) must be a whole multiple of the slide ({slide} ns)"
                    )));
                }
                WindowKind::Hop { slide, size }
            }
            _ => {
                if args.len() < 3 {
                    return Err(bad(format!(
                        "takes at least 3 arguments, got {}",
                        args.len()
                    )));
                }
                let gap = interval_at(2, "gap")?;
                let keys = (3..args.len())
                    .map(|i| name_at(i, "key column"))
                    .collect::<Result<_, _>>()?;
                WindowKind::Session { gap, keys }
            }
        };
        Ok(Self {
            table,
            time_column,
            kind,
        })
    }

    /// The schema of the windowed table: the stream's columns, then `window_start` and
    /// `window_end`. Checks that the time and key columns exist.
    pub fn schema(&self, stream: &Schema) -> Result<SchemaRef, SqlError> {
        let time = stream.field_with_name(&self.time_column).map_err(|_| {
            SqlError::plan(format!(
                "stream {} has no column {} (its columns: {})",
                self.table,
                self.time_column,
                column_list(stream)
            ))
        })?;
        if !matches!(
            time.data_type(),
            DataType::Timestamp(TimeUnit::Nanosecond, _)
        ) {
            return Err(SqlError::plan(format!(
                "{}.{} is {}, not a nanosecond timestamp, so it cannot be windowed",
                self.table,
                self.time_column,
                time.data_type()
            )));
        }
        if let WindowKind::Session { keys, .. } = &self.kind {
            for k in keys {
                if stream.field_with_name(k).is_err() {
                    return Err(SqlError::plan(format!(
                        "stream {} has no key column {k} (its columns: {})",
                        self.table,
                        column_list(stream)
                    )));
                }
            }
        }
        let mut fields: Vec<Field> = stream.fields().iter().map(|f| f.as_ref().clone()).collect();
        for name in [WINDOW_START, WINDOW_END] {
            if stream.field_with_name(name).is_ok() {
                return Err(SqlError::plan(format!(
                    "stream {} already has a column named {name}",
                    self.table
                )));
            }
            fields.push(Field::new(name, time.data_type().clone(), false));
        }
        Ok(Arc::new(Schema::new(fields)))
    }
}

/// Comma-separated column names, for error messages.
pub fn column_list(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn interval_nanos(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => (i.days as i64)
            .checked_mul(86_400_000_000_000)?
            .checked_add(i.nanoseconds),
        ScalarValue::IntervalDayTime(Some(i)) => {
            (i.days as i64 * 86_400_000 + i.milliseconds as i64).checked_mul(1_000_000)
        }
        _ => None,
    }
}

/// The rows of windows the watermark has closed, each batch with its window columns.
#[derive(Debug, Default)]
pub struct Closed {
    /// Batches in the windowed schema.
    pub batches: Vec<RecordBatch>,
    /// Windows emitted.
    pub windows: u64,
}

/// What a [`WindowBuffer`] holds, for a checkpoint.
#[derive(Debug)]
pub struct BufferState {
    /// Every window ending at or before this has been emitted.
    pub closed_to: i64,
    /// Rows that came after their windows were emitted.
    pub late_rows: u64,
    /// The latest late row's time and the boundary it missed.
    pub last_late: Option<(i64, i64)>,
    /// The rows waiting, by group, in the order they came: (pane start, pane start, rows) for
    /// tumbling and hopping windows, (start, last row's time, rows) for sessions.
    pub groups: Vec<(i64, i64, Vec<RecordBatch>)>,
}

/// Rows of one windowed stream waiting for their windows to close.
#[derive(Debug)]
pub struct WindowBuffer {
    spec: WindowSpec,
    schema: SchemaRef,
    time_index: usize,
    /// Every window ending at or before this has been emitted.
    closed_to: i64,
    state: State,
    /// Rows that arrived after their windows were emitted.
    pub late_rows: u64,
    /// The latest late row's time and the boundary it missed, for the report.
    pub last_late: Option<(i64, i64)>,
}

#[derive(Debug)]
enum State {
    /// Tumbling and hopping windows: rows by pane (`slide`-aligned start).
    Panes {
        slide: i64,
        size: i64,
        panes: BTreeMap<i64, Vec<RecordBatch>>,
    },
    /// Session windows by key.
    Sessions {
        gap: i64,
        key_index: Vec<usize>,
        by_key: HashMap<Vec<ScalarValue>, Vec<Session>>,
    },
}

#[derive(Debug)]
struct Session {
    start: i64,
    last: i64,
    batches: Vec<RecordBatch>,
}

impl WindowBuffer {
    /// An empty buffer for `spec` over a stream of schema `stream`.
    pub fn new(spec: WindowSpec, stream: &Schema) -> Result<Self, SqlError> {
        let schema = spec.schema(stream)?;
        let time_index = stream.index_of(&spec.time_column).map_err(SqlError::from)?;
        let state = match &spec.kind {
            WindowKind::Tumble { size } => State::Panes {
                slide: *size,
                size: *size,
                panes: BTreeMap::new(),
            },
            WindowKind::Hop { slide, size } => State::Panes {
                slide: *slide,
                size: *size,
                panes: BTreeMap::new(),
            },
            WindowKind::Session { gap, keys } => State::Sessions {
                gap: *gap,
                key_index: keys
                    .iter()
                    .map(|k| stream.index_of(k).map_err(SqlError::from))
                    .collect::<Result<_, _>>()?,
                by_key: HashMap::new(),
            },
        };
        Ok(Self {
            spec,
            schema,
            time_index,
            closed_to: i64::MIN,
            state,
            late_rows: 0,
            last_late: None,
        })
    }

    /// The windowed schema (the stream's columns plus the window columns).
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The window definition.
    pub fn spec(&self) -> &WindowSpec {
        &self.spec
    }

    /// Adds a batch of the stream. Rows whose windows were already emitted are counted as late
    /// and left out.
    pub fn insert(&mut self, batch: &RecordBatch) -> Result<(), SqlError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let times = batch
            .column(self.time_index)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .ok_or_else(|| {
                SqlError::plan(format!(
                    "{}.{} is not a nanosecond timestamp in this batch",
                    self.spec.table, self.spec.time_column
                ))
            })?;
        let closed_to = self.closed_to;
        match &mut self.state {
            State::Panes { slide, panes, .. } => {
                let slide = *slide;
                // The common case: rows in time order, none late. Each pane's rows are then
                // one run, handed on as a slice of the batch without copying.
                let pane_of = |i: usize| times.value(i).div_euclid(slide) * slide;
                let in_order = times.null_count() == 0
                    && (1..batch.num_rows()).all(|i| times.value(i - 1) <= times.value(i))
                    && pane_of(0).saturating_add(slide) > closed_to;
                if in_order {
                    let mut start = 0;
                    for i in 1..=batch.num_rows() {
                        if i == batch.num_rows() || pane_of(i) != pane_of(start) {
                            panes
                                .entry(pane_of(start))
                                .or_default()
                                .push(batch.slice(start, i - start));
                            start = i;
                        }
                    }
                    return Ok(());
                }
                let mut rows: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
                for i in 0..batch.num_rows() {
                    if times.is_null(i) {
                        self.late_rows += 1;
                        continue;
                    }
                    let t = times.value(i);
                    let pane = t.div_euclid(slide) * slide;
                    // The earliest window holding this row ends at pane + slide.
                    if pane.saturating_add(slide) <= closed_to {
                        self.late_rows += 1;
                        self.last_late = Some((t, closed_to));
                        continue;
                    }
                    rows.entry(pane).or_default().push(i as u32);
                }
                for (pane, idx) in rows {
                    let part = take_rows(batch, idx)?;
                    panes.entry(pane).or_default().push(part);
                }
            }
            State::Sessions {
                gap,
                key_index,
                by_key,
            } => {
                let gap = *gap;
                // Rows by key, in time order.
                let mut rows: HashMap<Vec<ScalarValue>, Vec<(i64, u32)>> = HashMap::new();
                for i in 0..batch.num_rows() {
                    if times.is_null(i) {
                        self.late_rows += 1;
                        continue;
                    }
                    let t = times.value(i);
                    if t.saturating_add(gap) <= closed_to {
                        self.late_rows += 1;
                        self.last_late = Some((t, closed_to));
                        continue;
                    }
                    let key = session_key(key_index, batch, i)?;
                    rows.entry(key).or_default().push((t, i as u32));
                }
                for (key, mut list) in rows {
                    list.sort_unstable();
                    let sessions = by_key.entry(key).or_default();
                    // Group this batch's rows into runs less than `gap` apart, then merge each
                    // run with the sessions it touches.
                    let mut run: Vec<u32> = Vec::new();
                    let (mut start, mut last) = (list[0].0, list[0].0);
                    for (n, &(t, i)) in list.iter().enumerate() {
                        if n > 0 && t - last >= gap {
                            merge_session(
                                sessions,
                                gap,
                                start,
                                last,
                                take_rows(batch, std::mem::take(&mut run))?,
                            );
                            start = t;
                        }
                        last = t;
                        run.push(i);
                    }
                    merge_session(sessions, gap, start, last, take_rows(batch, run)?);
                }
            }
        }
        Ok(())
    }

    /// Emits every window that ends at or before `boundary` (the watermark less the allowed
    /// lateness) and has rows, and forgets rows no open window needs.
    pub fn close_to(&mut self, boundary: i64) -> Result<Closed, SqlError> {
        let mut out = Closed::default();
        if boundary <= self.closed_to {
            return Ok(out);
        }
        let previous = self.closed_to;
        self.closed_to = boundary;
        match &mut self.state {
            State::Panes { slide, size, panes } => {
                let (slide, size) = (*slide, *size);
                // Ends of the windows to emit: every window holding a buffered pane that ends
                // in (previous, boundary].
                let mut ends = BTreeSet::new();
                for &pane in panes.range(..boundary).map(|(p, _)| p) {
                    ends.extend(
                        window_ends(pane, slide, size).filter(|&e| e > previous && e <= boundary),
                    );
                }
                for end in ends {
                    let start = end - size;
                    let mut any = false;
                    for (_, parts) in panes.range(start..end) {
                        for b in parts {
                            out.batches.push(with_window(&self.schema, b, start, end)?);
                            any = true;
                        }
                    }
                    out.windows += u64::from(any);
                }
                // A pane is needed until its last window (ending at pane + size) is emitted.
                let keep = panes.split_off(&boundary.saturating_sub(size).saturating_add(1));
                *panes = keep;
            }
            State::Sessions { gap, by_key, .. } => {
                let gap = *gap;
                for sessions in by_key.values_mut() {
                    let mut i = 0;
                    while i < sessions.len() {
                        if sessions[i].last.saturating_add(gap) <= boundary {
                            let s = sessions.remove(i);
                            let end = s.last + gap;
                            for b in &s.batches {
                                out.batches
                                    .push(with_window(&self.schema, b, s.start, end)?);
                            }
                            out.windows += 1;
                        } else {
                            i += 1;
                        }
                    }
                }
                by_key.retain(|_, s| !s.is_empty());
            }
        }
        Ok(out)
    }

    /// What the buffer holds, for a checkpoint: its rows as they are grouped (in the order
    /// they came) and its counters.
    pub fn state(&self) -> BufferState {
        let mut groups: Vec<(i64, i64, Vec<RecordBatch>)> = match &self.state {
            State::Panes { panes, .. } => panes
                .iter()
                .map(|(&pane, parts)| (pane, pane, parts.clone()))
                .collect(),
            State::Sessions { by_key, .. } => by_key
                .values()
                .flatten()
                .map(|s| (s.start, s.last, s.batches.clone()))
                .collect(),
        };
        groups.retain(|(_, _, rows)| rows.iter().any(|b| b.num_rows() > 0));
        // Sessions come out of a hash map: give them a stable order.
        groups.sort_by_key(|(start, last, _)| (*start, *last));
        BufferState {
            closed_to: self.closed_to,
            late_rows: self.late_rows,
            last_late: self.last_late,
            groups,
        }
    }

    /// Takes back what [`WindowBuffer::state`] gave, into an empty buffer of the same spec.
    pub fn restore(&mut self, state: BufferState) -> Result<(), SqlError> {
        self.closed_to = state.closed_to;
        self.late_rows = state.late_rows;
        self.last_late = state.last_late;
        match &mut self.state {
            State::Panes { panes, .. } => {
                panes.clear();
                for (pane, _, rows) in state.groups {
                    panes.entry(pane).or_default().extend(rows);
                }
            }
            State::Sessions {
                key_index, by_key, ..
            } => {
                by_key.clear();
                for (start, last, batches) in state.groups {
                    let Some(first) = batches.iter().find(|b| b.num_rows() > 0) else {
                        continue;
                    };
                    let key = session_key(key_index, first, 0)?;
                    by_key.entry(key).or_default().push(Session {
                        start,
                        last,
                        batches,
                    });
                }
            }
        }
        Ok(())
    }

    /// Every window over the rows buffered now, closed or not (for snapshot queries).
    pub fn all_windows(&self) -> Result<Vec<RecordBatch>, SqlError> {
        let mut out = Vec::new();
        match &self.state {
            State::Panes { slide, size, panes } => {
                let mut ends = BTreeSet::new();
                for &pane in panes.keys() {
                    ends.extend(window_ends(pane, *slide, *size));
                }
                for end in ends {
                    let start = end - size;
                    for (_, parts) in panes.range(start..end) {
                        for b in parts {
                            out.push(with_window(&self.schema, b, start, end)?);
                        }
                    }
                }
            }
            State::Sessions { gap, by_key, .. } => {
                for s in by_key.values().flatten() {
                    for b in &s.batches {
                        out.push(with_window(&self.schema, b, s.start, s.last + gap)?);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The session key of row `row` of `batch` (`key_index`: the key columns).
fn session_key(
    key_index: &[usize],
    batch: &RecordBatch,
    row: usize,
) -> Result<Vec<ScalarValue>, SqlError> {
    key_index
        .iter()
        .map(|&c| ScalarValue::try_from_array(batch.column(c), row))
        .collect::<Result<Vec<_>, _>>()
        .map_err(SqlError::from)
}

/// The ends of the windows holding the pane that starts at `pane`.
fn window_ends(pane: i64, slide: i64, size: i64) -> impl Iterator<Item = i64> {
    (1..=size / slide).map(move |k| pane.saturating_add(k.saturating_mul(slide)))
}

/// Adds one run of rows, `[start, last]`, to a key's sessions, merging every session it
/// comes within `gap` of.
fn merge_session(sessions: &mut Vec<Session>, gap: i64, start: i64, last: i64, rows: RecordBatch) {
    let mut merged = Session {
        start,
        last,
        batches: vec![rows],
    };
    let mut i = 0;
    while i < sessions.len() {
        let s = &sessions[i];
        let touches = merged.start - s.last < gap && s.start - merged.last < gap;
        if touches {
            let s = sessions.swap_remove(i);
            merged.start = merged.start.min(s.start);
            merged.last = merged.last.max(s.last);
            merged.batches.extend(s.batches);
        } else {
            i += 1;
        }
    }
    sessions.push(merged);
}

fn take_rows(batch: &RecordBatch, idx: Vec<u32>) -> Result<RecordBatch, SqlError> {
    if idx.len() == batch.num_rows() && idx.iter().enumerate().all(|(n, &i)| n as u32 == i) {
        return Ok(batch.clone());
    }
    let idx = UInt32Array::from(idx);
    Ok(arrow_select::take::take_record_batch(batch, &idx)?)
}

/// The batch with constant `window_start` and `window_end` columns appended.
fn with_window(
    schema: &SchemaRef,
    batch: &RecordBatch,
    start: i64,
    end: i64,
) -> Result<RecordBatch, SqlError> {
    let n = batch.num_rows();
    let tz = match schema.field(schema.fields().len() - 1).data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    let col = |v: i64| -> ArrayRef {
        Arc::new(TimestampNanosecondArray::from(vec![v; n]).with_timezone_opt(tz.clone()))
    };
    let mut columns = batch.columns().to_vec();
    columns.push(col(start));
    columns.push(col(end));
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
