//! Binance futures order-book CSV (the tick-level depth Binance publishes for its USDⓈ-M and
//! COIN-M futures): `symbol,timestamp,first_update_id,last_update_id,side,update_type,price,
//! qty,pu`, one price level a row, a header first, plain or gzipped.
//!
//! - `timestamp` is the venue's event time in ms (the file has no receive time, so the record's
//!   receive time is the same);
//! - `side` is `b` (bid) or `a` (ask); `qty` is the level's new size, 0 removes it;
//! - `update_type` is `snap` for the levels of a depth snapshot (the rows of one snapshot share
//!   their `last_update_id`) or `set` for an update. A snapshot replaces the book: its first
//!   row is preceded by a [`Clear`](tickflow_core::BookAction::Clear).
//!
//! The file does not name its market: a symbol with an underscore (`BTCUSD_PERP`,
//! `ETHUSD_240628`) is a COIN-M contract (venue `BINANCE-COINM`), any other a USDⓈ-M one
//! (`BINANCE-USDM`), as in Binance's own symbol scheme.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;

use tickflow_core::{
    InstrumentId, InstrumentRegistry, InstrumentSpec, MarketEvent, Price, Quantity, Side, Timestamp,
};

use super::text::{
    CsvReader, CsvRows, LineBuffer, LineSeq, RowError, each_row, fixed, malformed, open_csv,
    parse_i64, show,
};
use super::{binance, book_clear, level_update};
use crate::error::{Error, Result};

/// The columns read, in this order in [`Layout::index`].
const COLUMNS: [&str; 7] = [
    "symbol",
    "timestamp",
    "last_update_id",
    "side",
    "update_type",
    "price",
    "qty",
];

/// Column positions from the header.
#[derive(Clone, Debug)]
struct Layout {
    index: [usize; 7],
    width: usize,
}

fn layout(header: &[u8]) -> Option<Layout> {
    let names: Vec<&[u8]> = header
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .collect();
    let mut index = [0; 7];
    for (slot, wanted) in index.iter_mut().zip(COLUMNS) {
        *slot = names.iter().position(|n| *n == wanted.as_bytes())?;
    }
    // `first_update_id` and `pu` (the previous update's id) tell this layout from others.
    for extra in ["first_update_id", "pu"] {
        names.iter().position(|n| *n == extra.as_bytes())?;
    }
    Some(Layout {
        index,
        width: names.len(),
    })
}

/// True when the first line is a Binance depth CSV header.
pub fn sniff(first_line: &[u8]) -> bool {
    layout(first_line).is_some()
}

/// The venue of a Binance futures symbol.
fn venue_of(symbol: &str) -> &'static str {
    if symbol.contains('_') {
        "BINANCE-COINM"
    } else {
        "BINANCE-USDM"
    }
}

fn read_with_layout(path: &Path) -> Result<(LineBuffer, Layout)> {
    let (lines, header) = open_csv(path)?;
    let layout = layout(&header).ok_or_else(|| {
        Error::format(
            path,
            format!(
                "header {:?} is not Binance depth ({},first_update_id,pu)",
                String::from_utf8_lossy(&header),
                COLUMNS.join(",")
            ),
        )
    })?;
    Ok((lines, layout))
}

/// Every symbol in the file.
pub fn instruments(path: &Path) -> Result<Vec<InstrumentSpec>> {
    let (mut lines, layout) = read_with_layout(path)?;
    let mut seen = BTreeSet::new();
    each_row(&mut lines, layout.width, |fields| {
        let symbol = fields[layout.index[0]];
        if !symbol.is_empty() {
            seen.insert(String::from_utf8_lossy(symbol).into_owned());
        }
    });
    Ok(seen
        .into_iter()
        .map(|symbol| binance::spec(venue_of(&symbol).into(), symbol))
        .collect())
}

/// Reader of one Binance depth CSV.
pub type BinanceDepthReader = CsvReader<DepthRows>;

/// What reads the rows of a Binance depth CSV into records.
pub struct DepthRows {
    layout: Layout,
    registry: InstrumentRegistry,
    /// The `last_update_id` of the snapshot an instrument's last row belonged to, if it did.
    snapshot: HashMap<InstrumentId, i64>,
}

impl BinanceDepthReader {
    /// Opens a file.
    pub fn open(path: &Path, source: u16, registry: &InstrumentRegistry) -> Result<Self> {
        let (lines, layout) = read_with_layout(path)?;
        let rows = DepthRows {
            layout,
            registry: registry.clone(),
            snapshot: HashMap::new(),
        };
        Ok(CsvReader::new(lines, path, source, rows))
    }
}

impl CsvRows for DepthRows {
    fn width(&self) -> usize {
        self.layout.width
    }

    fn parse(
        &mut self,
        f: &[&[u8]],
        seq: &mut LineSeq,
        out: &mut VecDeque<MarketEvent>,
    ) -> Result<(), RowError> {
        let [symbol, timestamp, update_id, side, update_type, price, qty] =
            self.layout.index.map(|i| f[i]);
        let symbol = String::from_utf8_lossy(symbol);
        let venue = venue_of(&symbol);
        let instrument = self
            .registry
            .lookup(venue, &symbol)
            .ok_or_else(|| malformed(format!("unknown instrument {venue}:{symbol}")))?;
        let ts = parse_i64(timestamp)
            .and_then(Timestamp::from_millis)
            .ok_or_else(|| {
                malformed(format!(
                    "timestamp is not a time in ms: {:?}",
                    show(timestamp)
                ))
            })?;
        let update_id = parse_i64(update_id).ok_or_else(|| {
            malformed(format!(
                "last_update_id is not an integer: {:?}",
                show(update_id)
            ))
        })?;
        let side = match side {
            b"b" => Side::Buy,
            b"a" => Side::Sell,
            v => return Err(malformed(format!("side is {:?}, not b or a", show(v)))),
        };
        let snap = match update_type {
            b"snap" => true,
            b"set" => false,
            v => {
                return Err(malformed(format!(
                    "update_type is {:?}, not snap or set",
                    show(v)
                )));
            }
        };
        let price = fixed(price, "price", Price::parse)?;
        let size = fixed(qty, "qty", Quantity::parse)?;
        if snap {
            if self.snapshot.insert(instrument, update_id) != Some(update_id) {
                let seq = seq.seq();
                out.push_back(book_clear(instrument, (ts, ts), seq));
            }
        } else {
            self.snapshot.remove(&instrument);
        }
        let seq = seq.seq();
        out.push_back(level_update(instrument, (ts, ts), side, price, size, seq));
        Ok(())
    }
}
