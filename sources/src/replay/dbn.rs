//! Databento DBN market-by-order files (`.dbn` or `.dbn.zst`), read with the `dbn` crate.
//!
//! Actions: `A` add, `M` modify, `C` cancel, `R` clear book → [`BookEvent`]s; `F` fill of a
//! resting order → `Execute`; `T` trade → a [`Trade`] (aggressor from the side); `N` (no
//! action) carries no market data. Prices are already 1e-9 fixed point. Instruments are
//! named through the file's symbology mappings, else by `dataset` and numeric id.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use dbn::decode::{DbnMetadata, DecodeRecord};
use dbn::{MboMsg, Metadata, UNDEF_PRICE};
use tickflow_core::{
    BookAction, BookEvent, InstrumentId, InstrumentRegistry, InstrumentSpec, MarketEvent, Price,
    Quantity, RejectReason, SeqNo, Side, Timestamp, Trade,
};

use super::text::bad_row;
use crate::error::{Error, Result};
use crate::{PartReader, SourceItem};

type Decoder = dbn::decode::DbnDecoder<Box<dyn std::io::Read + Send>>;

fn open_decoder(path: &Path) -> Result<Decoder> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader: Box<dyn std::io::Read + Send> = if path.extension().is_some_and(|e| e == "zst") {
        Box::new(
            zstd::stream::read::Decoder::new(file)
                .map_err(|e| Error::format(path, format!("zstd: {e}")))?,
        )
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    dbn::decode::DbnDecoder::new(reader)
        .map_err(|e| Error::format(path, format!("not a DBN file: {e}")))
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
pub fn instruments(path: &Path) -> Result<Vec<InstrumentSpec>> {
    let mut decoder = open_decoder(path)?;
    let venue = decoder.metadata().dataset.clone();
    let map = symbol_map(decoder.metadata());
    let mut ids = BTreeSet::new();
    while let Some(rec) = decoder
        .decode_record::<MboMsg>()
        .map_err(|e| Error::format(path, format!("DBN record: {e}")))?
    {
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
    origin: String,
    ids: BTreeMap<u32, InstrumentId>,
    source: u16,
    ordinal: u64,
    done: bool,
}

impl DbnReader {
    /// Opens a file.
    pub fn open(path: &Path, source: u16, registry: &InstrumentRegistry) -> Result<Self> {
        let decoder = open_decoder(path)?;
        let venue = decoder.metadata().dataset.clone();
        let map = symbol_map(decoder.metadata());
        let mut ids = BTreeMap::new();
        for spec in instruments(path)? {
            let id = registry
                .lookup(&venue, &spec.symbol)
                .ok_or_else(|| Error::Undeclared {
                    venue: venue.clone(),
                    symbol: spec.symbol.clone(),
                })?;
            let numeric = map
                .iter()
                .find(|(_, s)| **s == spec.symbol)
                .map(|(n, _)| *n)
                .or_else(|| spec.symbol.strip_prefix("ID").and_then(|n| n.parse().ok()));
            if let Some(n) = numeric {
                ids.insert(n, id);
            }
        }
        Ok(Self {
            decoder,
            origin: path.display().to_string(),
            ids,
            source,
            ordinal: 0,
            done: false,
        })
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
            let seq = SeqNo::new(self.source, self.ordinal);
            let rec = match self.decoder.decode_record::<MboMsg>() {
                Ok(Some(r)) => r.clone(),
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    // A broken record stream cannot be resynchronised: report and stop this file.
                    self.done = true;
                    return Some(SourceItem::Bad(bad_row(
                        &self.origin,
                        self.ordinal,
                        seq,
                        RejectReason::Malformed,
                        format!("DBN record: {e}"),
                    )));
                }
            };
            let bad = |detail: String| {
                Some(SourceItem::Bad(bad_row(
                    &self.origin,
                    self.ordinal,
                    seq,
                    RejectReason::Malformed,
                    detail,
                )))
            };
            let Some(&instrument) = self.ids.get(&rec.hd.instrument_id) else {
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
