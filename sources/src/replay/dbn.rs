//! Databento DBN market-by-order files (`.dbn` or `.dbn.zst`), read with the `dbn` crate.
//!
//! Actions: `A` add, `M` modify, `C` cancel, `R` clear book → [`BookEvent`]s; `F` fill of a
//! resting order → `Execute`; `T` trade → a [`Trade`] (aggressor from the side); `N` (no
//! action) carries no market data. Prices are already 1e-9 fixed point. Instruments are
//! named through the file's symbology mappings, else by `dataset` and numeric id.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read};
use std::path::Path;

use dbn::decode::{DbnMetadata, DecodeRecord};
use dbn::{MboMsg, Metadata, Schema, UNDEF_PRICE};
use tickflow_core::{
    BookAction, BookEvent, InstrumentId, InstrumentRegistry, InstrumentSpec, MarketEvent, Price,
    Quantity, RejectReason, SeqNo, Side, Timestamp, Trade,
};

use super::text::bad_row;
use crate::error::{Error, Result};
use crate::{PartReader, SourceItem};

type Decoder = dbn::decode::DbnDecoder<Counted>;

/// The decompressed bytes of a DBN file as its decoder takes them, counted. The decoder reads
/// `UnexpectedEof` as the clean end of a file, so a compressed stream that breaks off
/// part-way is passed on as an error of another kind, which it reports, and noted here.
struct Counted {
    inner: Box<dyn Read + Send>,
    bytes: u64,
    /// Why the compressed stream broke off, once it has.
    broke: Option<String>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.bytes += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                let why = format!("the compressed stream breaks off ({e})");
                self.broke = Some(why.clone());
                Err(std::io::Error::new(ErrorKind::InvalidData, why))
            }
            Err(e) => Err(e),
        }
    }
}

/// A file's decoder, and the length of the file's header (prelude and metadata), which
/// precedes the records.
fn open_decoder(path: &Path) -> Result<(Decoder, u64)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader: Box<dyn Read + Send> = if path.extension().is_some_and(|e| e == "zst") {
        Box::new(
            zstd::stream::read::Decoder::new(file)
                .map_err(|e| Error::format(path, format!("zstd: {e}")))?,
        )
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    // The prelude: "DBN", the version, then the metadata's length (u32, little-endian).
    let mut prelude = [0u8; 8];
    reader
        .read_exact(&mut prelude)
        .map_err(|e| Error::format(path, format!("not a DBN file: {e}")))?;
    let metadata_len = u32::from_le_bytes([prelude[4], prelude[5], prelude[6], prelude[7]]);
    let counted = Counted {
        inner: Box::new(std::io::Cursor::new(prelude).chain(reader)),
        bytes: 0,
        broke: None,
    };
    let decoder = dbn::decode::DbnDecoder::new(counted)
        .map_err(|e| Error::format(path, format!("not a DBN file: {e}")))?;
    let schema = decoder.metadata().schema;
    if schema != Some(Schema::Mbo) {
        return Err(Error::format(
            path,
            format!(
                "a DBN file of schema {}; only market-by-order (mbo) is read",
                schema.map_or("mixed".to_string(), |s| s.to_string())
            ),
        ));
    }
    Ok((decoder, 8 + u64::from(metadata_len)))
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
    let (mut decoder, _) = open_decoder(path)?;
    let venue = decoder.metadata().dataset.clone();
    let map = symbol_map(decoder.metadata());
    let mut ids = BTreeSet::new();
    while let Ok(Some(rec)) = decoder.decode_record::<MboMsg>() {
        ids.insert(rec.hd.instrument_id);
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
    decoder: Decoder,
    /// Bytes of the header and of every whole record decoded so far.
    whole: u64,
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
        let (decoder, header_len) = open_decoder(path)?;
        let venue = decoder.metadata().dataset.clone();
        let symbols = symbol_map(decoder.metadata());
        Ok(Self {
            decoder,
            whole: header_len,
            origin: path.display().to_string(),
            venue,
            symbols,
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

fn side_of(c: std::ffi::c_char) -> Side {
    match c as u8 {
        b'B' => Side::Buy,
        b'A' => Side::Sell,
        _ => Side::None,
    }
}

impl PartReader for DbnReader {
    fn next_item(&mut self) -> Option<SourceItem> {
        while !self.done {
            self.ordinal += 1;
            let seq = SeqNo::at_line(self.source, self.ordinal, 0);
            let rec = match self.decoder.decode_record::<MboMsg>() {
                Ok(Some(r)) => {
                    self.whole += r.hd.record_size() as u64;
                    r.clone()
                }
                Ok(None) => {
                    self.done = true;
                    // The decoder ends quietly when a file stops inside a record.
                    let taken = self.decoder.get_ref().bytes;
                    return (taken > self.whole).then(|| {
                        self.malformed(
                            seq,
                            format!(
                                "the file cannot be read further: it ends inside a record \
                                 ({} bytes after the last whole one)",
                                taken - self.whole
                            ),
                        )
                    });
                }
                Err(e) => {
                    // A broken record stream cannot be resynchronised: report and stop this file.
                    self.done = true;
                    let why = match &self.decoder.get_ref().broke {
                        Some(why) => why.clone(),
                        None => format!("DBN record: {e}"),
                    };
                    return Some(
                        self.malformed(seq, format!("the file cannot be read further: {why}")),
                    );
                }
            };
            let instrument = self.instrument(rec.hd.instrument_id);
            let bad = |detail: String| Some(self.malformed(seq, detail));
            let Some(instrument) = instrument else {
                return bad(format!(
                    "instrument id {} not declared",
                    rec.hd.instrument_id
                ));
            };
            let Ok(ts_event) = i64::try_from(rec.hd.ts_event).map(Timestamp) else {
                return bad("ts_event out of range".into());
            };
            let ts_recv = i64::try_from(rec.ts_recv)
                .map(Timestamp)
                .unwrap_or(ts_event);
            let price = if rec.price == UNDEF_PRICE {
                Price::ZERO
            } else {
                Price::from_raw(rec.price)
            };
            let size = Quantity::from_raw(i64::from(rec.size) * 1_000_000_000);
            let side = side_of(rec.side);
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
            return match rec.action as u8 {
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
