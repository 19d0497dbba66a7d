//! Tardis.dev CSV: trades (`exchange,symbol,timestamp,local_timestamp,id,side,price,amount`)
//! and quotes (`exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount`).
//! Timestamps are microseconds since the epoch. Columns are found by header name. Files are
//! plain or gzipped (`.csv.gz`, as Tardis ships them) and read as a stream.

use std::collections::BTreeSet;
use std::path::Path;

use tickflow_core::{
    InstrumentRegistry, InstrumentSpec, MarketEvent, ParseFixedError, Price, Quantity, Quote,
    RejectReason, SeqNo, Side, Timestamp, Trade,
};

use super::text::{LineBuffer, LineSeq, bad_row, parse_i64, show, split_fields, stream_file};
use crate::error::{Error, Result};
use crate::{PartReader, SourceItem};

const TRADE_COLUMNS: [&str; 8] = [
    "exchange",
    "symbol",
    "timestamp",
    "local_timestamp",
    "id",
    "side",
    "price",
    "amount",
];
const QUOTE_COLUMNS: [&str; 8] = [
    "exchange",
    "symbol",
    "timestamp",
    "local_timestamp",
    "ask_amount",
    "ask_price",
    "bid_price",
    "bid_amount",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Trades,
    Quotes,
}

/// Column positions from the header.
#[derive(Clone, Debug)]
struct Layout {
    kind: Kind,
    index: [usize; 8],
    width: usize,
}

fn layout(path: &Path, header: &[u8]) -> Result<Layout> {
    let names: Vec<String> = header
        .split(|&b| b == b',')
        .map(|f| String::from_utf8_lossy(f).trim().to_owned())
        .collect();
    for (kind, wanted) in [(Kind::Trades, TRADE_COLUMNS), (Kind::Quotes, QUOTE_COLUMNS)] {
        let found: Option<Vec<usize>> = wanted
            .iter()
            .map(|w| names.iter().position(|n| n == w))
            .collect();
        if let Some(found) = found {
            let mut index = [0; 8];
            index.copy_from_slice(&found);
            return Ok(Layout {
                kind,
                index,
                width: names.len(),
            });
        }
    }
    Err(Error::format(
        path,
        format!(
            "header {:?} is neither Tardis trades ({}) nor quotes ({})",
            names.join(","),
            TRADE_COLUMNS.join(","),
            QUOTE_COLUMNS.join(",")
        ),
    ))
}

fn venue_of(exchange: &[u8]) -> String {
    String::from_utf8_lossy(exchange).to_ascii_uppercase()
}

/// True when the first line is a Tardis trades or quotes header.
pub fn sniff(first_line: &[u8]) -> bool {
    layout(Path::new(""), first_line).is_ok()
}

/// Opens a file (plain or gzip CSV, read as a stream) and reads its header: the lines after it
/// and the column layout.
fn read_with_layout(path: &Path) -> Result<(LineBuffer, Layout)> {
    let mut lines = LineBuffer::streaming(stream_file(path)?.reader);
    let Some((_, header)) = lines.next_line() else {
        let why = match lines.take_error() {
            Some(e) => format!("cannot be read: {e}"),
            None => "empty file".into(),
        };
        return Err(Error::format(path, why));
    };
    let layout = layout(path, header)?;
    Ok((lines, layout))
}

/// Every `(exchange, symbol)` in the file.
pub fn instruments(path: &Path) -> Result<Vec<InstrumentSpec>> {
    let (mut lines, layout) = read_with_layout(path)?;
    let mut seen = BTreeSet::new();
    while let Some((_, line)) = lines.next_line() {
        let mut fields = Vec::new();
        split_fields(line, &mut fields);
        if fields.len() == layout.width {
            let (ex, sym) = (fields[layout.index[0]], fields[layout.index[1]]);
            if !ex.is_empty() && !sym.is_empty() {
                seen.insert((venue_of(ex), String::from_utf8_lossy(sym).into_owned()));
            }
        }
    }
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
pub struct TardisReader {
    lines: LineBuffer,
    layout: Layout,
    origin: String,
    registry: InstrumentRegistry,
    seq: LineSeq,
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
        Ok(Self {
            lines,
            layout,
            origin: path.display().to_string(),
            registry: registry.clone(),
            seq: LineSeq::new(source),
        })
    }
}

fn parse_row(
    layout: &Layout,
    registry: &InstrumentRegistry,
    f: &[&[u8]],
    seq: SeqNo,
) -> Result<MarketEvent, (RejectReason, String)> {
    let malformed = |m: String| (RejectReason::Malformed, m);
    if f.len() != layout.width {
        return Err(malformed(format!(
            "expected {} columns, found {}",
            layout.width,
            f.len()
        )));
    }
    let col = |i: usize| f[layout.index[i]];
    let venue = venue_of(col(0));
    let symbol = String::from_utf8_lossy(col(1));
    let instrument = registry
        .lookup(&venue, &symbol)
        .ok_or_else(|| malformed(format!("unknown instrument {venue}:{symbol}")))?;
    let micros = |i: usize, name: &str| -> Result<Timestamp, (RejectReason, String)> {
        parse_i64(col(i))
            .and_then(Timestamp::from_micros)
            .ok_or_else(|| malformed(format!("{name} is not a time in µs: {:?}", show(col(i)))))
    };
    let fixed_err = |name: &str, e: ParseFixedError| match e {
        ParseFixedError::NotFinite(_) => (RejectReason::NonFinitePrice, format!("{name}: {e}")),
        e => malformed(format!("{name}: {e}")),
    };
    let text = |i: usize| String::from_utf8_lossy(col(i)).into_owned();
    let price = |i: usize, name: &str| Price::parse(&text(i)).map_err(|e| fixed_err(name, e));
    let qty = |i: usize, name: &str| Quantity::parse(&text(i)).map_err(|e| fixed_err(name, e));
    let ts_event = micros(2, "timestamp")?;
    let ts_recv = micros(3, "local_timestamp")?;
    Ok(match layout.kind {
        Kind::Trades => {
            let id = col(4);
            MarketEvent::Trade(Trade {
                instrument,
                ts_event,
                ts_recv,
                price: price(6, "price")?,
                size: qty(7, "amount")?,
                aggressor: match col(5) {
                    b"buy" => Side::Buy,
                    b"sell" => Side::Sell,
                    _ => Side::None,
                },
                trade_id: (!id.is_empty())
                    .then(|| parse_i64(id).map_or_else(|| hash_id(id), |v| v as u64)),
                suspicious: false,
                seq,
            })
        }
        Kind::Quotes => {
            let side = |pi: usize,
                        si: usize,
                        name: &str|
             -> Result<(Option<Price>, Quantity), (RejectReason, String)> {
                if col(pi).is_empty() {
                    Ok((None, Quantity::ZERO))
                } else {
                    Ok((Some(price(pi, name)?), qty(si, name)?))
                }
            };
            let (ask, ask_size) = side(5, 4, "ask_price")?;
            let (bid, bid_size) = side(6, 7, "bid_price")?;
            MarketEvent::Quote(Quote {
                instrument,
                ts_event,
                ts_recv,
                bid,
                bid_size,
                ask,
                ask_size,
                update_id: None,
                suspicious: false,
                seq,
            })
        }
    })
}

impl PartReader for TardisReader {
    fn next_item(&mut self) -> Option<SourceItem> {
        loop {
            let Some((line_no, line)) = self.lines.next_line() else {
                // A file that breaks off part-way says so once, as a reject.
                return self.lines.cut_short(&self.origin, &mut self.seq);
            };
            let mut fields = Vec::with_capacity(8);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            split_fields(line, &mut fields);
            self.seq.line(line_no);
            let seq = self.seq.seq();
            return Some(
                match parse_row(&self.layout, &self.registry, &fields, seq) {
                    Ok(e) => SourceItem::Event(e),
                    Err((reason, detail)) => {
                        SourceItem::Bad(bad_row(&self.origin, seq, reason, detail))
                    }
                },
            );
        }
    }
}
