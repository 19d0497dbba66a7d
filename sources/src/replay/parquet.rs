//! Parquet files of market records: the `trades`, `quotes` and `book` streams as a Parquet sink
//! writes them (one file, or a directory of rolled parts), or any file with their columns.
//!
//! A file holds one kind of record, told by its columns. Its instruments are named by the
//! `tickflow.instruments` metadata a Parquet sink writes ([`INSTRUMENTS_KEY`]: venue, tick and
//! lot size, currency); a file without it names them by its `symbol` column alone (venue
//! `parquet`). Records are numbered by their row (1-based), which is what a reject names;
//! a row that cannot be read is a reject and the rows around it are kept.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::path::Path;
use std::sync::Once;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;
use arrow_array::{Array, RecordBatch};
use arrow_schema::Schema;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use tickflow_core::{
    ArrowRecord, BookEvent, INSTRUMENTS_KEY, Instrument, InstrumentId, InstrumentRegistry,
    InstrumentSpec, MarketEvent, Price, Quantity, Quote, RejectReason, SeqNo, Trade,
};

use super::text::bad_row;
use crate::error::{Error, Result};
use crate::{PartReader, SourceItem};

/// Venue of the instruments of a file that does not name them.
pub const VENUE: &str = "parquet";

/// Rows converted at a time.
const BATCH_ROWS: usize = 8192;

/// The kind of records a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Trades.
    Trades,
    /// Quotes.
    Quotes,
    /// Order-book events.
    Book,
}

impl Kind {
    /// The kind whose columns (names and types) `schema` has; `None` when it has none's.
    pub fn of(schema: &Schema) -> Option<Self> {
        [
            (Kind::Trades, Trade::check_columns(schema)),
            (Kind::Quotes, Quote::check_columns(schema)),
            (Kind::Book, BookEvent::check_columns(schema)),
        ]
        .into_iter()
        .find_map(|(kind, fits)| fits.is_ok().then_some(kind))
    }

    fn events(self, batch: &RecordBatch) -> tickflow_core::Result<Vec<MarketEvent>> {
        Ok(match self {
            Kind::Trades => Trade::from_record_batch(batch)?
                .into_iter()
                .map(MarketEvent::Trade)
                .collect(),
            Kind::Quotes => Quote::from_record_batch(batch)?
                .into_iter()
                .map(MarketEvent::Quote)
                .collect(),
            Kind::Book => BookEvent::from_record_batch(batch)?
                .into_iter()
                .map(MarketEvent::Book)
                .collect(),
        })
    }
}

/// What a panic of the parquet crate said.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

thread_local! {
    /// Whether this thread is inside [`guarded`], whose panics are errors, not news.
    static GUARDING: Cell<bool> = const { Cell::new(false) };
    /// Where the last panic inside [`guarded`] on this thread happened.
    static PANICKED_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Puts a panic hook before the process's own, once: a panic inside [`guarded`] is noted
/// (where it happened) instead of printed, since it becomes the file's error; any other
/// panic goes to the hook that was there before.
fn keep_guarded_panics_quiet() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDING.with(Cell::get) {
                let at = info.location().map(|l| {
                    // A crate's source lies under the registry; its name and version say
                    // enough of where.
                    let file = l.file();
                    let file = file
                        .find("/registry/src/")
                        .and_then(|i| {
                            let rest = &file[i + "/registry/src/".len()..];
                            rest.find('/').map(|j| &rest[j + 1..])
                        })
                        .unwrap_or(file);
                    format!("{file}:{}", l.line())
                });
                PANICKED_AT.with(|p| *p.borrow_mut() = at);
            } else {
                before(info);
            }
        }));
    });
}

/// Runs a step of the parquet crate over a file's bytes. The crate panics on some damaged
/// data (a data page whose dictionary is missing, a footer that does not hold together)
/// where it should return an error; such a panic is taken as that error, and what panicked
/// (a reader, a builder) is not used again. The panic is not printed: the error says what
/// it said and where.
fn guarded<T, E: std::fmt::Display>(
    step: impl FnOnce() -> std::result::Result<T, E>,
) -> std::result::Result<T, String> {
    keep_guarded_panics_quiet();
    let outer = GUARDING.with(|g| g.replace(true));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(step));
    GUARDING.with(|g| g.set(outer));
    match caught {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(panic) => {
            let at = PANICKED_AT
                .with(|p| p.borrow_mut().take())
                .map(|at| format!(", at {at}"))
                .unwrap_or_default();
            Err(format!(
                "the Parquet decoder failed on damaged data ({}{at})",
                panic_text(&*panic)
            ))
        }
    }
}

/// The next batch of a reader (see [`guarded`]).
fn next_batch(
    batches: &mut ParquetRecordBatchReader,
) -> Option<std::result::Result<RecordBatch, String>> {
    guarded(|| batches.next().transpose()).transpose()
}

/// How an error about a file the Parquet reader cannot open begins.
const UNREADABLE: &str = "not a readable Parquet file: ";

fn open_builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let builder = guarded(|| ParquetRecordBatchReaderBuilder::try_new(file))
        .map_err(|e| Error::format(path, format!("{UNREADABLE}{e}")))?;
    // Only a damaged footer places a column chunk outside the file. The crate panics on a
    // negative offset (`guarded` would catch it) but reads on with a length past the file's
    // end: without this check, 30,000 damaged files of the property test took 208 s instead
    // of 7 s. Such a file is refused before any chunk is read.
    for (g, group) in builder.metadata().row_groups().iter().enumerate() {
        for column in group.columns() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or(column.data_page_offset());
            let len = column.compressed_size();
            let fits = start >= 0
                && len >= 0
                && (start as u64)
                    .checked_add(len as u64)
                    .is_some_and(|end| end <= size);
            if !fits {
                return Err(Error::format(
                    path,
                    format!(
                        "{UNREADABLE}its footer places column {} of row group {g} \
                         at bytes {start}..+{len}, outside the file's {size} bytes",
                        column.column_path()
                    ),
                ));
            }
        }
    }
    Ok(builder)
}

/// The kind of records of a Parquet file; `Err` says why it holds none of the market records.
pub fn sniff(path: &Path) -> Result<Kind, String> {
    let builder = open_builder(path).map_err(|e| {
        let reason = e.reason();
        let detail = reason
            .strip_prefix(UNREADABLE)
            .unwrap_or(&reason)
            .to_owned();
        format!("an unreadable Parquet file ({detail})")
    })?;
    Kind::of(builder.schema()).ok_or_else(|| {
        "a Parquet file of other records (not trades, quotes or book events)".to_owned()
    })
}

/// The instruments named in the file's metadata, by the file's instrument ids.
fn named(
    path: &Path,
    builder: &ParquetRecordBatchReaderBuilder<File>,
) -> Result<BTreeMap<u32, InstrumentSpec>> {
    let Some(json) = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|kv| kv.key == INSTRUMENTS_KEY))
        .and_then(|kv| kv.value.as_deref())
    else {
        return Ok(BTreeMap::new());
    };
    let table: Vec<Instrument> = serde_json::from_str(json).map_err(|e| {
        Error::format(
            path,
            format!("its {INSTRUMENTS_KEY} metadata does not parse: {e}"),
        )
    })?;
    Ok(table.into_iter().map(|i| (i.id.0, i.spec)).collect())
}

/// The instrument of a file that does not name it: its symbol, venue [`VENUE`].
fn unnamed(symbol: &str) -> InstrumentSpec {
    InstrumentSpec {
        symbol: symbol.to_owned(),
        venue: VENUE.into(),
        tick_size: Price::from_raw(1),
        lot_size: Quantity::from_raw(1),
        currency: "USD".into(),
    }
}

/// The instrument of a row: the one the metadata names under its id, when it has that
/// symbol; otherwise the row's symbol alone.
fn spec_of(named: &BTreeMap<u32, InstrumentSpec>, id: u32, symbol: &str) -> InstrumentSpec {
    match named.get(&id) {
        Some(spec) if spec.symbol == symbol => spec.clone(),
        _ => unnamed(symbol),
    }
}

/// The `instrument_id` and `symbol` columns of a batch.
fn id_columns(
    batch: &RecordBatch,
    at: [usize; 2],
) -> Option<(&arrow_array::UInt32Array, &arrow_array::StringArray)> {
    Some((
        batch.column(at[0]).as_primitive_opt::<UInt32Type>()?,
        batch.column(at[1]).as_string_opt::<i32>()?,
    ))
}

/// The instruments of a file's rows, by the file's instrument ids: read from its
/// `instrument_id` and `symbol` columns, described by its metadata where it names them.
fn file_instruments(path: &Path) -> Result<BTreeMap<u32, InstrumentSpec>> {
    let builder = open_builder(path)?;
    let named = named(path, &builder)?;
    let columns = ["instrument_id", "symbol"].map(|c| builder.schema().index_of(c));
    let [Ok(id_col), Ok(symbol_col)] = columns else {
        return Err(Error::format(path, "no instrument_id and symbol columns"));
    };
    let mask = ProjectionMask::roots(builder.parquet_schema(), [id_col, symbol_col]);
    let mut reader = guarded(|| {
        builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
    })
    .map_err(|e| Error::format(path, e))?;
    let mut found = BTreeMap::new();
    while let Some(batch) = next_batch(&mut reader) {
        // A file that cannot be read to its end still declares the instruments before the
        // break; reading says where it broke.
        let Ok(batch) = batch else { break };
        let Some((ids, symbols)) = id_columns(&batch, [0, 1]) else {
            return Err(Error::format(
                path,
                "instrument_id or symbol of another type",
            ));
        };
        for i in 0..batch.num_rows() {
            if ids.is_null(i) || symbols.is_null(i) {
                continue;
            }
            let id = ids.value(i);
            found
                .entry(id)
                .or_insert_with(|| spec_of(&named, id, symbols.value(i)));
        }
    }
    Ok(found)
}

/// Instruments a file declares.
pub fn instruments(path: &Path) -> Result<Vec<InstrumentSpec>> {
    let mut specs: Vec<InstrumentSpec> = file_instruments(path)?.into_values().collect();
    specs.sort_by(|a, b| (&a.venue, &a.symbol).cmp(&(&b.venue, &b.symbol)));
    specs.dedup_by(|a, b| a.venue == b.venue && a.symbol == b.symbol);
    Ok(specs)
}

/// Reader of one Parquet file.
pub struct ParquetReader {
    batches: ParquetRecordBatchReader,
    kind: Kind,
    origin: String,
    source: u16,
    /// The instruments the file's metadata names, by the file's ids.
    named: BTreeMap<u32, InstrumentSpec>,
    registry: InstrumentRegistry,
    /// Where the `instrument_id` and `symbol` columns are.
    id_columns: [usize; 2],
    /// The file's instrument ids → the job's (`None`: not declared), looked up on first sight.
    ids: HashMap<u32, Option<InstrumentId>>,
    /// Rows read so far.
    rows: u64,
    pending: VecDeque<SourceItem>,
    done: bool,
}

impl ParquetReader {
    /// Opens a file.
    pub fn open(path: &Path, source: u16, registry: &InstrumentRegistry) -> Result<Self> {
        let builder = open_builder(path)?;
        let kind = Kind::of(builder.schema()).ok_or_else(|| {
            Error::format(path, "not a Parquet file of trades, quotes or book events")
        })?;
        let named = named(path, &builder)?;
        let at = ["instrument_id", "symbol"].map(|c| builder.schema().index_of(c));
        let [Ok(id_col), Ok(symbol_col)] = at else {
            return Err(Error::format(path, "no instrument_id and symbol columns"));
        };
        let batches = guarded(|| builder.with_batch_size(BATCH_ROWS).build())
            .map_err(|e| Error::format(path, e))?;
        Ok(Self {
            batches,
            kind,
            origin: path.display().to_string(),
            source,
            named,
            registry: registry.clone(),
            id_columns: [id_col, symbol_col],
            ids: HashMap::new(),
            rows: 0,
            pending: VecDeque::new(),
            done: false,
        })
    }

    /// Looks up the instruments of the batch's rows not seen before.
    fn learn(&mut self, batch: &RecordBatch) {
        let Some((ids, symbols)) = id_columns(batch, self.id_columns) else {
            // Rows without them do not convert either, and are rejected as such.
            return;
        };
        for i in 0..batch.num_rows() {
            if ids.is_null(i) || symbols.is_null(i) || self.ids.contains_key(&ids.value(i)) {
                continue;
            }
            let spec = spec_of(&self.named, ids.value(i), symbols.value(i));
            let job = self.registry.lookup(&spec.venue, &spec.symbol);
            self.ids.insert(ids.value(i), job);
        }
    }

    /// The rows of `batch` (the file's rows after `self.rows`) as items: records with the job's
    /// instrument ids, numbered by row; a row that does not convert is a reject.
    fn take(&mut self, batch: &RecordBatch) {
        let first = self.rows;
        self.rows += batch.num_rows() as u64;
        self.learn(batch);
        match self.kind.events(batch) {
            Ok(events) => {
                for (i, e) in events.into_iter().enumerate() {
                    let item = self.item(first + 1 + i as u64, Ok(e));
                    self.pending.push_back(item);
                }
            }
            // Row by row, to keep every row that converts.
            Err(_) => {
                for i in 0..batch.num_rows() {
                    let row = self
                        .kind
                        .events(&batch.slice(i, 1))
                        .map(|mut v| v.remove(0));
                    let item = self.item(first + 1 + i as u64, row);
                    self.pending.push_back(item);
                }
            }
        }
    }

    /// Row `row` (1-based) of the file, converted or not.
    fn item(&self, row: u64, event: tickflow_core::Result<MarketEvent>) -> SourceItem {
        let seq = SeqNo::at_line(self.source, row, 0);
        let bad = |detail: String| {
            SourceItem::Bad(bad_row(&self.origin, seq, RejectReason::Malformed, detail))
        };
        let event = match event {
            Ok(e) => e,
            Err(e) => return bad(e.to_string()),
        };
        let Some(&Some(id)) = self.ids.get(&event.instrument().0) else {
            return bad(format!(
                "instrument id {} was not in the file when the job was planned",
                event.instrument().0
            ));
        };
        SourceItem::Event(match event {
            MarketEvent::Trade(t) => MarketEvent::Trade(Trade {
                instrument: id,
                seq,
                ..t
            }),
            MarketEvent::Quote(q) => MarketEvent::Quote(Quote {
                instrument: id,
                seq,
                ..q
            }),
            MarketEvent::Book(b) => MarketEvent::Book(BookEvent {
                instrument: id,
                seq,
                ..b
            }),
        })
    }
}

impl PartReader for ParquetReader {
    fn next_item(&mut self) -> Option<SourceItem> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            match next_batch(&mut self.batches) {
                Some(Ok(batch)) => self.take(&batch),
                Some(Err(e)) => {
                    // A damaged file gives every row before the damage, then says so once.
                    self.done = true;
                    let row = self.rows + 1;
                    return Some(SourceItem::Bad(bad_row(
                        &self.origin,
                        SeqNo::at_line(self.source, row, 0),
                        RejectReason::Malformed,
                        format!("the file cannot be read further: {e}"),
                    )));
                }
                None => self.done = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_guarded_is_the_error_it_should_have_been() {
        assert_eq!(guarded(|| Ok::<_, String>(3)), Ok(3));
        assert_eq!(guarded(|| Err::<u8, _>("bad page")), Err("bad page".into()));
        let line = line!() + 1;
        let err = guarded(|| -> std::result::Result<u8, String> { panic!("page {} lost", 4) })
            .unwrap_err();
        assert_eq!(
            err,
            format!(
                "the Parquet decoder failed on damaged data (page 4 lost, at {}:{line})",
                file!()
            )
        );
        // Guarding ends with the step, also when it was nested in another.
        let inner = guarded(|| {
            let e = guarded(|| -> std::result::Result<(), String> { panic!("inner") });
            assert!(GUARDING.with(Cell::get));
            Ok::<_, String>(e)
        });
        assert!(inner.unwrap().unwrap_err().contains("(inner, at "));
        assert!(!GUARDING.with(Cell::get));
        assert_eq!(PANICKED_AT.with(|p| p.borrow().clone()), None);
    }
}
