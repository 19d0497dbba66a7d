//! Tardis.dev CSV, as Tardis ships it (`.csv` or gzipped `.csv.gz`, read as a stream). Columns
//! are found by header name; timestamps are microseconds since the epoch. Four data types:
//!
//! - `trades`: `exchange,symbol,timestamp,local_timestamp,id,side,price,amount`;
//! - `quotes`: `exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,
//!   bid_amount`;
//! - `incremental_book_L2`: `exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,
//!   amount`, one price level a row, `amount` its new size (0 removes it). Rows with
//!   `is_snapshot = true` that follow rows without it start a new snapshot: the book known so
//!   far is discarded ([`BookAction::Clear`](tickflow_core::BookAction::Clear)) before the
//!   snapshot's levels;
//! - `book_snapshot_N` (`book_snapshot_5`, `_25`, ...): `exchange,symbol,timestamp,
//!   local_timestamp,asks[0].price,asks[0].amount,bids[0].price,bids[0].amount,...`, the top N
//!   levels of both sides a row, empty where the book has fewer. Each row replaces the book: a
//!   `Clear`, then one level update per level.
//!
//! Level updates are [`BookEvent`](tickflow_core::BookEvent)s without an order id: `Modify` to
//! the new size, `Cancel` when the size is zero. A row whose levels do not all parse is refused
//! whole, so no book is left half-updated.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;

use tickflow_core::{
    InstrumentId, InstrumentRegistry, InstrumentSpec, MarketEvent, Price, Quantity, Quote, Side,
    Timestamp, Trade,
};

use super::text::{
    CsvReader, CsvRows, LineBuffer, LineSeq, RowError, each_row, fixed, malformed, open_csv,
    parse_i64, show,
};
use super::{book_clear, level_update};
use crate::error::{Error, Result};

/// The columns every Tardis data type starts with.
const COMMON: [&str; 4] = ["exchange", "symbol", "timestamp", "local_timestamp"];
const TRADE_COLUMNS: [&str; 4] = ["id", "side", "price", "amount"];
const QUOTE_COLUMNS: [&str; 4] = ["ask_amount", "ask_price", "bid_price", "bid_amount"];
const L2_COLUMNS: [&str; 4] = ["is_snapshot", "side", "price", "amount"];

/// A file's data type, with the positions of its own columns.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// `id, side, price, amount`.
    Trades([usize; 4]),
    /// `ask_amount, ask_price, bid_price, bid_amount`.
    Quotes([usize; 4]),
    /// `is_snapshot, side, price, amount`.
    BookL2([usize; 4]),
    /// `(price, amount)` of each level, best first: bids, asks.
    Snapshot {
        bids: Vec<(usize, usize)>,
        asks: Vec<(usize, usize)>,
    },
}

/// Column positions from the header.
#[derive(Clone, Debug)]
struct Layout {
    kind: Kind,
    /// `exchange, symbol, timestamp, local_timestamp`.
    common: [usize; 4],
    /// The header's column names, for errors.
    names: Vec<String>,
}

/// The positions of `wanted` among `names`, `None` unless all are there.
fn positions<const N: usize>(names: &[String], wanted: &[&str; N]) -> Option<[usize; N]> {
    let mut out = [0; N];
    for (slot, w) in out.iter_mut().zip(wanted) {
        *slot = names.iter().position(|n| n == w)?;
    }
    Some(out)
}

/// The `(price, amount)` columns of levels `side[0]`, `side[1]`, ... up to the first missing.
fn snapshot_levels(names: &[String], side: &str) -> Vec<(usize, usize)> {
    (0..)
        .map_while(|i| {
            let price = format!("{side}[{i}].price");
            let amount = format!("{side}[{i}].amount");
            positions(names, &[price.as_str(), amount.as_str()]).map(|[p, a]| (p, a))
        })
        .collect()
}

/// The data type a header's columns name (after the common ones).
fn kind_of(names: &[String]) -> Option<Kind> {
    if let Some(c) = positions(names, &TRADE_COLUMNS) {
        return Some(Kind::Trades(c));
    }
    if let Some(c) = positions(names, &QUOTE_COLUMNS) {
        return Some(Kind::Quotes(c));
    }
    if let Some(c) = positions(names, &L2_COLUMNS) {
        return Some(Kind::BookL2(c));
    }
    let bids = snapshot_levels(names, "bids");
    let asks = snapshot_levels(names, "asks");
    (!bids.is_empty() || !asks.is_empty()).then_some(Kind::Snapshot { bids, asks })
}

fn layout(path: &Path, header: &[u8]) -> Result<Layout> {
    let names: Vec<String> = header
        .split(|&b| b == b',')
        .map(|f| String::from_utf8_lossy(f).trim().to_owned())
        .collect();
    let Some((common, kind)) = positions(&names, &COMMON).zip(kind_of(&names)) else {
        let with_common = |own: &[&str]| [&COMMON[..], own].concat().join(",");
        return Err(Error::format(
            path,
            format!(
                "header {:?} is not one of Tardis trades ({}), quotes ({}), incremental_book_L2 \
                 ({}) or book_snapshot_N ({},asks[0].price,asks[0].amount,bids[0].price,\
                 bids[0].amount,...)",
                names.join(","),
                with_common(&TRADE_COLUMNS),
                with_common(&QUOTE_COLUMNS),
                with_common(&L2_COLUMNS),
                COMMON.join(",")
            ),
        ));
    };
    Ok(Layout {
        kind,
        common,
        names,
    })
}

fn venue_of(exchange: &[u8]) -> String {
    String::from_utf8_lossy(exchange).to_ascii_uppercase()
}

/// True when the first line is the header of a Tardis data type read here.
pub fn sniff(first_line: &[u8]) -> bool {
    layout(Path::new(""), first_line).is_ok()
}

/// Opens a file and reads its header: the lines after it and the column layout.
fn read_with_layout(path: &Path) -> Result<(LineBuffer, Layout)> {
    let (lines, header) = open_csv(path)?;
    Ok((lines, layout(path, &header)?))
}

/// Every `(exchange, symbol)` in the file.
pub fn instruments(path: &Path) -> Result<Vec<InstrumentSpec>> {
    let (mut lines, layout) = read_with_layout(path)?;
    let mut seen = BTreeSet::new();
    each_row(&mut lines, layout.names.len(), |fields| {
        let (ex, sym) = (fields[layout.common[0]], fields[layout.common[1]]);
        if !ex.is_empty() && !sym.is_empty() {
            seen.insert((venue_of(ex), String::from_utf8_lossy(sym).into_owned()));
        }
    });
    Ok(seen
        .into_iter()
        .map(|(venue, symbol)| InstrumentSpec {
            symbol,
            venue,
            tick_size: Price::from_raw(1_000_000),
            lot_size: Quantity::from_raw(1_000),
            currency: "USD".into(),
        })
        .collect())
}

/// Reader of one Tardis CSV.
pub type TardisReader = CsvReader<TardisRows>;

/// What reads the rows of a Tardis CSV into records.
pub struct TardisRows {
    layout: Layout,
    registry: InstrumentRegistry,
    /// `incremental_book_L2`: whether an instrument's last row was part of a snapshot.
    in_snapshot: HashMap<InstrumentId, bool>,
    /// The last row's exchange and symbol, and their instrument.
    last: Option<(Vec<u8>, Vec<u8>, InstrumentId)>,
}

/// FNV-1a of a non-numeric trade id, so duplicates can still be recognised.
fn hash_id(id: &[u8]) -> u64 {
    id.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl TardisReader {
    /// Opens a file.
    pub fn open(path: &Path, source: u16, registry: &InstrumentRegistry) -> Result<Self> {
        let (lines, layout) = read_with_layout(path)?;
        let rows = TardisRows {
            layout,
            registry: registry.clone(),
            in_snapshot: HashMap::new(),
            last: None,
        };
        Ok(CsvReader::new(lines, path, source, rows))
    }
}

impl TardisRows {
    /// The instrument of a row (the last row's again without a lookup: a file's rows are
    /// mostly of one instrument).
    fn instrument(&mut self, exchange: &[u8], symbol: &[u8]) -> Result<InstrumentId, RowError> {
        if let Some((ex, sym, id)) = &self.last
            && ex == exchange
            && sym == symbol
        {
            return Ok(*id);
        }
        let venue = venue_of(exchange);
        let name = String::from_utf8_lossy(symbol);
        let id = self
            .registry
            .lookup(&venue, &name)
            .ok_or_else(|| malformed(format!("unknown instrument {venue}:{name}")))?;
        self.last = Some((exchange.to_vec(), symbol.to_vec(), id));
        Ok(id)
    }
}

impl CsvRows for TardisRows {
    fn width(&self) -> usize {
        self.layout.names.len()
    }

    fn parse(
        &mut self,
        f: &[&[u8]],
        seq: &mut LineSeq,
        out: &mut VecDeque<MarketEvent>,
    ) -> Result<(), RowError> {
        let [exchange, symbol, timestamp, local_timestamp] = self.layout.common.map(|i| f[i]);
        let instrument = self.instrument(exchange, symbol)?;
        let layout = &self.layout;
        let name = |i: usize| layout.names[i].as_str();
        let ts_event = micros(timestamp, "timestamp")?;
        let ts_recv = micros(local_timestamp, "local_timestamp")?;
        let times = (ts_event, ts_recv);
        let level =
            |side, price, size, seq| level_update(instrument, times, side, price, size, seq);
        let clear = |seq| book_clear(instrument, times, seq);
        match &layout.kind {
            &Kind::Trades([id, side, price, amount]) => {
                let id = f[id];
                let trade = Trade {
                    instrument,
                    ts_event,
                    ts_recv,
                    price: fixed(f[price], name(price), Price::parse)?,
                    size: fixed(f[amount], name(amount), Quantity::parse)?,
                    aggressor: match f[side] {
                        b"buy" => Side::Buy,
                        b"sell" => Side::Sell,
                        _ => Side::None,
                    },
                    trade_id: (!id.is_empty())
                        .then(|| parse_i64(id).map_or_else(|| hash_id(id), |v| v as u64)),
                    suspicious: false,
                    seq: seq.seq(),
                };
                out.push_back(MarketEvent::Trade(trade));
            }
            &Kind::Quotes([ask_amount, ask_price, bid_price, bid_amount]) => {
                // An empty price: that side of the book is empty.
                let side = |p: usize, q: usize| -> Result<(Option<Price>, Quantity), RowError> {
                    if f[p].is_empty() {
                        Ok((None, Quantity::ZERO))
                    } else {
                        Ok((
                            Some(fixed(f[p], name(p), Price::parse)?),
                            fixed(f[q], name(q), Quantity::parse)?,
                        ))
                    }
                };
                let (ask, ask_size) = side(ask_price, ask_amount)?;
                let (bid, bid_size) = side(bid_price, bid_amount)?;
                let quote = Quote {
                    instrument,
                    ts_event,
                    ts_recv,
                    bid,
                    bid_size,
                    ask,
                    ask_size,
                    update_id: None,
                    suspicious: false,
                    seq: seq.seq(),
                };
                out.push_back(MarketEvent::Quote(quote));
            }
            &Kind::BookL2([is_snapshot, side, price, amount]) => {
                let snapshot = match f[is_snapshot] {
                    b"true" => true,
                    b"false" => false,
                    v => {
                        return Err(malformed(format!(
                            "is_snapshot is {:?}, not true or false",
                            show(v)
                        )));
                    }
                };
                let side = match f[side] {
                    b"bid" => Side::Buy,
                    b"ask" => Side::Sell,
                    v => return Err(malformed(format!("side is {:?}, not bid or ask", show(v)))),
                };
                let price = fixed(f[price], name(price), Price::parse)?;
                let size = fixed(f[amount], name(amount), Quantity::parse)?;
                // A snapshot that follows updates (or starts the file) replaces the book.
                let was = self.in_snapshot.insert(instrument, snapshot);
                if snapshot && was != Some(true) {
                    out.push_back(clear(seq.seq()));
                }
                out.push_back(level(side, price, size, seq.seq()));
            }
            Kind::Snapshot { bids, asks } => {
                let mut levels = Vec::with_capacity(bids.len() + asks.len());
                for (side, columns) in [(Side::Buy, bids), (Side::Sell, asks)] {
                    for &(p, q) in columns {
                        match (f[p].is_empty(), f[q].is_empty()) {
                            // The book has fewer levels than the snapshot's columns.
                            (true, true) => {}
                            (false, false) => levels.push((
                                side,
                                fixed(f[p], name(p), Price::parse)?,
                                fixed(f[q], name(q), Quantity::parse)?,
                            )),
                            _ => {
                                return Err(malformed(format!(
                                    "{} and {} must both be given or both be empty",
                                    name(p),
                                    name(q)
                                )));
                            }
                        }
                    }
                }
                out.push_back(clear(seq.seq()));
                for (side, price, size) in levels {
                    out.push_back(level(side, price, size, seq.seq()));
                }
            }
        }
        Ok(())
    }
}

/// A time in µs since the epoch.
fn micros(field: &[u8], name: &str) -> Result<Timestamp, RowError> {
    parse_i64(field)
        .and_then(Timestamp::from_micros)
        .ok_or_else(|| malformed(format!("{name} is not a time in µs: {:?}", show(field))))
}
