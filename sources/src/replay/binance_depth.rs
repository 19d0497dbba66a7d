//! Binance futures order-book CSV (the tick-level depth Binance publishes for its USDⓈ-M and
//! COIN-M futures): `symbol,timestamp,first_update_id,last_update_id,side,update_type,price,
//! qty,pu`, one price level a row, a header first, plain or gzipped.
//!
//! - `timestamp` is the venue's event time in ms (the file has no receive time, so the record's
//!   receive time is the same);
//! - `side` is `b` (bid) or `a` (ask); `qty` is the level's new size, 0 removes it;
//! - `update_type` is `snap` for the levels of a depth snapshot (the rows of one snapshot share
//!   their `last_update_id`) or `set` for an update. A snapshot replaces the book: its first
//!   row is preceded by a [`Clear`](tickflow_core::BookAction::Clear). An update that the
//!   snapshot before it already holds (`last_update_id` at most the snapshot's) is rejected as
//!   a duplicate.
//! - the rows of one update share `first_update_id`, `last_update_id` and `pu` (the
//!   `last_update_id` of the update before it). An update whose `pu` is not the update
//!   before's `last_update_id`, or the first after a snapshot whose `first_update_id` does not
//!   reach back to it, follows missing updates: a [`Gap`](tickflow_core::RejectReason::Gap)
//!   reject is reported at its first row and the book is cleared before its levels, as at the
//!   Binance websocket captures' gaps ([`super::binance`]).
//!
//! The file does not name its market: a symbol with an underscore (`BTCUSD_PERP`,
//! `ETHUSD_240628`) is a COIN-M contract (venue `BINANCE-COINM`), any other a USDⓈ-M one
//! (`BINANCE-USDM`), as in Binance's own symbol scheme.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;

use tickflow_core::depth::{Step, UpdateIds, UpdateSequence};
use tickflow_core::{
    InstrumentId, InstrumentRegistry, InstrumentSpec, MarketEvent, Price, Quantity, Side, Timestamp,
};

use super::text::{
    CsvReader, CsvRows, LineBuffer, LineSeq, Notice, RowError, each_row, fixed, malformed,
    open_csv, parse_i64, show,
};
use super::{binance, book_clear, depth_gap, held, level_update};
use crate::error::{Error, Result};

/// The columns read, in this order in [`Layout::index`].
const COLUMNS: [&str; 9] = [
    "symbol",
    "timestamp",
    "first_update_id",
    "last_update_id",
    "pu",
    "side",
    "update_type",
    "price",
    "qty",
];

/// Column positions from the header.
#[derive(Clone, Debug)]
struct Layout {
    index: [usize; 9],
    width: usize,
}

fn layout(header: &[u8]) -> Option<Layout> {
    let names: Vec<&[u8]> = header
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .collect();
    let mut index = [0; 9];
    for (slot, wanted) in index.iter_mut().zip(COLUMNS) {
        *slot = names.iter().position(|n| *n == wanted.as_bytes())?;
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
                "header {:?} is not Binance depth ({})",
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
    /// Each instrument's update ids.
    books: HashMap<InstrumentId, Depth>,
    /// The gap found at the row read last.
    notice: Option<Notice>,
}

/// Where an instrument's depth stands.
#[derive(Default)]
struct Depth {
    sequence: UpdateSequence,
    /// The snapshot or update its last row belonged to.
    current: Option<Group>,
}

/// The rows of one snapshot (its `last_update_id`) or one update (its ids, and where it
/// stood when its first row was read).
#[derive(Clone, Copy, PartialEq)]
enum Group {
    Snapshot(u64),
    Update(UpdateIds, Step),
}

impl BinanceDepthReader {
    /// Opens a file.
    pub fn open(path: &Path, source: u16, registry: &InstrumentRegistry) -> Result<Self> {
        let (lines, layout) = read_with_layout(path)?;
        let rows = DepthRows {
            layout,
            registry: registry.clone(),
            books: HashMap::new(),
            notice: None,
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
        let [
            symbol,
            timestamp,
            first_id,
            update_id,
            prev_id,
            side,
            update_type,
            price,
            qty,
        ] = self.layout.index.map(|i| f[i]);
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
        let id = |field: &[u8], name: &str| {
            parse_i64(field)
                .and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| malformed(format!("{name} is not an update id: {:?}", show(field))))
        };
        let update_id = id(update_id, "last_update_id")?;
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
        // The first row of a snapshot clears the book; the first row of an update is checked
        // against the ids before it, and the update's other rows share where it stood.
        let ids = match snap {
            true => None,
            false => Some(UpdateIds {
                first: id(first_id, "first_update_id")?,
                last: update_id,
                prev: Some(id(prev_id, "pu")?),
            }),
        };
        let depth = self.books.entry(instrument).or_default();
        let step = match (ids, depth.current) {
            (None, Some(Group::Snapshot(current))) if current == update_id => Step::Follows,
            (None, _) => {
                depth.sequence.snapshot(update_id);
                depth.current = Some(Group::Snapshot(update_id));
                out.push_back(book_clear(instrument, (ts, ts), seq.seq()));
                Step::Follows
            }
            (Some(ids), Some(Group::Update(current, step))) if current == ids => step,
            (Some(ids), _) => {
                let step = depth.sequence.diff(ids);
                depth.current = Some(Group::Update(ids, step));
                if let Step::Gap(gap) = step {
                    self.notice = Some(Notice {
                        reject: depth_gap(&gap),
                        instrument,
                        ts_event: ts,
                    });
                    out.push_back(book_clear(instrument, (ts, ts), seq.seq()));
                }
                step
            }
        };
        if let Step::Held(snapshot) = step {
            return Err(held(update_id, snapshot));
        }
        let seq = seq.seq();
        out.push_back(level_update(instrument, (ts, ts), side, price, size, seq));
        Ok(())
    }

    fn notice(&mut self) -> Option<Notice> {
        self.notice.take()
    }
}
