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
use crate::fold::MERGE_AT;

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
    /// The aggregate states of the rows folded into these windows before they closed (see
    /// [`WindowBuffer::fold`]), with each window's bounds: `((start, end), states)`.
    pub states: Vec<((i64, i64), Vec<RecordBatch>)>,
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
    /// The aggregate states of the rows folded: by window end for tumbling and hopping
    /// windows, by the session's place in `groups` for sessions.
    pub folded: Vec<(i64, Vec<RecordBatch>)>,
    /// The aggregate states of hopping windows' panes folded once for all their windows, with
    /// stand-in window columns, by pane start.
    pub pane_folded: Vec<(i64, Vec<RecordBatch>)>,
}

/// Folds rows into aggregate states, and merges states (see [`crate::fold`]).
pub trait Folder {
    /// The partial aggregate states of `rows` (with their window columns).
    fn partial(&mut self, rows: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, SqlError>;
    /// `states` merged, one per group.
    fn merge(&mut self, states: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, SqlError>;
    /// Whether states made with stand-in window columns are given their window's bounds when
    /// it closes (as a session's are): a pane of hopping windows is then folded once, for all
    /// the windows holding it, rather than into each.
    fn relabels(&self) -> bool;
}

/// Folds `rows` (of the windowed schema `schema`, less its window columns), labelled with the
/// window `[start, end)`, into the states `held`, merging them once there are [`MERGE_AT`]
/// batches.
fn fold_into(
    held: &mut Vec<RecordBatch>,
    schema: &SchemaRef,
    rows: &[RecordBatch],
    (start, end): (i64, i64),
    folder: &mut dyn Folder,
) -> Result<(), SqlError> {
    let labelled = rows
        .iter()
        .filter(|b| b.num_rows() > 0)
        .map(|b| with_window(schema, b, start, end))
        .collect::<Result<Vec<_>, _>>()?;
    let states = folder.partial(labelled)?;
    held.extend(states.into_iter().filter(|b| b.num_rows() > 0));
    if held.len() >= MERGE_AT {
        *held = folder.merge(std::mem::take(held))?;
    }
    Ok(())
}

/// Rows of one windowed stream waiting for their windows to close.
#[derive(Debug)]
pub struct WindowBuffer {
    spec: WindowSpec,
    /// The schema of the batches it emits: the stream's columns it keeps, then the window
    /// columns.
    schema: SchemaRef,
    /// The stream's columns it keeps (indices in the stream's schema), when not all: those
    /// the query reads, its time column and its session keys.
    keep: Option<Vec<usize>>,
    /// How many columns the stream has.
    stream_width: usize,
    /// The time column, in the kept columns.
    time_index: usize,
    /// Every window ending at or before this has been emitted.
    closed_to: i64,
    state: State,
    /// Rows that arrived after their windows were emitted.
    pub late_rows: u64,
    /// The latest late row's time and the boundary it missed, for the report.
    pub last_late: Option<(i64, i64)>,
    /// Per open tumbling or hopping window (by its end), the aggregate states of the rows
    /// folded into it: for a query whose windows go into one aggregation, rows are folded a
    /// pane at a time and dropped, so a window holds one state per group however many rows it
    /// covers. (A session holds its own.)
    folded: BTreeMap<i64, Vec<RecordBatch>>,
    /// Per pane of hopping windows (by its start), the aggregate states of its rows folded
    /// once with stand-in window columns, when the folder relabels states: each window holding
    /// the pane reads them when it closes, so a row is aggregated once, not once per window.
    pane_folded: BTreeMap<i64, Vec<RecordBatch>>,
}

#[derive(Debug)]
enum State {
    /// Tumbling and hopping windows: rows by pane (`slide`-aligned start).
    Panes {
        slide: i64,
        size: i64,
        panes: BTreeMap<i64, Vec<RecordBatch>>,
        /// Rows per pane.
        counts: BTreeMap<i64, usize>,
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
    /// Rows in `batches`.
    rows: usize,
    /// Aggregate states of the rows folded (with stand-in window columns).
    states: Vec<RecordBatch>,
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
                counts: BTreeMap::new(),
            },
            WindowKind::Hop { slide, size } => State::Panes {
                slide: *slide,
                size: *size,
                panes: BTreeMap::new(),
                counts: BTreeMap::new(),
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
            keep: None,
            stream_width: stream.fields().len(),
            time_index,
            closed_to: i64::MIN,
            state,
            late_rows: 0,
            last_late: None,
            folded: BTreeMap::new(),
            pane_folded: BTreeMap::new(),
        })
    }

    /// The windowed schema (the stream's columns plus the window columns).
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Keeps only the stream's columns `used` (indices in the windowed schema: the stream's
    /// columns, then `window_start` and `window_end`), besides the time column and the session
    /// keys, which the windows need: a query that reads a few columns of a wide stream holds
    /// only those while its windows are open, and its checkpoints save only those. Called
    /// before any row is inserted. The batches it emits then have these columns only, in
    /// the order of [`WindowBuffer::layout`].
    pub fn keep_only(&mut self, used: &BTreeSet<usize>) -> Result<(), SqlError> {
        let n = self.stream_width;
        // The stream's columns held now (all, the first time), then the window columns.
        let layout = self.layout();
        let held = &layout[..layout.len() - 2];
        let mut keep: BTreeSet<usize> = used.iter().copied().filter(|c| held.contains(c)).collect();
        keep.insert(held[self.time_index]);
        if let State::Sessions { key_index, .. } = &self.state {
            keep.extend(key_index.iter().map(|&k| held[k]));
        }
        let keep: Vec<usize> = keep.into_iter().collect();
        let kept_at = |c: usize| keep.iter().position(|&k| k == c).unwrap_or(0);
        self.time_index = kept_at(held[self.time_index]);
        if let State::Sessions { key_index, .. } = &mut self.state {
            for k in key_index.iter_mut() {
                *k = kept_at(held[*k]);
            }
        }
        let mut columns: Vec<usize> = keep
            .iter()
            .map(|c| held.iter().position(|h| h == c).unwrap_or(0))
            .collect();
        columns.extend([held.len(), held.len() + 1]);
        self.schema = Arc::new(self.schema.project(&columns)?);
        self.keep = (keep.len() < n).then_some(keep);
        Ok(())
    }

    /// For each column of the batches it emits, its index in the windowed schema of the whole
    /// stream (the stream's columns, then `window_start` and `window_end`).
    pub fn layout(&self) -> Vec<usize> {
        let n = self.stream_width;
        let mut out: Vec<usize> = match &self.keep {
            Some(k) => k.clone(),
            None => (0..n).collect(),
        };
        out.extend([n, n + 1]);
        out
    }

    /// `batch` with the columns this buffer keeps, by name (a checkpoint taken before the
    /// buffer kept fewer columns holds them all).
    fn fit(&self, batch: RecordBatch) -> Result<RecordBatch, SqlError> {
        let wanted = &self.schema.fields()[..self.schema.fields().len() - 2];
        let have = batch.schema();
        if have.fields().len() == wanted.len()
            && have
                .fields()
                .iter()
                .zip(wanted)
                .all(|(a, b)| a.name() == b.name())
        {
            return Ok(batch);
        }
        let columns = wanted
            .iter()
            .map(|f| {
                have.index_of(f.name()).map_err(|_| {
                    SqlError::Execution(format!(
                        "the saved rows of {} have no column {} (they have {})",
                        self.spec.table,
                        f.name(),
                        column_list(&have)
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(batch.project(&columns)?)
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
        let kept;
        let batch = match &self.keep {
            Some(k) => {
                kept = batch.project(k)?;
                &kept
            }
            None => batch,
        };
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
            State::Panes {
                slide,
                panes,
                counts,
                ..
            } => {
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
                            *counts.entry(pane_of(start)).or_default() += i - start;
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
                    *counts.entry(pane).or_default() += idx.len();
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
            State::Panes {
                slide,
                size,
                panes,
                counts,
            } => {
                let (slide, size) = (*slide, *size);
                // Ends of the windows to emit: every window holding a buffered pane that ends
                // in (previous, boundary].
                // (A pane whose rows were all folded once holds states instead.)
                let mut ends = BTreeSet::new();
                let held = panes.range(..boundary).map(|(p, _)| p);
                for &pane in held.chain(self.pane_folded.range(..boundary).map(|(p, _)| p)) {
                    ends.extend(
                        window_ends(pane, slide, size).filter(|&e| e > previous && e <= boundary),
                    );
                }
                // Windows whose rows were all folded.
                ends.extend(
                    self.folded
                        .range(previous.saturating_add(1)..=boundary)
                        .map(|(&e, _)| e),
                );
                for end in ends {
                    let start = end - size;
                    let mut any = false;
                    for (_, parts) in panes.range(start..end) {
                        for b in parts {
                            out.batches.push(with_window(&self.schema, b, start, end)?);
                            any = true;
                        }
                    }
                    let mut states = self.folded.remove(&end).unwrap_or_default();
                    for (_, shared) in self.pane_folded.range(start..end) {
                        states.extend(shared.iter().cloned());
                    }
                    if !states.is_empty() {
                        any = true;
                        out.states.push(((start, end), states));
                    }
                    out.windows += u64::from(any);
                }
                // A pane is needed until its last window (ending at pane + size) is emitted.
                let first = boundary.saturating_sub(size).saturating_add(1);
                *panes = panes.split_off(&first);
                *counts = counts.split_off(&first);
                self.pane_folded = self.pane_folded.split_off(&first);
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
                            if !s.states.is_empty() {
                                out.states.push(((s.start, end), s.states));
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
        let mut groups: Vec<(i64, i64, Vec<RecordBatch>, &[RecordBatch])> = match &self.state {
            State::Panes { panes, .. } => panes
                .iter()
                .map(|(&pane, parts)| (pane, pane, parts.clone(), &[][..]))
                .collect(),
            State::Sessions { by_key, .. } => by_key
                .values()
                .flatten()
                .map(|s| (s.start, s.last, s.batches.clone(), s.states.as_slice()))
                .collect(),
        };
        // (A session that folded its rows keeps one, which says its key.)
        groups.retain(|(_, _, rows, _)| rows.iter().any(|b| b.num_rows() > 0));
        // Sessions come out of a hash map: give them a stable order.
        groups.sort_by_key(|(start, last, _, _)| (*start, *last));
        let mut folded: Vec<(i64, Vec<RecordBatch>)> = self
            .folded
            .iter()
            .map(|(&end, states)| (end, states.clone()))
            .collect();
        folded.extend(
            groups
                .iter()
                .enumerate()
                .filter(|(_, g)| !g.3.is_empty())
                .map(|(i, g)| (i as i64, g.3.to_vec())),
        );
        BufferState {
            closed_to: self.closed_to,
            late_rows: self.late_rows,
            last_late: self.last_late,
            groups: groups
                .into_iter()
                .map(|(a, b, rows, _)| (a, b, rows))
                .collect(),
            folded,
            pane_folded: self
                .pane_folded
                .iter()
                .map(|(&pane, states)| (pane, states.clone()))
                .collect(),
        }
    }

    /// Takes back what [`WindowBuffer::state`] gave, into an empty buffer of the same spec.
    pub fn restore(&mut self, state: BufferState) -> Result<(), SqlError> {
        self.closed_to = state.closed_to;
        self.late_rows = state.late_rows;
        self.last_late = state.last_late;
        self.folded.clear();
        self.pane_folded.clear();
        let mut session_states: BTreeMap<i64, Vec<RecordBatch>> = BTreeMap::new();
        match self.state {
            State::Panes { .. } => {
                self.folded = state.folded.into_iter().collect();
                self.pane_folded = state.pane_folded.into_iter().collect();
            }
            State::Sessions { .. } => {
                if !state.pane_folded.is_empty() {
                    return Err(SqlError::Execution(format!(
                        "the saved windows of {} hold aggregate states of panes, which \
                         session windows do not have",
                        self.spec.table
                    )));
                }
                session_states = state.folded.into_iter().collect();
            }
        }
        let mut groups = Vec::with_capacity(state.groups.len());
        for (a, b, rows) in state.groups {
            let rows = rows
                .into_iter()
                .map(|r| self.fit(r))
                .collect::<Result<Vec<_>, _>>()?;
            groups.push((a, b, rows));
        }
        match &mut self.state {
            State::Panes { panes, counts, .. } => {
                panes.clear();
                counts.clear();
                for (pane, _, rows) in groups {
                    *counts.entry(pane).or_default() +=
                        rows.iter().map(|b| b.num_rows()).sum::<usize>();
                    panes.entry(pane).or_default().extend(rows);
                }
            }
            State::Sessions {
                key_index, by_key, ..
            } => {
                by_key.clear();
                for (i, (start, last, batches)) in groups.into_iter().enumerate() {
                    let states = session_states.remove(&(i as i64)).unwrap_or_default();
                    let Some(first) = batches.iter().find(|b| b.num_rows() > 0) else {
                        continue;
                    };
                    let key = session_key(key_index, first, 0)?;
                    by_key.entry(key).or_default().push(Session {
                        start,
                        last,
                        rows: batches.iter().map(|b| b.num_rows()).sum(),
                        batches,
                        states,
                    });
                }
                if let Some(&i) = session_states.keys().next() {
                    return Err(SqlError::Execution(format!(
                        "the saved windows of {} hold aggregate states of a session {i} they do \
                         not have",
                        self.spec.table
                    )));
                }
            }
        }
        Ok(())
    }

    /// Folds the rows of every pane holding at least `rows` of them, and of every session
    /// holding more, into aggregate states, with `folder`, and drops them; returns how many
    /// were folded. A pane's rows are folded into the states of each open window holding
    /// them, with its window columns — or, for hopping windows and a folder that relabels
    /// states, once, with stand-in window columns, into states of the pane that each of its
    /// windows reads when it closes. A session's bounds are not known until it closes: its
    /// rows are folded with stand-in window columns (its states get its bounds when it
    /// closes), but for one, which it keeps to say its key.
    pub fn fold(&mut self, rows: usize, folder: &mut dyn Folder) -> Result<usize, SqlError> {
        let rows = rows.max(1);
        let mut folded = 0;
        match &mut self.state {
            State::Panes {
                slide,
                size,
                panes,
                counts,
            } => {
                let (slide, size) = (*slide, *size);
                let once = size > slide && folder.relabels();
                let ripe: Vec<i64> = counts
                    .iter()
                    .filter(|&(_, &n)| n >= rows)
                    .map(|(&pane, _)| pane)
                    .collect();
                for pane in ripe {
                    folded += counts.remove(&pane).unwrap_or(0);
                    let parts = panes.remove(&pane).unwrap_or_default();
                    if once {
                        let held = self.pane_folded.entry(pane).or_default();
                        fold_into(held, &self.schema, &parts, (0, 0), folder)?;
                        continue;
                    }
                    for end in window_ends(pane, slide, size).filter(|&e| e > self.closed_to) {
                        let held = self.folded.entry(end).or_default();
                        fold_into(held, &self.schema, &parts, (end - size, end), folder)?;
                    }
                }
            }
            State::Sessions { by_key, .. } => {
                for s in by_key.values_mut().flatten().filter(|s| s.rows > rows) {
                    let mut parts = std::mem::take(&mut s.batches);
                    let Some(i) = parts.iter().position(|b| b.num_rows() > 0) else {
                        continue;
                    };
                    let first = parts[i].clone();
                    parts[i] = first.slice(1, first.num_rows() - 1);
                    s.batches = vec![first.slice(0, 1)];
                    fold_into(&mut s.states, &self.schema, &parts, (0, 0), folder)?;
                    folded += s.rows - 1;
                    s.rows = 1;
                }
            }
        }
        Ok(folded)
    }

    /// Rows held (not folded), and rows of aggregate states held.
    pub fn held(&self) -> (usize, usize) {
        let count = |bs: &[RecordBatch]| bs.iter().map(|b| b.num_rows()).sum::<usize>();
        let folded: usize = self
            .folded
            .values()
            .chain(self.pane_folded.values())
            .map(|v| count(v))
            .sum();
        match &self.state {
            State::Panes { counts, .. } => (counts.values().sum(), folded),
            State::Sessions { by_key, .. } => {
                by_key.values().flatten().fold((0, folded), |(r, st), s| {
                    (r + s.rows, st + count(&s.states))
                })
            }
        }
    }

    /// Every window over the rows buffered now, closed or not (for snapshot queries).
    pub fn all_windows(&self) -> Result<Vec<RecordBatch>, SqlError> {
        let mut out = Vec::new();
        match &self.state {
            State::Panes {
                slide, size, panes, ..
            } => {
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
        rows: rows.num_rows(),
        batches: vec![rows],
        states: Vec::new(),
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
            merged.rows += s.rows;
            merged.states.extend(s.states);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
    use arrow_array::{TimestampNanosecondArray, cast::AsArray, types::Int64Type};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};

    use super::{WindowBuffer, WindowKind, WindowSpec};
    use crate::error::SqlError;

    /// A stream of four columns: `sym`, `t` (the time), `x` and `y`.
    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("sym", DataType::Utf8, false),
            Field::new("t", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
            Field::new("x", DataType::Int64, false),
            Field::new("y", DataType::Float64, false),
        ])
    }

    /// Rows `(sym, t, x)`, `y` = `x` / 2.
    fn batch(rows: &[(&str, i64, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(schema()),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(TimestampNanosecondArray::from_iter_values(
                    rows.iter().map(|r| r.1),
                )),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
                Arc::new(Float64Array::from_iter_values(
                    rows.iter().map(|r| r.2 as f64 / 2.0),
                )),
            ],
        )
        .unwrap()
    }

    fn buffer(kind: WindowKind) -> WindowBuffer {
        let spec = WindowSpec {
            table: "s".into(),
            time_column: "t".into(),
            kind,
        };
        WindowBuffer::new(spec, &schema()).unwrap()
    }

    /// Per emitted row: its columns' names and the row as text.
    fn rows(batches: &[RecordBatch]) -> Vec<(Vec<String>, String)> {
        let mut out = Vec::new();
        for b in batches {
            let names: Vec<String> = b
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            for i in 0..b.num_rows() {
                let cells: Vec<String> = b
                    .columns()
                    .iter()
                    .map(|c| {
                        arrow_cast::display::ArrayFormatter::try_new(
                            c.as_ref(),
                            &Default::default(),
                        )
                        .unwrap()
                        .value(i)
                        .to_string()
                    })
                    .collect();
                out.push((names.clone(), cells.join(",")));
            }
        }
        out.sort();
        out
    }

    const INPUT: [(&str, i64, i64); 5] = [
        ("A", 10, 1),
        ("B", 15, 2),
        ("A", 20, 3),
        ("A", 130, 4),
        ("B", 140, 5),
    ];

    #[test]
    fn a_window_keeps_only_the_columns_its_query_reads_and_its_time_and_keys() {
        // Tumbling windows of 100 ns over a query that reads `x` and `window_end` (index 5).
        let mut b = buffer(WindowKind::Tumble { size: 100 });
        b.keep_only(&BTreeSet::from([2, 5])).unwrap();
        assert_eq!(b.layout(), vec![1, 2, 4, 5]);
        b.insert(&batch(&INPUT)).unwrap();
        let state = b.state();
        assert!(
            state
                .groups
                .iter()
                .flat_map(|g| &g.2)
                .all(|r| r.num_columns() == 2),
            "a checkpoint holds the two kept columns"
        );
        let closed = b.close_to(200).unwrap();
        assert_eq!(closed.windows, 2);
        let names = ["t", "x", "window_start", "window_end"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            rows(&closed.batches),
            vec![
                (names.clone(), "1970-01-01T00:00:00.000000010,1,1970-01-01T00:00:00,1970-01-01T00:00:00.000000100".into()),
                (names.clone(), "1970-01-01T00:00:00.000000015,2,1970-01-01T00:00:00,1970-01-01T00:00:00.000000100".into()),
                (names.clone(), "1970-01-01T00:00:00.000000020,3,1970-01-01T00:00:00,1970-01-01T00:00:00.000000100".into()),
                (names.clone(), "1970-01-01T00:00:00.000000130,4,1970-01-01T00:00:00.000000100,1970-01-01T00:00:00.000000200".into()),
                (names, "1970-01-01T00:00:00.000000140,5,1970-01-01T00:00:00.000000100,1970-01-01T00:00:00.000000200".into()),
            ]
        );

        // Sessions keyed by `sym` keep the key as well, and still group by it.
        let mut s = buffer(WindowKind::Session {
            gap: 50,
            keys: vec!["sym".into()],
        });
        s.keep_only(&BTreeSet::from([3])).unwrap();
        assert_eq!(s.layout(), vec![0, 1, 3, 4, 5]);
        s.insert(&batch(&INPUT)).unwrap();
        let closed = s.close_to(1_000).unwrap();
        assert_eq!(closed.windows, 4, "A: 10-20 and 130; B: 15 and 140");
        let sums: Vec<(String, f64)> = closed
            .batches
            .iter()
            .map(|b| {
                let sym = b.column(0).as_string::<i32>().value(0).to_string();
                let y: f64 = b
                    .column(2)
                    .as_primitive::<arrow_array::types::Float64Type>()
                    .values()
                    .iter()
                    .sum();
                (sym, y)
            })
            .collect();
        let mut sums = sums;
        sums.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(
            sums,
            vec![
                ("A".into(), 2.0),
                ("A".into(), 2.0),
                ("B".into(), 1.0),
                ("B".into(), 2.5)
            ]
        );
    }

    #[test]
    fn rows_saved_with_every_column_are_restored_into_the_kept_columns_by_name() {
        // A checkpoint taken by a buffer that kept every column...
        let mut wide = buffer(WindowKind::Tumble { size: 100 });
        wide.insert(&batch(&INPUT)).unwrap();
        let state = wide.state();
        assert!(
            state
                .groups
                .iter()
                .flat_map(|g| &g.2)
                .all(|r| r.num_columns() == 4)
        );
        // ...restored into one that keeps `x` only: the same windows, the kept columns.
        let mut narrow = buffer(WindowKind::Tumble { size: 100 });
        narrow.keep_only(&BTreeSet::from([2])).unwrap();
        narrow.restore(state).unwrap();
        let mut direct = buffer(WindowKind::Tumble { size: 100 });
        direct.keep_only(&BTreeSet::from([2])).unwrap();
        direct.insert(&batch(&INPUT)).unwrap();
        let (a, b) = (narrow.close_to(200).unwrap(), direct.close_to(200).unwrap());
        assert_eq!(rows(&a.batches), rows(&b.batches));
        let xs: i64 = a
            .batches
            .iter()
            .map(|b| {
                b.column(1)
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .sum::<i64>()
            })
            .sum();
        assert_eq!(xs, 15);
        // Rows without a kept column are refused, naming it.
        let mut other = buffer(WindowKind::Tumble { size: 100 });
        other.keep_only(&BTreeSet::from([2])).unwrap();
        let bad = crate::window::BufferState {
            closed_to: i64::MIN,
            late_rows: 0,
            last_late: None,
            groups: vec![(0, 0, vec![batch(&INPUT).project(&[0, 1, 3]).unwrap()])],
            folded: Vec::new(),
            pane_folded: Vec::new(),
        };
        let e = other.restore(bad).unwrap_err().to_string();
        assert!(e.contains("no column x"), "{e}");
    }

    /// "Folds" rows into themselves (states are the labelled rows), noting the window
    /// columns of each call's rows; merges by concatenation; relabels states or not.
    #[derive(Default)]
    struct Echo(Vec<Vec<String>>, bool);

    impl super::Folder for Echo {
        fn partial(&mut self, rows: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, SqlError> {
            let labels = rows_of(&rows)
                .into_iter()
                .map(|row| row.split(',').skip(4).collect::<Vec<_>>().join(","))
                .collect();
            self.0.push(labels);
            Ok(rows)
        }
        fn merge(&mut self, states: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, SqlError> {
            Ok(vec![
                arrow_select::concat::concat_batches(&states[0].schema(), &states).unwrap(),
            ])
        }
        fn relabels(&self) -> bool {
            self.1
        }
    }

    fn rows_of(batches: &[RecordBatch]) -> Vec<String> {
        rows(batches).into_iter().map(|(_, r)| r).collect()
    }

    fn state_rows(closed: &super::Closed) -> Vec<((i64, i64), usize)> {
        closed
            .states
            .iter()
            .map(|(w, states)| (*w, states.iter().map(|b| b.num_rows()).sum()))
            .collect()
    }

    fn hop() -> WindowBuffer {
        buffer(WindowKind::Hop {
            slide: 100,
            size: 300,
        })
    }

    /// Windows of 300 every 100 over rows at 150 and 160 (the pane at 100: each is in the
    /// windows ending 200, 300 and 400) and 230 (the pane at 200); the window ending at 200
    /// closed, with its rows.
    fn hop_with_a_window_closed() -> WindowBuffer {
        let mut b = hop();
        b.insert(&batch(&[("A", 150, 1), ("B", 160, 2), ("A", 230, 3)]))
            .unwrap();
        let closed = b.close_to(200).unwrap();
        assert_eq!((rows(&closed.batches).len(), closed.windows), (2, 1));
        b
    }

    /// Closes the windows of [`hop_with_a_window_closed`] whose pane at 100 was folded: the
    /// window ending at 300 with the pane at 200's row and the states of the pane at 100's
    /// two rows; then, in the buffer and in one restored from its checkpoint, the window ending
    /// at 400 the same way and the one ending at 500 with the row, leaving nothing held.
    fn closes_with_the_states_of_the_pane(mut b: WindowBuffer) {
        let closed = b.close_to(300).unwrap();
        assert_eq!(closed.windows, 1);
        assert_eq!(rows(&closed.batches).len(), 1);
        assert_eq!(state_rows(&closed), [((0, 300), 2)]);
        let mut again = hop();
        again.restore(b.state()).unwrap();
        for buf in [&mut b, &mut again] {
            let closed = buf.close_to(1000).unwrap();
            assert_eq!(closed.windows, 2);
            assert_eq!(state_rows(&closed), [((100, 400), 2)]);
            assert_eq!(rows(&closed.batches).len(), 2);
            assert_eq!(buf.held(), (0, 0));
        }
        // A row of a folded window arriving after it closed is late.
        b.insert(&batch(&[("A", 350, 9)])).unwrap();
        assert_eq!(b.late_rows, 1);
    }

    #[test]
    fn a_full_pane_is_folded_into_each_open_window_and_its_windows_close_from_their_states() {
        let mut b = hop_with_a_window_closed();
        // The pane at 100 holds 2 rows, the pane at 200 one: only the first is folded, into
        // the two windows still open, with their window columns; not into the closed one.
        let mut echo = Echo::default();
        assert_eq!(b.fold(3, &mut echo).unwrap(), 0);
        assert_eq!(b.fold(2, &mut echo).unwrap(), 2);
        let windows: Vec<Vec<String>> = echo.0.iter().map(|c| dedup(c.clone())).collect();
        assert_eq!(windows.len(), 2, "{windows:?}");
        assert!(windows[0][0].ends_with("0.000000300"), "{windows:?}");
        assert!(windows[1][0].ends_with("0.000000400"), "{windows:?}");
        assert_eq!(b.held(), (1, 4));
        closes_with_the_states_of_the_pane(b);
    }

    #[test]
    fn a_pane_of_hopping_windows_is_folded_once_for_all_its_windows_when_states_are_relabelled() {
        let mut b = hop_with_a_window_closed();
        // The pane at 100 is folded once, with stand-in window columns, not into each of the
        // two windows still holding it; its states are held once.
        let mut echo = Echo(Vec::new(), true);
        assert_eq!(b.fold(2, &mut echo).unwrap(), 2);
        assert_eq!(echo.0.len(), 1, "{:?}", echo.0);
        assert_eq!(
            dedup(echo.0[0].clone()),
            ["1970-01-01T00:00:00,1970-01-01T00:00:00"]
        );
        assert_eq!(b.held(), (1, 2));
        // Each window holding the pane closes with its states, under its own bounds, before
        // and after a checkpoint; the states go with the last.
        closes_with_the_states_of_the_pane(b);
        // A session buffer refuses states of panes.
        let mut state = hop().state();
        state.pane_folded = vec![(100, Vec::new())];
        let mut session = buffer(WindowKind::Session {
            gap: 50,
            keys: vec!["sym".into()],
        });
        let e = session.restore(state).unwrap_err().to_string();
        assert!(e.contains("states of panes"), "{e}");
    }

    fn dedup(mut v: Vec<String>) -> Vec<String> {
        v.dedup();
        v
    }

    #[test]
    fn a_session_folds_all_but_one_row_with_stand_in_bounds_and_closes_with_its_own() {
        let session = || {
            buffer(WindowKind::Session {
                gap: 50,
                keys: vec!["sym".into()],
            })
        };
        let mut b = session();
        b.insert(&batch(&[
            ("A", 10, 1),
            ("A", 20, 2),
            ("B", 15, 3),
            ("A", 40, 4),
        ]))
        .unwrap();
        let mut echo = Echo::default();
        // A's session holds 3 rows, B's 1: A's are folded but for one, which says its key.
        assert_eq!(b.fold(3, &mut echo).unwrap(), 0);
        assert_eq!(b.fold(2, &mut echo).unwrap(), 2);
        assert_eq!(b.held(), (2, 2));
        // Folded with stand-in window columns (the session may still grow).
        assert_eq!(
            dedup(echo.0.concat()),
            ["1970-01-01T00:00:00,1970-01-01T00:00:00"]
        );
        // A later row joins the session; it closes with its own bounds, rows and states,
        // before and after a checkpoint.
        b.insert(&batch(&[("A", 60, 5)])).unwrap();
        let mut again = session();
        again.restore(b.state()).unwrap();
        for buf in [&mut b, &mut again] {
            let closed = buf.close_to(1000).unwrap();
            assert_eq!(closed.windows, 2);
            assert_eq!(state_rows(&closed), [((10, 110), 2)]);
            assert_eq!(
                rows(&closed.batches).len(),
                3,
                "A's kept row, its new row, B's row"
            );
        }
    }
}
