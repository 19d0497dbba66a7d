//! TrueFX quotes: the best bid and ask of a currency pair on the interbank market, without
//! sizes. Two layouts, plain or gzipped:
//!
//! - TrueFX's own files: no header, `USD/JPY,20130101 22:00:00.295,86.655,86.728` (pair, UTC
//!   time to the millisecond, bid, ask); every row names its pair. Told by their first row, or
//!   by TrueFX's monthly file name (`EURUSD-2013-01.csv`) when that row is damaged.
//! - a `timestamp,bid,ask` header, times in RFC 3339 (`2013-01-01 22:00:00.295000+00:00`; a
//!   time without an offset is UTC, as TrueFX's are), the pair named by the file: its name
//!   starts with the pair's six letters (`usdjpy-ticks.csv`, `EURUSD_2013-01.csv`).
//!
//! Instruments: venue `TRUEFX`, symbol the pair's six letters (`USDJPY`), quoted in the second
//! currency, tick 0.001 for yen pairs and 0.00001 for the others (the digits TrueFX gives), lot
//! 1 (one unit of the base currency).
//!
//! TrueFX records no sizes: each side of a quote is given the source's `quote_size`, and
//! without one the file is not read ([`SourceConfig::Replay`](crate::SourceConfig::Replay)).

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;

use tickflow_core::{
    InstrumentId, InstrumentRegistry, InstrumentSpec, MarketEvent, Price, Quantity, Quote,
    Timestamp,
};

use super::text::{
    CsvReader, CsvRows, LineBuffer, LineSeq, RowError, each_row, fixed, malformed, open_csv, show,
    split_fields, stream_file,
};
use crate::error::{Error, Result};

/// The venue of TrueFX instruments.
pub const VENUE: &str = "TRUEFX";

/// Why a TrueFX file is not read without a quote size.
pub const NO_SIZES: &str = "TrueFX quotes, which record no sizes: give the source a quote_size \
                            (--quote-size on the command line) to read them";

/// The header of the named layout.
const HEADER: [&[u8]; 3] = [b"timestamp", b"bid", b"ask"];

fn is_header(line: &[u8]) -> bool {
    let mut fields = Vec::new();
    split_fields(line, &mut fields);
    fields.len() == 3 && fields.iter().zip(HEADER).all(|(f, h)| f.trim_ascii() == h)
}

/// `USD/JPY` → `USDJPY`.
fn pair(field: &[u8]) -> Option<String> {
    match field {
        [a, b, c, b'/', d, e, f] => {
            let letters = [*a, *b, *c, *d, *e, *f];
            letters
                .iter()
                .all(u8::is_ascii_uppercase)
                .then(|| String::from_utf8_lossy(&letters).into_owned())
        }
        _ => None,
    }
}

/// `20130101 22:00:00.295` (UTC).
fn raw_time(field: &[u8]) -> Option<Timestamp> {
    let text = std::str::from_utf8(field).ok()?;
    let (date, time) = text.split_once(' ')?;
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let iso = format!("{}-{}-{}T{time}Z", &date[..4], &date[4..6], &date[6..]);
    Timestamp::parse_rfc3339(&iso).ok()
}

/// An RFC 3339 time; without an offset, UTC.
fn named_time(field: &[u8]) -> Result<Timestamp, String> {
    let text = std::str::from_utf8(field).map_err(|_| "not text".to_string())?;
    let b = text.as_bytes();
    let n = b.len();
    let has_offset = matches!(b.last(), Some(b'Z' | b'z'))
        || (n >= 6 && matches!(b[n - 6], b'+' | b'-') && b[n - 3] == b':');
    let parsed = if has_offset || text.len() <= 10 {
        Timestamp::parse_rfc3339(text)
    } else {
        Timestamp::parse_rfc3339(&format!("{text}Z"))
    };
    parsed.map_err(|e| e.to_string())
}

/// Why a `timestamp,bid,ask` file is not read when its name does not give its pair.
const NOT_NAMED: &str = "a timestamp,bid,ask file not named for its currency pair (TrueFX quotes \
                         are read from a file whose name starts with the pair's six letters, \
                         as usdjpy-ticks.csv)";

/// Whether a CSV file holds TrueFX quotes: its first line is a TrueFX row, or the
/// `timestamp,bid,ask` header of a file named for its pair, or its name is a TrueFX monthly
/// file's (its first row may be damaged). `Err` says why a `timestamp,bid,ask` file that is not
/// named for its pair is not read.
pub fn detect(path: &Path, first_line: &[u8]) -> Result<bool, String> {
    if is_header(first_line) {
        return pair_of_name(path)
            .map(|_| true)
            .ok_or_else(|| NOT_NAMED.into());
    }
    let mut fields = Vec::new();
    split_fields(first_line, &mut fields);
    let row = fields.len() == 4 && pair(fields[0]).is_some() && raw_time(fields[1]).is_some();
    Ok(row || is_monthly_name(path))
}

/// True when the file has the name of a TrueFX monthly file: `EURUSD-2013-01.csv`, plain or
/// gzipped.
fn is_monthly_name(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let Some(stem) = name
        .strip_suffix(".csv")
        .or_else(|| name.strip_suffix(".csv.gz"))
    else {
        return false;
    };
    let b = stem.as_bytes();
    b.len() == 14
        && b[..6].iter().all(u8::is_ascii_alphabetic)
        && b[6] == b'-'
        && b[11] == b'-'
        && b[7..11].iter().chain(&b[12..]).all(u8::is_ascii_digit)
}

/// The pair a file of the named layout is named for: its first six letters.
fn pair_of_name(path: &Path) -> Option<String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let head: Vec<char> = name.chars().take(7).collect();
    let six = head.len() >= 6 && head[..6].iter().all(char::is_ascii_alphabetic);
    if !six || head.get(6).is_some_and(char::is_ascii_alphabetic) {
        return None;
    }
    Some(head[..6].iter().collect::<String>().to_ascii_uppercase())
}

/// A TrueFX instrument.
fn spec(symbol: String) -> InstrumentSpec {
    let quote = symbol[3..].to_string();
    let tick = if quote == "JPY" { 1_000_000 } else { 10_000 };
    InstrumentSpec {
        symbol,
        venue: VENUE.into(),
        tick_size: Price::from_raw(tick),
        lot_size: Quantity::from_raw(1_000_000_000),
        currency: quote,
    }
}

/// The file's lines to read, and its pair when the file names it (the named layout).
fn lines_of(path: &Path) -> Result<(LineBuffer, Option<String>)> {
    let (lines, first) = open_csv(path)?;
    if is_header(&first) {
        let pair = pair_of_name(path).ok_or_else(|| Error::format(path, NOT_NAMED))?;
        return Ok((lines, Some(pair)));
    }
    // TrueFX's own files have no header: read from the first line.
    drop(lines);
    Ok((LineBuffer::streaming(stream_file(path)?.reader), None))
}

/// Every pair in the file.
pub fn instruments(path: &Path) -> Result<Vec<InstrumentSpec>> {
    let (mut lines, named) = lines_of(path)?;
    if let Some(symbol) = named {
        return Ok(vec![spec(symbol)]);
    }
    let mut seen = BTreeSet::new();
    each_row(&mut lines, 4, |fields| {
        if let Some(p) = pair(fields[0]) {
            seen.insert(p);
        }
    });
    Ok(seen.into_iter().map(spec).collect())
}

/// Reader of one TrueFX file.
pub type TrueFxReader = CsvReader<QuoteRows>;

/// What reads the rows of a TrueFX file into quotes.
pub struct QuoteRows {
    registry: InstrumentRegistry,
    /// The file's instrument, in the named layout.
    named: Option<InstrumentId>,
    /// The pair and instrument of the row before (TrueFX's own layout).
    last: Option<(Vec<u8>, InstrumentId)>,
    /// The size given to each side.
    size: Quantity,
}

impl TrueFxReader {
    /// Opens a file; each side of its quotes is given `size`.
    pub fn open(
        path: &Path,
        source: u16,
        registry: &InstrumentRegistry,
        size: Quantity,
    ) -> Result<Self> {
        let (lines, named) = lines_of(path)?;
        let named = match named {
            Some(symbol) => {
                Some(
                    registry
                        .lookup(VENUE, &symbol)
                        .ok_or_else(|| Error::Undeclared {
                            venue: VENUE.into(),
                            symbol,
                        })?,
                )
            }
            None => None,
        };
        let rows = QuoteRows {
            registry: registry.clone(),
            named,
            last: None,
            size,
        };
        Ok(CsvReader::new(lines, path, source, rows))
    }
}

impl QuoteRows {
    fn instrument(&mut self, field: &[u8]) -> Result<InstrumentId, RowError> {
        if let Some((p, id)) = &self.last
            && p == field
        {
            return Ok(*id);
        }
        let symbol = pair(field)
            .ok_or_else(|| malformed(format!("pair is {:?}, not like USD/JPY", show(field))))?;
        let id = self
            .registry
            .lookup(VENUE, &symbol)
            .ok_or_else(|| malformed(format!("unknown instrument {VENUE}:{symbol}")))?;
        self.last = Some((field.to_vec(), id));
        Ok(id)
    }
}

impl CsvRows for QuoteRows {
    fn width(&self) -> usize {
        if self.named.is_some() { 3 } else { 4 }
    }

    fn parse(
        &mut self,
        f: &[&[u8]],
        seq: &mut LineSeq,
        out: &mut VecDeque<MarketEvent>,
    ) -> Result<(), RowError> {
        let (instrument, ts, bid, ask) = match self.named {
            Some(id) => {
                let ts = named_time(f[0])
                    .map_err(|why| malformed(format!("timestamp {:?}: {why}", show(f[0]))))?;
                (id, ts, f[1], f[2])
            }
            None => {
                let id = self.instrument(f[0])?;
                let ts = raw_time(f[1]).ok_or_else(|| {
                    malformed(format!(
                        "time is {:?}, not yyyymmdd HH:MM:SS.mmm",
                        show(f[1])
                    ))
                })?;
                (id, ts, f[2], f[3])
            }
        };
        let bid = fixed(bid, "bid", Price::parse)?;
        let ask = fixed(ask, "ask", Price::parse)?;
        let seq = seq.seq();
        out.push_back(MarketEvent::Quote(Quote {
            instrument,
            ts_event: ts,
            ts_recv: ts,
            bid: Some(bid),
            bid_size: self.size,
            ask: Some(ask),
            ask_size: self.size,
            update_id: None,
            suspicious: false,
            seq,
        }));
        Ok(())
    }
}
