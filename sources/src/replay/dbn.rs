//! Databento DBN market-by-order files (`.dbn` or `.dbn.zst`): the header's metadata read with
//! the `dbn` crate, the records framed and read here.
//!
//! Actions: `A` add, `M` modify, `C` cancel, `R` clear book → [`BookEvent`]s; `F` fill of a
//! resting order → `Execute`; `T` trade → a [`Trade`] (aggressor from the side); `N` (no
//! action) carries no market data. Prices are already 1e-9 fixed point. Instruments are
//! named through the file's symbology mappings, else by `dataset` and numeric id.
//!
//! The `dbn` crate's record decoder panics on some damaged records (a length of zero, a record
//! shorter than its type's layout), which would take down the pipeline reading the file. So
//! each record is framed by its length byte and checked here, and an MBO record's fields are
//! read at their fixed offsets, which are the same in DBN versions 1 to 3
//! ([`tickflow_core::dbn`]). A record of another type, or too short for MBO, is rejected and
//! the file read on; a record too short for the header that frames it leaves no way to find
//! the next one, so the file stops there, with that reason.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read};
use std::path::Path;

use dbn::decode::dbn::MetadataDecoder;
use dbn::{Metadata, Schema};
use tickflow_core::dbn::{self as dbn_layout, MboRecord};
use tickflow_core::{
    BookAction, BookEvent, InstrumentId, InstrumentRegistry, InstrumentSpec, MarketEvent, Price,
    Quantity, RejectReason, SeqNo, Timestamp, Trade,
};

use super::text::bad_row;
use crate::error::{Error, Result};
use crate::{PartReader, SourceItem};

/// Reads until `buf` is full or the stream ends; the number of bytes read, or why the stream
/// cannot be read further.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> std::result::Result<usize, String> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // The zstd decoder's word for a compressed stream that breaks off part-way; a
            // plain file ends with a read of 0.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                return Err(format!("the compressed stream breaks off ({e})"));
            }
            Err(e) => return Err(format!("read error: {e}")),
        }
    }
    Ok(n)
}

/// The records of a file after its header, each framed by its length byte, read through a
/// buffer of their own (records are framed where they lie, not copied out one by one).
struct Records {
    reader: Box<dyn Read + Send>,
    buf: Vec<u8>,
    /// The unframed bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
}

/// What [`Records::next`] found.
enum Framed {
    /// A whole record, at this range of `buf`.
    Record(std::ops::Range<usize>),
    /// The clean end of the file.
    End,
    /// Why the file cannot be read further.
    Broken(String),
}

impl Records {
    /// Room for many records; the longest a length byte can give is 1,020 bytes.
    const BUF: usize = 1 << 16;

    fn new(reader: Box<dyn Read + Send>) -> Self {
        Self {
            reader,
            buf: vec![0; Self::BUF],
            pos: 0,
            end: 0,
        }
    }

    /// Makes `need` unframed bytes lie in `buf`; false where the file ends first.
    fn fill(&mut self, need: usize) -> std::result::Result<bool, String> {
        if self.end - self.pos >= need {
            return Ok(true);
        }
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        while self.end < need {
            let n = read_full(&mut self.reader, &mut self.buf[self.end..])?;
            if n == 0 {
                return Ok(false);
            }
            self.end += n;
        }
        Ok(true)
    }

    fn next(&mut self) -> Framed {
        match self.fill(1) {
            Ok(true) => {}
            Ok(false) => return Framed::End,
            Err(why) => return Framed::Broken(why),
        }
        let len = match dbn_layout::record_len(self.buf[self.pos]) {
            Ok(len) => len,
            Err(why) => return Framed::Broken(why),
        };
        match self.fill(len) {
            Ok(true) => {
                self.pos += len;
                Framed::Record(self.pos - len..self.pos)
            }
            Ok(false) => Framed::Broken(format!(
                "it ends inside a record ({} of its {len} bytes)",
                self.end - self.pos
            )),
            Err(why) => Framed::Broken(why),
        }
    }
}

/// An MBO record's fields, or why the record gives none: another type, or too short.
fn mbo(rec: &[u8]) -> std::result::Result<MboRecord, String> {
    match MboRecord::parse(rec)? {
        Some(mbo) => Ok(mbo),
        None => Err(format!(
            "a record of type {:#04x}, not market-by-order ({:#04x}), is left out",
            rec[1],
            dbn_layout::MBO
        )),
    }
}

/// A file's metadata (decoded from exactly its bytes) and its records.
fn open_file(path: &Path) -> Result<(Metadata, Records)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader: Box<dyn Read + Send> = if path.extension().is_some_and(|e| e == "zst") {
        Box::new(
            zstd::stream::read::Decoder::new(file)
                .map_err(|e| Error::format(path, format!("zstd: {e}")))?,
        )
    } else {
        Box::new(file)
    };
    let not_dbn = |why: String| Error::format(path, format!("not a DBN file: {why}"));
    // The prelude: "DBN", the version, then the metadata's length (u32, little-endian).
    let mut header = vec![0u8; dbn_layout::PRELUDE];
    let n = read_full(&mut reader, &mut header).map_err(not_dbn)?;
    let metadata_len = dbn_layout::metadata_len(&header[..n]).map_err(not_dbn)?;
    // Read as it comes, so that a damaged length allocates no more than the file holds.
    (&mut reader)
        .take(u64::from(metadata_len))
        .read_to_end(&mut header)
        .map_err(|e| not_dbn(format!("its metadata cannot be read ({e})")))?;
    if header.len() < dbn_layout::PRELUDE + metadata_len as usize {
        return Err(not_dbn(format!(
            "it ends inside its metadata ({} of {metadata_len} bytes)",
            header.len() - dbn_layout::PRELUDE
        )));
    }
    let metadata = MetadataDecoder::new(std::io::Cursor::new(header))
        .decode()
        .map_err(|e| not_dbn(e.to_string()))?;
    if metadata.schema != Some(Schema::Mbo) {
        return Err(Error::format(
            path,
            format!(
                "a DBN file of schema {}; only market-by-order (mbo) is read",
                metadata
                    .schema
                    .map_or("mixed".to_string(), |s| s.to_string())
            ),
        ));
    }
    Ok((metadata, Records::new(reader)))
}

/// Numeric instrument id → symbol, from the metadata's mappings.
fn symbol_map(meta: &Metadata) -> BTreeMap<u32, String> {
    let mut map = BTreeMap::new();
    for m in &meta.mappings {
        for interval in &m.intervals {
            if let Ok(id) = interval.symbol.parse::<u32>() {
                map.insert(id, m.raw_symbol.clone());
            }
        }
    }
    map
}

fn symbol_for(map: &BTreeMap<u32, String>, id: u32) -> String {
    map.get(&id).cloned().unwrap_or_else(|| format!("ID{id}"))
}

/// Every instrument in the file (scans the records).
///
/// A file whose records break off part-way declares the instruments before the break; its
/// reader reports the break.
pub fn instruments(path: &Path) -> Result<Vec<InstrumentSpec>> {
    let (metadata, mut records) = open_file(path)?;
    let venue = metadata.dataset.clone();
    let map = symbol_map(&metadata);
    let mut ids = BTreeSet::new();
    while let Framed::Record(at) = records.next() {
        if let Ok(rec) = mbo(&records.buf[at]) {
            ids.insert(rec.instrument_id);
        }
    }
    Ok(ids
        .into_iter()
        .map(|id| InstrumentSpec {
            symbol: symbol_for(&map, id),
            venue: venue.clone(),
            tick_size: Price::from_raw(250_000_000),
            lot_size: Quantity::from_raw(1_000_000_000),
            currency: "USD".into(),
        })
        .collect())
}

/// Reader of one DBN MBO file.
pub struct DbnReader {
    records: Records,
    origin: String,
    /// Instruments as the file names them: its dataset, and numeric id → symbol.
    venue: String,
    symbols: BTreeMap<u32, String>,
    registry: InstrumentRegistry,
    /// Numeric id → the registry's instrument (`None`: not declared), looked up on first
    /// sight.
    ids: BTreeMap<u32, Option<InstrumentId>>,
    source: u16,
    ordinal: u64,
    done: bool,
}

impl DbnReader {
    /// Opens a file.
    pub fn open(path: &Path, source: u16, registry: &InstrumentRegistry) -> Result<Self> {
        let (metadata, records) = open_file(path)?;
        Ok(Self {
            records,
            venue: metadata.dataset.clone(),
            symbols: symbol_map(&metadata),
            origin: path.display().to_string(),
            registry: registry.clone(),
            ids: BTreeMap::new(),
            source,
            ordinal: 0,
            done: false,
        })
    }

    /// The registry's instrument for a numeric id of the file, named as [`instruments`]
    /// names it.
    fn instrument(&mut self, numeric: u32) -> Option<InstrumentId> {
        let (venue, symbols, registry) = (&self.venue, &self.symbols, &self.registry);
        *self
            .ids
            .entry(numeric)
            .or_insert_with(|| registry.lookup(venue, &symbol_for(symbols, numeric)))
    }

    /// The reject of the record (or the break) numbered `seq`.
    fn malformed(&self, seq: SeqNo, detail: String) -> SourceItem {
        SourceItem::Bad(bad_row(&self.origin, seq, RejectReason::Malformed, detail))
    }
}

impl PartReader for DbnReader {
    fn next_item(&mut self) -> Option<SourceItem> {
        while !self.done {
            self.ordinal += 1;
            let seq = SeqNo::at_line(self.source, self.ordinal, 0);
            let rec = match self.records.next() {
                Framed::Record(at) => match mbo(&self.records.buf[at]) {
                    Ok(rec) => rec,
                    Err(why) => return Some(self.malformed(seq, why)),
                },
                Framed::End => {
                    self.done = true;
                    return None;
                }
                Framed::Broken(why) => {
                    // A broken record stream cannot be resynchronised: report and stop this file.
                    self.done = true;
                    return Some(
                        self.malformed(seq, format!("the file cannot be read further: {why}")),
                    );
                }
            };
            let instrument = self.instrument(rec.instrument_id);
            let bad = |detail: String| Some(self.malformed(seq, detail));
            let Some(instrument) = instrument else {
                return bad(format!("instrument id {} not declared", rec.instrument_id));
            };
            let Ok(ts_event) = i64::try_from(rec.ts_event).map(Timestamp) else {
                return bad("ts_event out of range".into());
            };
            let ts_recv = i64::try_from(rec.ts_recv)
                .map(Timestamp)
                .unwrap_or(ts_event);
            let MboRecord {
                price, size, side, ..
            } = rec;
            let book = |action| {
                Some(SourceItem::Event(MarketEvent::Book(BookEvent {
                    instrument,
                    ts_event,
                    ts_recv,
                    action,
                    side,
                    price,
                    size,
                    order_id: Some(rec.order_id),
                    suspicious: false,
                    seq,
                })))
            };
            return match rec.action {
                b'A' => book(BookAction::Add),
                b'M' => book(BookAction::Modify),
                b'C' => book(BookAction::Cancel),
                b'R' => book(BookAction::Clear),
                b'F' => book(BookAction::Execute),
                b'T' => Some(SourceItem::Event(MarketEvent::Trade(Trade {
                    instrument,
                    ts_event,
                    ts_recv,
                    price,
                    size,
                    aggressor: side,
                    trade_id: None,
                    suspicious: false,
                    seq,
                }))),
                b'N' => continue,
                other => bad(format!("unknown action {:?}", other as char)),
            };
        }
        None
    }
}
