//! Arrow schemas and `RecordBatch` conversion for every record type.
//!
//! Prices and sizes are `Decimal128(38, 9)`, the exact raw fixed-point value (no float
//! rounding on the way to Parquet or SQL). Times are `Timestamp(Nanosecond, "UTC")`. Each
//! batch carries `instrument_id` and the instrument's `symbol` so files are readable alone.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Decimal128Builder, StringBuilder, TimestampNanosecondBuilder, UInt32Builder,
    UInt64Builder,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Decimal128Array, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::{Error, Result};
use crate::fixed::{Price, Quantity};
use crate::instrument::{InstrumentId, InstrumentRegistry};
use crate::records::{
    Bar, BarKind, BookAction, BookEvent, IndicatorRow, Prediction, Quote, Reject, RejectReason,
    SeqNo, Side, Signal, Trade,
};
use crate::time::{Duration, Timestamp};
use crate::trading::{
    Fill, FillStatus, Order, OrderType, PortfolioValue, Position, RiskReason, RiskReject,
    TimeInForce,
};

/// Decimal precision used for every fixed-point column.
pub const DECIMAL_PRECISION: u8 = 38;

/// A record type with an Arrow schema.
pub trait ArrowRecord: Sized {
    /// The stream name of this record type (`trades`, `bars`, ...).
    const NAME: &'static str;
    /// The Arrow schema (for record types whose columns depend on the data, the columns
    /// every batch has).
    fn schema() -> SchemaRef;
    /// The schema of a batch of these rows; the same as [`ArrowRecord::schema`] unless the
    /// columns depend on the data.
    fn schema_for(_rows: &[Self]) -> SchemaRef {
        Self::schema()
    }
    /// Converts rows into one batch; symbols come from the registry.
    fn to_record_batch(rows: &[Self], registry: &InstrumentRegistry) -> Result<RecordBatch>;
    /// Converts a batch of this schema back into rows.
    fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Self>>;
    /// Whether `have` holds every column of [`ArrowRecord::schema`] with its type (it may hold
    /// more): what [`ArrowRecord::from_record_batch`] checks before reading a row.
    fn check_columns(have: &Schema) -> Result<()> {
        check_columns(have, Self::NAME, &Self::schema())
    }
}

/// Checks that `have` holds every column of `want` with its type, naming the first that it
/// lacks or holds with another type.
fn check_columns(have: &Schema, record: &'static str, want: &Schema) -> Result<()> {
    for field in want.fields() {
        match have.field_with_name(field.name()) {
            Err(_) => {
                return Err(Error::Schema {
                    record,
                    reason: format!("missing column {:?}", field.name()),
                });
            }
            Ok(found) if found.data_type() != field.data_type() => {
                return Err(Error::Schema {
                    record,
                    reason: format!(
                        "column {:?} has type {}, expected {}",
                        field.name(),
                        found.data_type(),
                        field.data_type()
                    ),
                });
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}
fn dec_type() -> DataType {
    DataType::Decimal128(DECIMAL_PRECISION, crate::fixed::FIXED_DECIMALS as i8)
}
fn f(name: &str, dt: DataType, nullable: bool) -> Field {
    Field::new(name, dt, nullable)
}

/// Column builders for the shapes used here.
struct Cols {
    out: Vec<ArrayRef>,
}

impl Cols {
    fn new() -> Self {
        Self { out: Vec::new() }
    }
    fn u32(&mut self, it: impl Iterator<Item = Option<u32>>) {
        let mut b = UInt32Builder::new();
        it.for_each(|v| b.append_option(v));
        self.out.push(Arc::new(b.finish()));
    }
    fn u64(&mut self, it: impl Iterator<Item = Option<u64>>) {
        let mut b = UInt64Builder::new();
        it.for_each(|v| b.append_option(v));
        self.out.push(Arc::new(b.finish()));
    }
    fn ts(&mut self, it: impl Iterator<Item = Option<Timestamp>>) {
        let mut b = TimestampNanosecondBuilder::new().with_timezone("UTC");
        it.for_each(|v| b.append_option(v.map(|t| t.0)));
        self.out.push(Arc::new(b.finish()));
    }
    fn dec(&mut self, it: impl Iterator<Item = Option<i64>>) -> Result<()> {
        let mut b = Decimal128Builder::new()
            .with_precision_and_scale(DECIMAL_PRECISION, crate::fixed::FIXED_DECIMALS as i8)?;
        it.for_each(|v| b.append_option(v.map(i128::from)));
        self.out.push(Arc::new(b.finish()));
        Ok(())
    }
    fn str<'a>(&mut self, it: impl Iterator<Item = Option<&'a str>>) {
        let mut b = StringBuilder::new();
        it.for_each(|v| b.append_option(v));
        self.out.push(Arc::new(b.finish()));
    }
    fn bool(&mut self, it: impl Iterator<Item = bool>) {
        let mut b = BooleanBuilder::new();
        it.for_each(|v| b.append_value(v));
        self.out.push(Arc::new(b.finish()));
    }
    fn finish(self, schema: SchemaRef) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(schema, self.out)?)
    }
}

/// The key of the Parquet (and Arrow) metadata entry in which files of records name their
/// instruments: a JSON array of [`Instrument`](crate::Instrument)s (id, symbol, venue, tick and
/// lot size, currency), so that a replay of the file knows them as the job that wrote it did.
pub const INSTRUMENTS_KEY: &str = "tickflow.instruments";

/// Typed, named column access with schema errors that name the column.
struct Reader<'a> {
    batch: &'a RecordBatch,
    record: &'static str,
}

impl<'a> Reader<'a> {
    /// Checks every column of `schema` is present with its type (decimals with their precision
    /// and scale), before any row is read.
    fn new(batch: &'a RecordBatch, record: &'static str, schema: SchemaRef) -> Result<Self> {
        check_columns(&batch.schema(), record, &schema)?;
        Ok(Self { batch, record })
    }

    fn col<T: Array + 'static>(&self, name: &str) -> Result<&'a T> {
        let idx = self
            .batch
            .schema()
            .index_of(name)
            .map_err(|_| Error::Schema {
                record: self.record,
                reason: format!("missing column {name:?}"),
            })?;
        self.batch
            .column(idx)
            .as_any()
            .downcast_ref::<T>()
            .ok_or_else(|| Error::Schema {
                record: self.record,
                reason: format!(
                    "column {name:?} has type {}",
                    self.batch.column(idx).data_type()
                ),
            })
    }
    fn column<'n, A: Array + 'static>(&self, name: &'n str) -> Result<Col<'a, 'n, A>> {
        Ok(Col {
            array: self.col::<A>(name)?,
            name,
            record: self.record,
        })
    }
    /// A decimal column (its scale was checked with its type by [`Reader::new`]).
    fn decimals<'n>(&self, name: &'n str) -> Result<Col<'a, 'n, Decimal128Array>> {
        self.column::<Decimal128Array>(name)
    }
    fn ts(&self, name: &str, i: usize) -> Result<Option<Timestamp>> {
        Ok(self.column::<TimestampNanosecondArray>(name)?.opt(i))
    }
    fn req_ts(&self, name: &str, i: usize) -> Result<Timestamp> {
        self.column::<TimestampNanosecondArray>(name)?.req(i)
    }
    fn dec(&self, name: &str, i: usize) -> Result<Option<i64>> {
        self.decimals(name)?.opt(i)
    }
    fn req_dec(&self, name: &str, i: usize) -> Result<i64> {
        self.decimals(name)?.req(i)
    }
    fn u32(&self, name: &str, i: usize) -> Result<Option<u32>> {
        Ok(self.column::<UInt32Array>(name)?.opt(i))
    }
    fn req_u64(&self, name: &str, i: usize) -> Result<u64> {
        self.column::<UInt64Array>(name)?.req(i)
    }
    fn req_str(&self, name: &str, i: usize) -> Result<&'a str> {
        self.column::<StringArray>(name)?.req(i)
    }
    fn instrument(&self, i: usize) -> Result<InstrumentId> {
        self.column::<UInt32Array>("instrument_id")?
            .req(i)
            .map(InstrumentId)
    }
    fn null(&self, name: &str, i: usize) -> Error {
        null(self.record, name, i)
    }
    fn bad(&self, name: &str, value: &str) -> Error {
        unknown(self.record, name, value)
    }
}

fn null(record: &'static str, name: &str, i: usize) -> Error {
    Error::Schema {
        record,
        reason: format!("null in required column {name:?} (row {i} of the batch)"),
    }
}

fn unknown(record: &'static str, name: &str, value: &str) -> Error {
    Error::Schema {
        record,
        reason: format!("column {name:?} has unknown value {value:?}"),
    }
}

/// One column of a batch, looked up and type-checked once: the market records, read by the
/// million from Parquet files, take their columns once per batch and read them row by row.
struct Col<'a, 'n, A> {
    array: &'a A,
    name: &'n str,
    record: &'static str,
}

impl<A: Array> Col<'_, '_, A> {
    fn bad(&self, value: &str) -> Error {
        unknown(self.record, self.name, value)
    }
    /// The value of row `i`, `None` when it is null.
    fn get<T>(&self, i: usize, value: impl FnOnce(&A, usize) -> T) -> Option<T> {
        self.array.is_valid(i).then(|| value(self.array, i))
    }
    /// The value of row `i`, which must not be null.
    fn need<T>(&self, i: usize, value: impl FnOnce(&A, usize) -> T) -> Result<T> {
        self.get(i, value)
            .ok_or_else(|| null(self.record, self.name, i))
    }
}

impl Col<'_, '_, TimestampNanosecondArray> {
    fn opt(&self, i: usize) -> Option<Timestamp> {
        self.get(i, |a, i| Timestamp(a.value(i)))
    }
    fn req(&self, i: usize) -> Result<Timestamp> {
        self.need(i, |a, i| Timestamp(a.value(i)))
    }
}

impl Col<'_, '_, Decimal128Array> {
    fn opt(&self, i: usize) -> Result<Option<i64>> {
        self.get(i, |a, i| a.value(i))
            .map(|v| i64::try_from(v).map_err(|_| Error::OutOfRange { what: "decimal" }))
            .transpose()
    }
    fn req(&self, i: usize) -> Result<i64> {
        self.opt(i)?.ok_or_else(|| null(self.record, self.name, i))
    }
}

impl Col<'_, '_, UInt32Array> {
    fn opt(&self, i: usize) -> Option<u32> {
        self.get(i, |a, i| a.value(i))
    }
    fn req(&self, i: usize) -> Result<u32> {
        self.need(i, |a, i| a.value(i))
    }
}

impl Col<'_, '_, UInt64Array> {
    fn opt(&self, i: usize) -> Option<u64> {
        self.get(i, |a, i| a.value(i))
    }
    fn req(&self, i: usize) -> Result<u64> {
        self.need(i, |a, i| a.value(i))
    }
}

impl<'a> Col<'a, '_, StringArray> {
    fn opt(&self, i: usize) -> Option<&'a str> {
        let array = self.array;
        array.is_valid(i).then(|| array.value(i))
    }
    fn req(&self, i: usize) -> Result<&'a str> {
        self.opt(i).ok_or_else(|| null(self.record, self.name, i))
    }
}

impl Col<'_, '_, BooleanArray> {
    /// A null flag is not set.
    fn flag(&self, i: usize) -> bool {
        self.get(i, |a, i| a.value(i)).unwrap_or(false)
    }
}

fn head_fields() -> Vec<Field> {
    vec![
        f("instrument_id", DataType::UInt32, false),
        f("symbol", DataType::Utf8, false),
    ]
}

fn symbols<'r, T>(
    rows: &'r [T],
    reg: &'r InstrumentRegistry,
    id: impl Fn(&T) -> InstrumentId + 'r,
) -> impl Iterator<Item = Option<&'r str>> + 'r {
    rows.iter().map(move |r| Some(reg.symbol(id(r))))
}

impl ArrowRecord for Trade {
    const NAME: &'static str = "trades";
    fn schema() -> SchemaRef {
        let mut fields = head_fields();
        fields.extend([
            f("ts_event", ts_type(), false),
            f("ts_recv", ts_type(), false),
            f("price", dec_type(), false),
            f("size", dec_type(), false),
            f("aggressor", DataType::Utf8, false),
            f("trade_id", DataType::UInt64, true),
            f("suspicious", DataType::Boolean, false),
            f("seq", DataType::UInt64, false),
        ]);
        Arc::new(Schema::new(fields))
    }
    fn to_record_batch(rows: &[Self], reg: &InstrumentRegistry) -> Result<RecordBatch> {
        let mut c = Cols::new();
        c.u32(rows.iter().map(|r| Some(r.instrument.0)));
        c.str(symbols(rows, reg, |r| r.instrument));
        c.ts(rows.iter().map(|r| Some(r.ts_event)));
        c.ts(rows.iter().map(|r| Some(r.ts_recv)));
        c.dec(rows.iter().map(|r| Some(r.price.raw())))?;
        c.dec(rows.iter().map(|r| Some(r.size.raw())))?;
        c.str(rows.iter().map(|r| Some(r.aggressor.as_str())));
        c.u64(rows.iter().map(|r| r.trade_id));
        c.bool(rows.iter().map(|r| r.suspicious));
        c.u64(rows.iter().map(|r| Some(r.seq.0)));
        c.finish(Self::schema())
    }
    fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let r = Reader::new(batch, Self::NAME, Self::schema())?;
        let (instrument, ts_event, ts_recv) = (
            r.column::<UInt32Array>("instrument_id")?,
            r.column::<TimestampNanosecondArray>("ts_event")?,
            r.column::<TimestampNanosecondArray>("ts_recv")?,
        );
        let (price, size) = (r.decimals("price")?, r.decimals("size")?);
        let aggressor = r.column::<StringArray>("aggressor")?;
        let (trade_id, suspicious, seq) = (
            r.column::<UInt64Array>("trade_id")?,
            r.column::<BooleanArray>("suspicious")?,
            r.column::<UInt64Array>("seq")?,
        );
        (0..batch.num_rows())
            .map(|i| {
                let side = aggressor.req(i)?;
                Ok(Trade {
                    instrument: InstrumentId(instrument.req(i)?),
                    ts_event: ts_event.req(i)?,
                    ts_recv: ts_recv.req(i)?,
                    price: Price::from_raw(price.req(i)?),
                    size: Quantity::from_raw(size.req(i)?),
                    aggressor: Side::from_name(side).ok_or_else(|| aggressor.bad(side))?,
                    trade_id: trade_id.opt(i),
                    suspicious: suspicious.flag(i),
                    seq: SeqNo(seq.req(i)?),
                })
            })
            .collect()
    }
}

impl ArrowRecord for Quote {
    const NAME: &'static str = "quotes";
    fn schema() -> SchemaRef {
        let mut fields = head_fields();
        fields.extend([
            f("ts_event", ts_type(), false),
            f("ts_recv", ts_type(), false),
            f("bid", dec_type(), true),
            f("bid_size", dec_type(), false),
            f("ask", dec_type(), true),
            f("ask_size", dec_type(), false),
            f("update_id", DataType::UInt64, true),
            f("suspicious", DataType::Boolean, false),
            f("seq", DataType::UInt64, false),
        ]);
        Arc::new(Schema::new(fields))
    }
    fn to_record_batch(rows: &[Self], reg: &InstrumentRegistry) -> Result<RecordBatch> {
        let mut c = Cols::new();
        c.u32(rows.iter().map(|r| Some(r.instrument.0)));
        c.str(symbols(rows, reg, |r| r.instrument));
        c.ts(rows.iter().map(|r| Some(r.ts_event)));
        c.ts(rows.iter().map(|r| Some(r.ts_recv)));
        c.dec(rows.iter().map(|r| r.bid.map(Price::raw)))?;
        c.dec(rows.iter().map(|r| Some(r.bid_size.raw())))?;
        c.dec(rows.iter().map(|r| r.ask.map(Price::raw)))?;
        c.dec(rows.iter().map(|r| Some(r.ask_size.raw())))?;
        c.u64(rows.iter().map(|r| r.update_id));
        c.bool(rows.iter().map(|r| r.suspicious));
        c.u64(rows.iter().map(|r| Some(r.seq.0)));
        c.finish(Self::schema())
    }
    fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let r = Reader::new(batch, Self::NAME, Self::schema())?;
        let (instrument, ts_event, ts_recv) = (
            r.column::<UInt32Array>("instrument_id")?,
            r.column::<TimestampNanosecondArray>("ts_event")?,
            r.column::<TimestampNanosecondArray>("ts_recv")?,
        );
        let (bid, bid_size, ask, ask_size) = (
            r.decimals("bid")?,
            r.decimals("bid_size")?,
            r.decimals("ask")?,
            r.decimals("ask_size")?,
        );
        let (update_id, suspicious, seq) = (
            r.column::<UInt64Array>("update_id")?,
            r.column::<BooleanArray>("suspicious")?,
            r.column::<UInt64Array>("seq")?,
        );
        (0..batch.num_rows())
            .map(|i| {
                Ok(Quote {
                    instrument: InstrumentId(instrument.req(i)?),
                    ts_event: ts_event.req(i)?,
                    ts_recv: ts_recv.req(i)?,
                    bid: bid.opt(i)?.map(Price::from_raw),
                    bid_size: Quantity::from_raw(bid_size.req(i)?),
                    ask: ask.opt(i)?.map(Price::from_raw),
                    ask_size: Quantity::from_raw(ask_size.req(i)?),
                    update_id: update_id.opt(i),
                    suspicious: suspicious.flag(i),
                    seq: SeqNo(seq.req(i)?),
                })
            })
            .collect()
    }
}

impl ArrowRecord for BookEvent {
    const NAME: &'static str = "book";
    fn schema() -> SchemaRef {
        let mut fields = head_fields();
        fields.extend([
            f("ts_event", ts_type(), false),
            f("ts_recv", ts_type(), false),
            f("action", DataType::Utf8, false),
            f("side", DataType::Utf8, false),
            f("price", dec_type(), false),
            f("size", dec_type(), false),
            f("order_id", DataType::UInt64, true),
            f("suspicious", DataType::Boolean, false),
            f("seq", DataType::UInt64, false),
        ]);
        Arc::new(Schema::new(fields))
    }
    fn to_record_batch(rows: &[Self], reg: &InstrumentRegistry) -> Result<RecordBatch> {
        let mut c = Cols::new();
        c.u32(rows.iter().map(|r| Some(r.instrument.0)));
        c.str(symbols(rows, reg, |r| r.instrument));
        c.ts(rows.iter().map(|r| Some(r.ts_event)));
        c.ts(rows.iter().map(|r| Some(r.ts_recv)));
        c.str(rows.iter().map(|r| Some(r.action.as_str())));
        c.str(rows.iter().map(|r| Some(r.side.as_str())));
        c.dec(rows.iter().map(|r| Some(r.price.raw())))?;
        c.dec(rows.iter().map(|r| Some(r.size.raw())))?;
        c.u64(rows.iter().map(|r| r.order_id));
        c.bool(rows.iter().map(|r| r.suspicious));
        c.u64(rows.iter().map(|r| Some(r.seq.0)));
        c.finish(Self::schema())
    }
    fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let r = Reader::new(batch, Self::NAME, Self::schema())?;
        let (instrument, ts_event, ts_recv) = (
            r.column::<UInt32Array>("instrument_id")?,
            r.column::<TimestampNanosecondArray>("ts_event")?,
            r.column::<TimestampNanosecondArray>("ts_recv")?,
        );
        let (actions, sides) = (
            r.column::<StringArray>("action")?,
            r.column::<StringArray>("side")?,
        );
        let (price, size) = (r.decimals("price")?, r.decimals("size")?);
        let (order_id, suspicious, seq) = (
            r.column::<UInt64Array>("order_id")?,
            r.column::<BooleanArray>("suspicious")?,
            r.column::<UInt64Array>("seq")?,
        );
        (0..batch.num_rows())
            .map(|i| {
                let (action, side) = (actions.req(i)?, sides.req(i)?);
                Ok(BookEvent {
                    instrument: InstrumentId(instrument.req(i)?),
                    ts_event: ts_event.req(i)?,
                    ts_recv: ts_recv.req(i)?,
                    action: BookAction::from_name(action).ok_or_else(|| actions.bad(action))?,
                    side: Side::from_name(side).ok_or_else(|| sides.bad(side))?,
                    price: Price::from_raw(price.req(i)?),
                    size: Quantity::from_raw(size.req(i)?),
                    order_id: order_id.opt(i),
                    suspicious: suspicious.flag(i),
                    seq: SeqNo(seq.req(i)?),
                })
            })
            .collect()
    }
}

impl ArrowRecord for Bar {
    const NAME: &'static str = "bars";
    fn schema() -> SchemaRef {
        let mut fields = head_fields();
        fields.extend([
            f("bar_type", DataType::Utf8, false),
            f("start", ts_type(), false),
            f("end", ts_type(), false),
            f("open", dec_type(), false),
            f("high", dec_type(), false),
            f("low", dec_type(), false),
            f("close", dec_type(), false),
            f("volume", dec_type(), false),
            f("vwap", dec_type(), false),
            f("trade_count", DataType::UInt64, false),
        ]);
        Arc::new(Schema::new(fields))
    }
    fn to_record_batch(rows: &[Self], reg: &InstrumentRegistry) -> Result<RecordBatch> {
        let mut c = Cols::new();
        c.u32(rows.iter().map(|r| Some(r.instrument.0)));
        c.str(symbols(rows, reg, |r| r.instrument));
        let kinds: Vec<String> = rows.iter().map(|r| r.kind.to_string()).collect();
        c.str(kinds.iter().map(|k| Some(k.as_str())));
        c.ts(rows.iter().map(|r| Some(r.start)));
        c.ts(rows.iter().map(|r| Some(r.end)));
        c.dec(rows.iter().map(|r| Some(r.open.raw())))?;
        c.dec(rows.iter().map(|r| Some(r.high.raw())))?;
        c.dec(rows.iter().map(|r| Some(r.low.raw())))?;
        c.dec(rows.iter().map(|r| Some(r.close.raw())))?;
        c.dec(rows.iter().map(|r| Some(r.volume.raw())))?;
        c.dec(rows.iter().map(|r| Some(r.vwap.raw())))?;
        c.u64(rows.iter().map(|r| Some(r.trade_count)));
        c.finish(Self::schema())
    }
    fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let r = Reader::new(batch, Self::NAME, Self::schema())?;
        (0..batch.num_rows())
            .map(|i| {
                let kind_text = r.req_str("bar_type", i)?;
                let kind = parse_bar_kind(kind_text).ok_or_else(|| r.bad("bar_type", kind_text))?;
                Ok(Bar {
                    instrument: r.instrument(i)?,
                    kind,
                    start: r.req_ts("start", i)?,
                    end: r.req_ts("end", i)?,
                    open: Price::from_raw(r.req_dec("open", i)?),
                    high: Price::from_raw(r.req_dec("high", i)?),
                    low: Price::from_raw(r.req_dec("low", i)?),
                    close: Price::from_raw(r.req_dec("close", i)?),
                    volume: Quantity::from_raw(r.req_dec("volume", i)?),
                    vwap: Price::from_raw(r.req_dec("vwap", i)?),
                    trade_count: r.req_u64("trade_count", i)?,
                })
            })
            .collect()
    }
}

/// Parses the `Display` form of a [`BarKind`] (`time:1m`, `volume:10000`, `mid:1m`).
pub fn parse_bar_kind(text: &str) -> Option<BarKind> {
    let (kind, size) = text.split_once(':')?;
    match kind {
        "time" => Duration::parse(size).ok().map(BarKind::Time),
        "volume" => Quantity::parse(size).ok().map(BarKind::Volume),
        "mid" => Duration::parse(size).ok().map(BarKind::Mid),
        _ => None,
    }
}

impl ArrowRecord for Reject {
    const NAME: &'static str = "rejects";
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            f("instrument_id", DataType::UInt32, true),
            f("symbol", DataType::Utf8, true),
            f("ts_event", ts_type(), true),
            f("reason", DataType::Utf8, false),
            f("detail", DataType::Utf8, false),
            f("origin", DataType::Utf8, false),
            f("line", DataType::UInt64, false),
            f("seq", DataType::UInt64, false),
        ]))
    }
    fn to_record_batch(rows: &[Self], reg: &InstrumentRegistry) -> Result<RecordBatch> {
        let mut c = Cols::new();
        c.u32(rows.iter().map(|r| r.instrument.map(|i| i.0)));
        c.str(rows.iter().map(|r| r.instrument.map(|i| reg.symbol(i))));
        c.ts(rows.iter().map(|r| r.ts_event));
        c.str(rows.iter().map(|r| Some(r.reason.as_str())));
        c.str(rows.iter().map(|r| Some(r.detail.as_str())));
        c.str(rows.iter().map(|r| Some(r.origin.as_str())));
        c.u64(rows.iter().map(|r| Some(r.line)));
        c.u64(rows.iter().map(|r| Some(r.seq.0)));
        c.finish(Self::schema())
    }
    fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let r = Reader::new(batch, Self::NAME, Self::schema())?;
        (0..batch.num_rows())
            .map(|i| {
                let reason = r.req_str("reason", i)?;
                Ok(Reject {
                    instrument: r.u32("instrument_id", i)?.map(InstrumentId),
                    ts_event: r.ts("ts_event", i)?,
                    reason: RejectReason::from_name(reason)
                        .ok_or_else(|| r.bad("reason", reason))?,
                    detail: r.req_str("detail", i)?.to_owned(),
                    origin: r.req_str("origin", i)?.to_owned(),
                    line: r.req_u64("line", i)?,
                    seq: SeqNo(r.req_u64("seq", i)?),
                })
            })
            .collect()
    }
}

impl ArrowRecord for Signal {
    const NAME: &'static str = "signals";
    fn schema() -> SchemaRef {
        let mut fields = head_fields();
        fields.extend([
            f("ts_event", ts_type(), false),
            f("side", DataType::Utf8, false),
            f("strength", DataType::Float64, false),
            f("reason", DataType::Utf8, false),
        ]);
        Arc::new(Schema::new(fields))
    }
    fn to_record_batch(rows: &[Self], reg: &InstrumentRegistry) -> Result<RecordBatch> {
        let mut c = Cols::new();
        c.u32(rows.iter().map(|r| Some(r.instrument.0)));
        c.str(symbols(rows, reg, |r| r.instrument));
        c.ts(rows.iter().map(|r| Some(r.ts_event)));
        c.str(rows.iter().map(|r| Some(r.side.as_str())));
        c.out.push(Arc::new(
            rows.iter()
                .map(|r| Some(r.strength))
                .collect::<arrow_array::Float64Array>(),
        ));
        c.str(rows.iter().map(|r| Some(&*r.reason)));
        c.finish(Self::schema())
    }
    fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let r = Reader::new(batch, Self::NAME, Self::schema())?;
        let strength = r.col::<arrow_array::Float64Array>("strength")?;
        (0..batch.num_rows())
            .map(|i| {
                let side = r.req_str("side", i)?;
                Ok(Signal {
                    instrument: r.instrument(i)?,
                    ts_event: r.req_ts("ts_event", i)?,
                    side: Side::from_name(side).ok_or_else(|| r.bad("side", side))?,
                    strength: strength.value(i),
                    reason: r.req_str("reason", i)?.into(),
                })
            })
            .collect()
    }
}

impl ArrowRecord for Prediction {
    const NAME: &'static str = "predictions";
    fn schema() -> SchemaRef {
        let mut fields = head_fields();
        fields.extend([
            f("ts_event", ts_type(), false),
            f("horizon", DataType::UInt32, false),
            f("p_up", DataType::Float64, false),
            f("expected_return", DataType::Float64, false),
            f("model_version", DataType::Utf8, false),
        ]);
        Arc::new(Schema::new(fields))
    }
    fn to_record_batch(rows: &[Self], reg: &InstrumentRegistry) -> Result<RecordBatch> {
        let mut c = Cols::new();
        c.u32(rows.iter().map(|r| Some(r.instrument.0)));
        c.str(symbols(rows, reg, |r| r.instrument));
        c.ts(rows.iter().map(|r| Some(r.ts_event)));
        c.u32(rows.iter().map(|r| Some(r.horizon)));
        for get in [|r: &Prediction| r.p_up, |r: &Prediction| r.expected_return] {
            c.out.push(Arc::new(
                rows.iter()
                    .map(|r| Some(get(r)))
                    .collect::<arrow_array::Float64Array>(),
            ));
        }
        c.str(rows.iter().map(|r| Some(&*r.model_version)));
        c.finish(Self::schema())
    }
    fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let r = Reader::new(batch, Self::NAME, Self::schema())?;
        let p_up = r.col::<arrow_array::Float64Array>("p_up")?;
        let expected = r.col::<arrow_array::Float64Array>("expected_return")?;
        (0..batch.num_rows())
            .map(|i| {
                Ok(Prediction {
                    instrument: r.instrument(i)?,
                    ts_event: r.req_ts("ts_event", i)?,
                    horizon: r.u32("horizon", i)?.ok_or_else(|| r.null("horizon", i))?,
                    p_up: p_up.value(i),
                    expected_return: expected.value(i),
                    model_version: r.req_str("model_version", i)?.into(),
                })
            })
            .collect()
    }
}

impl ArrowRecord for IndicatorRow {
    const NAME: &'static str = "indicators";
    fn schema() -> SchemaRef {
        let mut fields = head_fields();
        fields.push(f("end", ts_type(), false));
        Arc::new(Schema::new(fields))
    }
    fn schema_for(rows: &[Self]) -> SchemaRef {
        let mut fields = head_fields();
        fields.push(f("end", ts_type(), false));
        if let Some(first) = rows.first() {
            fields.extend(first.names.iter().map(|n| f(n, DataType::Float64, true)));
        }
        Arc::new(Schema::new(fields))
    }
    fn to_record_batch(rows: &[Self], reg: &InstrumentRegistry) -> Result<RecordBatch> {
        let mut c = Cols::new();
        c.u32(rows.iter().map(|r| Some(r.instrument.0)));
        c.str(symbols(rows, reg, |r| r.instrument));
        c.ts(rows.iter().map(|r| Some(r.end)));
        let width = rows.first().map_or(0, |r| r.names.len());
        if let Some(bad) = rows
            .iter()
            .find(|r| r.values.len() != width || r.names.len() != width)
        {
            return Err(Error::Schema {
                record: Self::NAME,
                reason: format!(
                    "rows of different widths ({} and {})",
                    width,
                    bad.values.len()
                ),
            });
        }
        for i in 0..width {
            let col: arrow_array::Float64Array = rows
                .iter()
                .map(|r| r.values[i].filter(|v| v.is_finite()))
                .collect();
            c.out.push(Arc::new(col));
        }
        c.finish(Self::schema_for(rows))
    }
    fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let r = Reader::new(batch, Self::NAME, Self::schema())?;
        let schema = batch.schema();
        let value_cols: Vec<usize> = (0..schema.fields().len())
            .filter(|&i| {
                !matches!(
                    schema.field(i).name().as_str(),
                    "instrument_id" | "symbol" | "end"
                )
            })
            .collect();
        let names: Arc<[String]> = value_cols
            .iter()
            .map(|&i| schema.field(i).name().clone())
            .collect();
        let cols = value_cols
            .iter()
            .map(|&i| {
                batch
                    .column(i)
                    .as_any()
                    .downcast_ref::<arrow_array::Float64Array>()
                    .ok_or_else(|| Error::Schema {
                        record: Self::NAME,
                        reason: format!("column {:?} is not Float64", schema.field(i).name()),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        (0..batch.num_rows())
            .map(|i| {
                Ok(IndicatorRow {
                    instrument: r.instrument(i)?,
                    end: r.req_ts("end", i)?,
                    names: names.clone(),
                    values: cols
                        .iter()
                        .map(|c| c.is_valid(i).then(|| c.value(i)))
                        .collect(),
                })
            })
            .collect()
    }
}

fn order_fields() -> Vec<Field> {
    let mut fields = head_fields();
    fields.extend([
        f("order_id", DataType::UInt64, false),
        f("ts_event", ts_type(), false),
        f("side", DataType::Utf8, false),
        f("order_type", DataType::Utf8, false),
        f("tif", DataType::Utf8, false),
        f("limit_price", dec_type(), true),
        f("quantity", dec_type(), false),
        f("reference_price", dec_type(), false),
        f("reason", DataType::Utf8, false),
    ]);
    fields
}

fn order_cols<'a>(
    c: &mut Cols,
    rows: impl Iterator<Item = &'a Order> + Clone,
    reg: &InstrumentRegistry,
) -> Result<()> {
    c.u32(rows.clone().map(|r| Some(r.instrument.0)));
    c.str(rows.clone().map(|r| Some(reg.symbol(r.instrument))));
    c.u64(rows.clone().map(|r| Some(r.id)));
    c.ts(rows.clone().map(|r| Some(r.ts_event)));
    c.str(rows.clone().map(|r| Some(r.side.as_str())));
    c.str(rows.clone().map(|r| Some(r.order_type.as_str())));
    c.str(rows.clone().map(|r| Some(r.tif.as_str())));
    c.dec(rows.clone().map(|r| r.limit.map(Price::raw)))?;
    c.dec(rows.clone().map(|r| Some(r.quantity.raw())))?;
    c.dec(rows.clone().map(|r| Some(r.reference.raw())))?;
    c.str(rows.map(|r| Some(&*r.reason)));
    Ok(())
}

fn read_order(r: &Reader<'_>, i: usize) -> Result<Order> {
    let side = r.req_str("side", i)?;
    let ty = r.req_str("order_type", i)?;
    let tif = r.req_str("tif", i)?;
    Ok(Order {
        id: r.req_u64("order_id", i)?,
        instrument: r.instrument(i)?,
        ts_event: r.req_ts("ts_event", i)?,
        side: Side::from_name(side).ok_or_else(|| r.bad("side", side))?,
        order_type: OrderType::from_name(ty).ok_or_else(|| r.bad("order_type", ty))?,
        tif: TimeInForce::from_name(tif).ok_or_else(|| r.bad("tif", tif))?,
        limit: r.dec("limit_price", i)?.map(Price::from_raw),
        quantity: Quantity::from_raw(r.req_dec("quantity", i)?),
        reference: Price::from_raw(r.req_dec("reference_price", i)?),
        reason: r.req_str("reason", i)?.into(),
    })
}

impl ArrowRecord for Order {
    const NAME: &'static str = "orders";
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(order_fields()))
    }
    fn to_record_batch(rows: &[Self], reg: &InstrumentRegistry) -> Result<RecordBatch> {
        let mut c = Cols::new();
        order_cols(&mut c, rows.iter(), reg)?;
        c.finish(Self::schema())
    }
    fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let r = Reader::new(batch, Self::NAME, Self::schema())?;
        (0..batch.num_rows()).map(|i| read_order(&r, i)).collect()
    }
}

impl ArrowRecord for RiskReject {
    const NAME: &'static str = "risk_rejects";
    fn schema() -> SchemaRef {
        let mut fields = order_fields();
        fields.extend([
            f("reject_reason", DataType::Utf8, false),
            f("detail", DataType::Utf8, false),
        ]);
        Arc::new(Schema::new(fields))
    }
    fn to_record_batch(rows: &[Self], reg: &InstrumentRegistry) -> Result<RecordBatch> {
        let mut c = Cols::new();
        order_cols(&mut c, rows.iter().map(|r| &r.order), reg)?;
        c.str(rows.iter().map(|r| Some(r.reason.as_str())));
        c.str(rows.iter().map(|r| Some(r.detail.as_str())));
        c.finish(Self::schema())
    }
    fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let r = Reader::new(batch, Self::NAME, Self::schema())?;
        (0..batch.num_rows())
            .map(|i| {
                let reason = r.req_str("reject_reason", i)?;
                Ok(RiskReject {
                    order: read_order(&r, i)?,
                    reason: RiskReason::from_name(reason)
                        .ok_or_else(|| r.bad("reject_reason", reason))?,
                    detail: r.req_str("detail", i)?.to_owned(),
                })
            })
            .collect()
    }
}

impl ArrowRecord for Fill {
    const NAME: &'static str = "fills";
    fn schema() -> SchemaRef {
        let mut fields = head_fields();
        fields.extend([
            f("order_id", DataType::UInt64, false),
            f("exec", DataType::UInt32, false),
            f("ts_event", ts_type(), false),
            f("side", DataType::Utf8, false),
            f("price", dec_type(), false),
            f("quantity", dec_type(), false),
            f("fee", dec_type(), false),
            f("leaves", dec_type(), false),
            f("status", DataType::Utf8, false),
        ]);
        Arc::new(Schema::new(fields))
    }
    fn to_record_batch(rows: &[Self], reg: &InstrumentRegistry) -> Result<RecordBatch> {
        let mut c = Cols::new();
        c.u32(rows.iter().map(|r| Some(r.instrument.0)));
        c.str(symbols(rows, reg, |r| r.instrument));
        c.u64(rows.iter().map(|r| Some(r.order_id)));
        c.u32(rows.iter().map(|r| Some(r.exec)));
        c.ts(rows.iter().map(|r| Some(r.ts_event)));
        c.str(rows.iter().map(|r| Some(r.side.as_str())));
        c.dec(rows.iter().map(|r| Some(r.price.raw())))?;
        c.dec(rows.iter().map(|r| Some(r.quantity.raw())))?;
        c.dec(rows.iter().map(|r| Some(r.fee.raw())))?;
        c.dec(rows.iter().map(|r| Some(r.leaves.raw())))?;
        c.str(rows.iter().map(|r| Some(r.status.as_str())));
        c.finish(Self::schema())
    }
    fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let r = Reader::new(batch, Self::NAME, Self::schema())?;
        (0..batch.num_rows())
            .map(|i| {
                let side = r.req_str("side", i)?;
                let status = r.req_str("status", i)?;
                Ok(Fill {
                    order_id: r.req_u64("order_id", i)?,
                    exec: r.u32("exec", i)?.ok_or_else(|| r.null("exec", i))?,
                    instrument: r.instrument(i)?,
                    ts_event: r.req_ts("ts_event", i)?,
                    side: Side::from_name(side).ok_or_else(|| r.bad("side", side))?,
                    price: Price::from_raw(r.req_dec("price", i)?),
                    quantity: Quantity::from_raw(r.req_dec("quantity", i)?),
                    fee: Price::from_raw(r.req_dec("fee", i)?),
                    leaves: Quantity::from_raw(r.req_dec("leaves", i)?),
                    status: FillStatus::from_name(status).ok_or_else(|| r.bad("status", status))?,
                })
            })
            .collect()
    }
}

impl ArrowRecord for Position {
    const NAME: &'static str = "positions";
    fn schema() -> SchemaRef {
        let mut fields = head_fields();
        fields.push(f("ts_event", ts_type(), false));
        fields.extend(
            [
                "quantity",
                "avg_price",
                "mark",
                "market_value",
                "realized_pnl",
                "unrealized_pnl",
                "fees",
            ]
            .map(|n| f(n, dec_type(), false)),
        );
        fields.push(f("fills", DataType::UInt64, false));
        Arc::new(Schema::new(fields))
    }
    fn to_record_batch(rows: &[Self], reg: &InstrumentRegistry) -> Result<RecordBatch> {
        let mut c = Cols::new();
        c.u32(rows.iter().map(|r| Some(r.instrument.0)));
        c.str(symbols(rows, reg, |r| r.instrument));
        c.ts(rows.iter().map(|r| Some(r.ts_event)));
        c.dec(rows.iter().map(|r| Some(r.quantity.raw())))?;
        for get in [
            |r: &Position| r.avg_price,
            |r: &Position| r.mark,
            |r: &Position| r.market_value,
            |r: &Position| r.realized_pnl,
            |r: &Position| r.unrealized_pnl,
            |r: &Position| r.fees,
        ] {
            c.dec(rows.iter().map(|r| Some(get(r).raw())))?;
        }
        c.u64(rows.iter().map(|r| Some(r.fills)));
        c.finish(Self::schema())
    }
    fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let r = Reader::new(batch, Self::NAME, Self::schema())?;
        let p = |name: &str, i: usize| r.req_dec(name, i).map(Price::from_raw);
        (0..batch.num_rows())
            .map(|i| {
                Ok(Position {
                    instrument: r.instrument(i)?,
                    ts_event: r.req_ts("ts_event", i)?,
                    quantity: Quantity::from_raw(r.req_dec("quantity", i)?),
                    avg_price: p("avg_price", i)?,
                    mark: p("mark", i)?,
                    market_value: p("market_value", i)?,
                    realized_pnl: p("realized_pnl", i)?,
                    unrealized_pnl: p("unrealized_pnl", i)?,
                    fees: p("fees", i)?,
                    fills: r.req_u64("fills", i)?,
                })
            })
            .collect()
    }
}

const PORTFOLIO_MONEY: [&str; 6] = [
    "net_exposure",
    "gross_exposure",
    "realized_pnl",
    "unrealized_pnl",
    "fees",
    "total_pnl",
];

impl ArrowRecord for PortfolioValue {
    const NAME: &'static str = "portfolio";
    fn schema() -> SchemaRef {
        let mut fields = vec![f("ts_event", ts_type(), false)];
        fields.extend(PORTFOLIO_MONEY.map(|n| f(n, dec_type(), false)));
        fields.push(f("open_positions", DataType::UInt32, false));
        Arc::new(Schema::new(fields))
    }
    fn to_record_batch(rows: &[Self], _reg: &InstrumentRegistry) -> Result<RecordBatch> {
        let mut c = Cols::new();
        c.ts(rows.iter().map(|r| Some(r.ts_event)));
        for get in [
            |r: &PortfolioValue| r.net_exposure,
            |r: &PortfolioValue| r.gross_exposure,
            |r: &PortfolioValue| r.realized_pnl,
            |r: &PortfolioValue| r.unrealized_pnl,
            |r: &PortfolioValue| r.fees,
            |r: &PortfolioValue| r.total_pnl,
        ] {
            c.dec(rows.iter().map(|r| Some(get(r).raw())))?;
        }
        c.u32(rows.iter().map(|r| Some(r.open_positions)));
        c.finish(Self::schema())
    }
    fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Self>> {
        let r = Reader::new(batch, Self::NAME, Self::schema())?;
        let p = |name: &str, i: usize| r.req_dec(name, i).map(Price::from_raw);
        (0..batch.num_rows())
            .map(|i| {
                Ok(PortfolioValue {
                    ts_event: r.req_ts("ts_event", i)?,
                    net_exposure: p("net_exposure", i)?,
                    gross_exposure: p("gross_exposure", i)?,
                    realized_pnl: p("realized_pnl", i)?,
                    unrealized_pnl: p("unrealized_pnl", i)?,
                    fees: p("fees", i)?,
                    total_pnl: p("total_pnl", i)?,
                    open_positions: r
                        .u32("open_positions", i)?
                        .ok_or_else(|| r.null("open_positions", i))?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::InstrumentSpec;
    use proptest::prelude::*;

    fn registry() -> InstrumentRegistry {
        InstrumentRegistry::from_specs((0..4).map(|i| InstrumentSpec {
            symbol: format!("S{i}"),
            venue: "X".into(),
            tick_size: Price::parse("0.01").unwrap(),
            lot_size: Quantity::parse("1").unwrap(),
            currency: "USD".into(),
        }))
    }

    fn side(i: u8) -> Side {
        [Side::Buy, Side::Sell, Side::None][i as usize % 3]
    }

    #[test]
    fn trading_records_round_trip() {
        let order = Order {
            id: 7,
            instrument: InstrumentId(2),
            ts_event: Timestamp(1_000),
            side: Side::Sell,
            order_type: OrderType::Limit,
            tif: TimeInForce::Gtc,
            limit: Some(Price::parse("10.25").unwrap()),
            quantity: Quantity::parse("100").unwrap(),
            reference: Price::parse("10.2").unwrap(),
            reason: "trend: sell".into(),
        };
        let market = Order {
            id: 8,
            order_type: OrderType::Market,
            tif: TimeInForce::Ioc,
            limit: None,
            ..order.clone()
        };
        let orders = vec![order.clone(), market];
        let batch = Order::to_record_batch(&orders, &registry()).unwrap();
        assert_eq!(Order::from_record_batch(&batch).unwrap(), orders);
        let rejects = vec![RiskReject {
            order,
            reason: RiskReason::MaxPosition,
            detail: "position 900 + 200 > 1000".into(),
        }];
        let batch = RiskReject::to_record_batch(&rejects, &registry()).unwrap();
        assert_eq!(RiskReject::from_record_batch(&batch).unwrap(), rejects);
        let fills = vec![Fill {
            order_id: 7,
            exec: 1,
            instrument: InstrumentId(2),
            ts_event: Timestamp(2_000),
            side: Side::Sell,
            price: Price::parse("10.25").unwrap(),
            quantity: Quantity::parse("40").unwrap(),
            fee: Price::parse("0.41").unwrap(),
            leaves: Quantity::parse("60").unwrap(),
            status: FillStatus::Partial,
        }];
        let batch = Fill::to_record_batch(&fills, &registry()).unwrap();
        assert_eq!(Fill::from_record_batch(&batch).unwrap(), fills);
        let p = |s: &str| Price::parse(s).unwrap();
        let positions = vec![Position {
            instrument: InstrumentId(1),
            ts_event: Timestamp(3),
            quantity: Quantity::parse("-40").unwrap(),
            avg_price: p("10.25"),
            mark: p("10"),
            market_value: p("-400"),
            realized_pnl: p("1.5"),
            unrealized_pnl: p("10"),
            fees: p("0.41"),
            fills: 1,
        }];
        let batch = Position::to_record_batch(&positions, &registry()).unwrap();
        assert_eq!(Position::from_record_batch(&batch).unwrap(), positions);
        let values = vec![PortfolioValue {
            ts_event: Timestamp(3),
            net_exposure: p("-400"),
            gross_exposure: p("400"),
            realized_pnl: p("1.5"),
            unrealized_pnl: p("10"),
            fees: p("0.41"),
            total_pnl: p("11.09"),
            open_positions: 1,
        }];
        let batch = PortfolioValue::to_record_batch(&values, &registry()).unwrap();
        assert_eq!(PortfolioValue::from_record_batch(&batch).unwrap(), values);
    }

    proptest! {
        #[test]
        fn trades_round_trip(rows in proptest::collection::vec((0u32..4, any::<i64>(), any::<i64>(), any::<i64>(), any::<u8>(), proptest::option::of(any::<u64>()), any::<bool>(), any::<u64>()), 0..20)) {
            let trades: Vec<Trade> = rows.iter().map(|&(i, t, p, s, a, id, sus, seq)| Trade {
                instrument: InstrumentId(i), ts_event: Timestamp(t), ts_recv: Timestamp(t / 2),
                price: Price::from_raw(p), size: Quantity::from_raw(s), aggressor: side(a),
                trade_id: id, suspicious: sus, seq: SeqNo(seq),
            }).collect();
            let batch = Trade::to_record_batch(&trades, &registry()).unwrap();
            prop_assert_eq!(Trade::from_record_batch(&batch).unwrap(), trades);
        }

        #[test]
        fn quotes_round_trip(rows in proptest::collection::vec((0u32..4, any::<i64>(), proptest::option::of(any::<i64>()), proptest::option::of(any::<i64>()), any::<i64>()), 0..20)) {
            let quotes: Vec<Quote> = rows.iter().map(|&(i, t, b, a, s)| Quote {
                instrument: InstrumentId(i), ts_event: Timestamp(t), ts_recv: Timestamp(t),
                bid: b.map(Price::from_raw), bid_size: Quantity::from_raw(s), ask: a.map(Price::from_raw),
                ask_size: Quantity::from_raw(-s / 3), update_id: b.map(|x| x as u64), suspicious: false, seq: SeqNo(7),
            }).collect();
            let batch = Quote::to_record_batch(&quotes, &registry()).unwrap();
            prop_assert_eq!(Quote::from_record_batch(&batch).unwrap(), quotes);
        }
    }

    #[test]
    fn book_events_bars_and_rejects_round_trip() {
        let reg = registry();
        let events: Vec<BookEvent> = [
            BookAction::Add,
            BookAction::Modify,
            BookAction::Cancel,
            BookAction::Execute,
            BookAction::Clear,
        ]
        .into_iter()
        .enumerate()
        .map(|(n, action)| BookEvent {
            instrument: InstrumentId(1),
            ts_event: Timestamp(n as i64),
            ts_recv: Timestamp(n as i64 + 5),
            action,
            side: side(n as u8),
            price: Price::from_raw(4_786_250_000_000),
            size: Quantity::from_int(3).unwrap(),
            order_id: (n % 2 == 0).then_some(n as u64),
            suspicious: false,
            seq: SeqNo::new(2, n as u64),
        })
        .collect();
        let batch = BookEvent::to_record_batch(&events, &reg).unwrap();
        assert_eq!(BookEvent::from_record_batch(&batch).unwrap(), events);

        let bars = vec![
            Bar {
                instrument: InstrumentId(3),
                kind: BarKind::Time(Duration::from_secs(60)),
                start: Timestamp(0),
                end: Timestamp(60_000_000_000),
                open: Price::from_raw(1),
                high: Price::from_raw(5),
                low: Price::from_raw(1),
                close: Price::from_raw(2),
                volume: Quantity::from_int(10).unwrap(),
                vwap: Price::from_raw(3),
                trade_count: 4,
            },
            Bar {
                instrument: InstrumentId(0),
                kind: BarKind::Volume(Quantity::parse("2.5").unwrap()),
                start: Timestamp(5),
                end: Timestamp(9),
                open: Price::from_raw(1),
                high: Price::from_raw(1),
                low: Price::from_raw(1),
                close: Price::from_raw(1),
                volume: Quantity::parse("2.5").unwrap(),
                vwap: Price::from_raw(1),
                trade_count: 1,
            },
            Bar {
                instrument: InstrumentId(1),
                kind: BarKind::Mid(Duration::from_secs(300)),
                start: Timestamp(0),
                end: Timestamp(300_000_000_000),
                open: Price::from_raw(7),
                high: Price::from_raw(9),
                low: Price::from_raw(6),
                close: Price::from_raw(8),
                volume: Quantity::ZERO,
                vwap: Price::from_raw(7),
                trade_count: 12,
            },
        ];
        let batch = Bar::to_record_batch(&bars, &reg).unwrap();
        assert_eq!(
            batch
                .column_by_name("symbol")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .value(0),
            "S3"
        );
        assert_eq!(Bar::from_record_batch(&batch).unwrap(), bars);

        let rejects = vec![
            Reject {
                instrument: None,
                ts_event: None,
                reason: RejectReason::Malformed,
                detail: "wrong column count".into(),
                origin: "f.csv".into(),
                line: 3,
                seq: SeqNo(1),
            },
            Reject {
                instrument: Some(InstrumentId(2)),
                ts_event: Some(Timestamp(9)),
                reason: RejectReason::Late,
                detail: "x".into(),
                origin: "synthetic".into(),
                line: 0,
                seq: SeqNo(2),
            },
        ];
        let batch = Reject::to_record_batch(&rejects, &reg).unwrap();
        assert_eq!(Reject::from_record_batch(&batch).unwrap(), rejects);
    }

    #[test]
    fn signals_round_trip() {
        let rows = vec![Signal {
            instrument: InstrumentId(3),
            ts_event: Timestamp(60),
            side: Side::Buy,
            strength: 0.5,
            reason: "trend: buy".into(),
        }];
        let batch = Signal::to_record_batch(&rows, &registry()).unwrap();
        assert_eq!(Signal::from_record_batch(&batch).unwrap(), rows);
    }

    #[test]
    fn predictions_round_trip() {
        let rows = vec![Prediction {
            instrument: InstrumentId(3),
            ts_event: Timestamp(60),
            horizon: 5,
            p_up: 0.625,
            expected_return: -1e-4,
            model_version: "mlp-00ff".into(),
        }];
        let batch = Prediction::to_record_batch(&rows, &registry()).unwrap();
        assert_eq!(Prediction::from_record_batch(&batch).unwrap(), rows);
    }

    #[test]
    fn indicator_rows_round_trip_with_their_names() {
        let names: Arc<[String]> = vec!["sma_20".to_string(), "rsi_14".to_string()].into();
        let rows = vec![
            IndicatorRow {
                instrument: InstrumentId(1),
                end: Timestamp(60),
                names: names.clone(),
                values: vec![None, None],
            },
            IndicatorRow {
                instrument: InstrumentId(2),
                end: Timestamp(120),
                names: names.clone(),
                values: vec![Some(101.25), Some(55.5)],
            },
        ];
        let batch = IndicatorRow::to_record_batch(&rows, &registry()).unwrap();
        assert_eq!(batch.schema().field(4).name(), "rsi_14");
        assert_eq!(IndicatorRow::from_record_batch(&batch).unwrap(), rows);
        assert_eq!(rows[1].get("rsi_14"), Some(55.5));
        assert_eq!(rows[0].get("sma_20"), None);
    }

    #[test]
    fn refuses_a_batch_of_the_wrong_schema() {
        let bars = Bar::to_record_batch(&[], &registry()).unwrap();
        let err = Trade::from_record_batch(&bars).unwrap_err().to_string();
        assert!(
            err.contains("missing column \"ts_event\""),
            "even an empty batch is checked: {err}"
        );
        let bar = Bar {
            instrument: InstrumentId(0),
            kind: BarKind::Time(Duration::from_secs(1)),
            start: Timestamp(0),
            end: Timestamp(1),
            open: Price::ZERO,
            high: Price::ZERO,
            low: Price::ZERO,
            close: Price::ZERO,
            volume: Quantity::ZERO,
            vwap: Price::ZERO,
            trade_count: 0,
        };
        let batch = Bar::to_record_batch(&[bar], &registry()).unwrap();
        let err = Trade::from_record_batch(&batch).unwrap_err().to_string();
        assert!(err.contains("ts_event"), "{err}");
        let err = Bar::from_record_batch(&Trade::to_record_batch(&[], &registry()).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing column \"bar_type\""), "{err}");
    }

    #[test]
    fn names_the_column_and_row_of_a_null_or_an_unknown_value() {
        let trade = |aggressor| Trade {
            instrument: InstrumentId(1),
            ts_event: Timestamp(5),
            ts_recv: Timestamp(5),
            price: Price::from_raw(7),
            size: Quantity::from_raw(1),
            aggressor,
            trade_id: None,
            suspicious: false,
            seq: SeqNo(1),
        };
        let batch =
            Trade::to_record_batch(&[trade(Side::Buy), trade(Side::Sell)], &registry()).unwrap();
        // A file that lets prices be null, with one missing in its second row.
        let schema = batch.schema();
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        let p = schema.index_of("price").unwrap();
        let mut columns = batch.columns().to_vec();
        columns[p] = Arc::new(
            Decimal128Array::from(vec![Some(7), None])
                .with_precision_and_scale(DECIMAL_PRECISION, 9)
                .unwrap(),
        );
        let nulls = RecordBatch::try_new(Arc::new(Schema::new(fields.clone())), columns).unwrap();
        let err = Trade::from_record_batch(&nulls).unwrap_err().to_string();
        assert!(
            err.contains("null in required column \"price\" (row 1 of the batch)"),
            "{err}"
        );
        let a = schema.index_of("aggressor").unwrap();
        let mut columns = batch.columns().to_vec();
        columns[a] = Arc::new(StringArray::from(vec!["buy", "up"]));
        let unknown = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let err = Trade::from_record_batch(&unknown).unwrap_err().to_string();
        assert!(
            err.contains("column \"aggressor\" has unknown value \"up\""),
            "{err}"
        );
    }
}
