//! Lean (AlgoSeek) tick data: `<sym>_<yyyymmdd>_trade.zip` and `..._quote.zip`, each holding
//! one headerless CSV. Prices are integers scaled by 10,000; times are milliseconds since
//! midnight New York time of the file's date.
//!
//! - trade row: `ms, price, size, exchange, sale_condition, suspicious`
//! - quote row: `ms, bid, bid_size, ask, ask_size, exchange, condition, suspicious`; a zero
//!   price means the row does not set that side.
//!
//! A quote row sets one side of the best bid and offer: each change of the top of book is a
//! bid row and an ask row of the same millisecond. Read as they stand, rows would be quotes
//! of one side each, and every consumer that needs both sides (the simulated exchange, the
//! quote features, mid-price bars) would see a book with half of it missing after every
//! row. So the reader keeps the file's top of book: the bid row and the ask row of one instant
//! make one quote, and a row that sets one side alone is a quote whose other side is the one
//! last set. Until a side has been set, quotes lack it. A row that normalization will refuse
//! (flagged suspicious, a price or size that is not positive) is passed on as it was read and
//! sets nothing, so one bad row never spoils the quotes after it.

use std::io::Read;
use std::path::Path;

use tickflow_core::{
    InstrumentId, InstrumentRegistry, InstrumentSpec, MarketEvent, Price, Quantity, Quote,
    RejectReason, SeqNo, Side, Timestamp, Trade,
};

use super::text::{
    LineBuffer, LineSeq, bad_row, is_non_finite, parse_i64, show, split_fields, split_fixed,
};
use super::tz;
use crate::error::{Error, Result};
use crate::{PartReader, SourceItem};

/// Venue of Lean US equity data (consolidated tape).
pub const VENUE: &str = "US";

/// Trade or quote file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Trades.
    Trade,
    /// Quotes.
    Quote,
}

/// What a Lean file name says: symbol, date, kind.
pub fn parse_name(path: &Path) -> Result<(String, (i32, u32, u32), Kind)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let stem = name.strip_suffix(".zip").unwrap_or(name);
    let parts: Vec<&str> = stem.split('_').collect();
    let bad = || {
        Error::format(
            path,
            "a Lean tick file is named <symbol>_<yyyymmdd>_<trade|quote>.zip",
        )
    };
    let [symbol, date, kind] = parts[..] else {
        return Err(bad());
    };
    let date = tz::parse_date(date).ok_or_else(bad)?;
    let kind = match kind {
        "trade" => Kind::Trade,
        "quote" => Kind::Quote,
        _ => return Err(bad()),
    };
    Ok((symbol.to_ascii_uppercase(), date, kind))
}

/// The instrument a Lean file holds.
pub fn instruments(path: &Path) -> Result<Vec<InstrumentSpec>> {
    let (symbol, _, _) = parse_name(path)?;
    Ok(vec![equity_spec(symbol)])
}

fn equity_spec(symbol: String) -> InstrumentSpec {
    InstrumentSpec {
        symbol,
        venue: VENUE.into(),
        tick_size: Price::from_raw(10_000_000),
        lot_size: Quantity::from_raw(1_000_000_000),
        currency: "USD".into(),
    }
}

/// A zip archive that holds at least one file.
fn open_archive(path: &Path) -> Result<zip::ZipArchive<std::fs::File>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let archive = zip::ZipArchive::new(file)
        .map_err(|e| Error::format(path, format!("not a readable zip: {e}")))?;
    if archive.is_empty() {
        return Err(Error::format(path, "zip archive is empty"));
    }
    Ok(archive)
}

/// Reads the single CSV inside a zip.
pub fn read_zip(path: &Path) -> Result<(String, Vec<u8>)> {
    let mut archive = open_archive(path)?;
    let mut entry = archive
        .by_index(0)
        .map_err(|e| Error::format(path, format!("zip entry: {e}")))?;
    let inner = entry.name().map(|n| n.to_string()).unwrap_or_default();
    let mut data = Vec::with_capacity(entry.size() as usize);
    entry
        .read_to_end(&mut data)
        .map_err(|e| Error::format(path, format!("zip entry {inner}: {e}")))?;
    Ok((inner, data))
}

/// The single CSV inside a zip, inflated as it is read: the first rows are there at once and
/// the whole file is never held. Its CRC is checked when the end is reached.
pub fn stream_zip(path: &Path) -> Result<Box<dyn Read + Send>> {
    let mut archive = open_archive(path)?;
    let mut entry = archive
        .by_index_raw(0)
        .map_err(|e| Error::format(path, format!("zip entry: {e}")))?;
    let (method, crc) = (entry.compression(), entry.crc32());
    let mut raw = Vec::with_capacity(usize::try_from(entry.compressed_size()).unwrap_or(0));
    entry
        .read_to_end(&mut raw)
        .map_err(|e| Error::format(path, format!("zip entry: {e}")))?;
    let inner: Box<dyn Read + Send> = match method {
        zip::CompressionMethod::Stored => Box::new(std::io::Cursor::new(raw)),
        zip::CompressionMethod::Deflated => {
            Box::new(flate2::read::DeflateDecoder::new(std::io::Cursor::new(raw)))
        }
        other => {
            return Err(Error::format(
                path,
                format!("zip entry compressed with {other}, which is not read"),
            ));
        }
    };
    Ok(Box::new(CrcChecked {
        inner: flate2::CrcReader::new(inner),
        expected: crc,
    }))
}

/// A reader whose end fails when the bytes read do not have the expected CRC-32.
struct CrcChecked {
    inner: flate2::CrcReader<Box<dyn Read + Send>>,
    expected: u32,
}

impl Read for CrcChecked {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && self.inner.crc().sum() != self.expected {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "CRC-32 {:08x} of the inflated entry, expected {:08x}",
                    self.inner.crc().sum(),
                    self.expected
                ),
            ));
        }
        Ok(n)
    }
}

/// True when a file named like Lean data holds tick data (not minute, hour or daily bars,
/// whose files have the same names). A file that is not a readable zip counts as tick data,
/// so that opening it reports what is wrong instead of skipping it silently.
pub fn is_tick_zip(path: &Path) -> bool {
    if parse_name(path).is_err() {
        return false;
    }
    let Some(mut archive) = std::fs::File::open(path)
        .ok()
        .and_then(|f| zip::ZipArchive::new(f).ok())
    else {
        return true;
    };
    archive
        .by_index(0)
        .ok()
        .and_then(|e| {
            e.name()
                .ok()
                .map(|n| n.to_ascii_lowercase().contains("_tick"))
        })
        .unwrap_or(true)
}

/// Reader of one Lean tick file.
pub struct LeanReader {
    lines: LineBuffer,
    ctx: Ctx,
    seq: LineSeq,
    /// Quote files: the top of book the rows so far have set.
    top: TopOfBook,
    /// Quote files: a one-sided quote waiting for the other side of its instant.
    held: Option<Quote>,
    /// An item read after a held quote, given out after it.
    queued: Option<SourceItem>,
}

/// The best bid and offer as a Lean quote file sets it, side by side.
#[derive(Default)]
struct TopOfBook {
    bid: Option<(Price, Quantity)>,
    ask: Option<(Price, Quantity)>,
}

impl TopOfBook {
    /// `q` as a quote of the whole top of book: the sides it sets, and the others as they
    /// were last set. A quote that normalization will refuse is given back as read and sets
    /// nothing.
    fn settle(&mut self, mut q: Quote) -> Quote {
        if !sound(&q) {
            return q;
        }
        if let Some(p) = q.bid {
            self.bid = Some((p, q.bid_size));
        }
        if let Some(p) = q.ask {
            self.ask = Some((p, q.ask_size));
        }
        (q.bid, q.bid_size) = self
            .bid
            .map_or((None, Quantity::ZERO), |(p, s)| (Some(p), s));
        (q.ask, q.ask_size) = self
            .ask
            .map_or((None, Quantity::ZERO), |(p, s)| (Some(p), s));
        q
    }
}

/// Whether normalization will take `q`: not flagged, and each side it has priced and sized
/// above zero.
fn sound(q: &Quote) -> bool {
    let valid = |side: Option<Price>, size: Quantity| {
        side.is_none_or(|p| p.is_positive() && size.is_positive())
    };
    !q.suspicious && valid(q.bid, q.bid_size) && valid(q.ask, q.ask_size)
}

/// Whether `first` and `then` are the two rows of one change of the top of book: the same
/// instant, one side each, not the same side, both sound.
fn one_change(first: &Quote, then: &Quote) -> bool {
    first.ts_event == then.ts_event
        && sound(first)
        && sound(then)
        && one_sided(first)
        && one_sided(then)
        && first.bid.is_some() != then.bid.is_some()
}

fn one_sided(q: &Quote) -> bool {
    q.bid.is_some() != q.ask.is_some()
}

/// What every row of a file shares.
struct Ctx {
    origin: String,
    kind: Kind,
    instrument: InstrumentId,
    midnight: Timestamp,
}

impl LeanReader {
    /// Opens a file.
    pub fn open(path: &Path, source: u16, registry: &InstrumentRegistry) -> Result<Self> {
        let (symbol, (y, m, d), kind) = parse_name(path)?;
        let instrument = registry
            .lookup(VENUE, &symbol)
            .ok_or_else(|| Error::Undeclared {
                venue: VENUE.into(),
                symbol: symbol.clone(),
            })?;
        let midnight = tz::new_york_midnight(y, m, d)
            .ok_or_else(|| Error::format(path, "date out of range"))?;
        let data = stream_zip(path)?;
        let ctx = Ctx {
            origin: path.display().to_string(),
            kind,
            instrument,
            midnight,
        };
        Ok(Self {
            lines: LineBuffer::streaming(data),
            ctx,
            seq: LineSeq::new(source),
            top: TopOfBook::default(),
            held: None,
            queued: None,
        })
    }

    /// The next row as read: a record or a bad row.
    fn next_row(&mut self) -> Option<SourceItem> {
        loop {
            let Some((line_no, line)) = self.lines.next_line() else {
                // A file that breaks off part-way says so once, as a reject.
                return self.lines.cut_short(&self.ctx.origin, &mut self.seq);
            };
            let mut fields: [&[u8]; 9] = [&[]; 9];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let n = split_fixed(line, &mut fields);
            self.seq.line(line_no);
            let seq = self.seq.seq();
            let parsed = if n > fields.len() {
                Err((RejectReason::Malformed, format!("too many columns ({n})")))
            } else {
                self.ctx.parse(&fields[..n], seq)
            };
            return Some(match parsed {
                Ok(event) => SourceItem::Event(event),
                Err((reason, detail)) => {
                    SourceItem::Bad(bad_row(&self.ctx.origin, seq, reason, detail))
                }
            });
        }
    }

    /// The quote of `q` as the top of book now stands, or `None` when `q` is one-sided and
    /// held for the other side of its instant.
    fn quote(&mut self, q: Quote) -> Option<SourceItem> {
        let quote = |q| Some(SourceItem::Event(MarketEvent::Quote(q)));
        match self.held.take() {
            Some(first) if one_change(&first, &q) => {
                let (bid, ask) = if first.bid.is_some() {
                    (first, q)
                } else {
                    (q, first)
                };
                // Numbered by its first row.
                quote(self.top.settle(Quote {
                    ask: ask.ask,
                    ask_size: ask.ask_size,
                    seq: first.seq,
                    ..bid
                }))
            }
            Some(first) => {
                let out = self.top.settle(first);
                self.queued = self.quote(q);
                quote(out)
            }
            None if one_sided(&q) && sound(&q) => {
                self.held = Some(q);
                None
            }
            None => quote(self.top.settle(q)),
        }
    }
}

impl Ctx {
    fn parse(&self, fields: &[&[u8]], seq: SeqNo) -> Result<MarketEvent, (RejectReason, String)> {
        let expected = match self.kind {
            Kind::Trade => 6,
            Kind::Quote => 8,
        };
        if fields.len() != expected {
            return Err((
                RejectReason::Malformed,
                format!("expected {expected} columns, found {}", fields.len()),
            ));
        }
        let int = |i: usize, name: &str| -> Result<i64, (RejectReason, String)> {
            parse_i64(fields[i]).ok_or_else(|| {
                if is_non_finite(fields[i]) {
                    (
                        RejectReason::NonFinitePrice,
                        format!("{name} is {}", show(fields[i])),
                    )
                } else {
                    (
                        RejectReason::Malformed,
                        format!("{name} is not an integer: {:?}", show(fields[i])),
                    )
                }
            })
        };
        let ms = int(0, "time (ms since midnight)")?;
        if !(0..86_400_000 * 2).contains(&ms) {
            return Err((
                RejectReason::Malformed,
                format!("time {ms} ms is outside the day"),
            ));
        }
        let ts = Timestamp(self.midnight.nanos() + ms * 1_000_000);
        let price = |i: usize, name: &str| -> Result<Price, (RejectReason, String)> {
            Price::from_scaled(int(i, name)?, 4)
                .map_err(|e| (RejectReason::Malformed, format!("{name}: {e}")))
        };
        let size = |i: usize, name: &str| -> Result<Quantity, (RejectReason, String)> {
            Quantity::from_int(int(i, name)?)
                .map_err(|e| (RejectReason::Malformed, format!("{name}: {e}")))
        };
        let flag = |i: usize| -> Result<bool, (RejectReason, String)> {
            match fields[i] {
                b"0" => Ok(false),
                b"1" => Ok(true),
                other => Err((
                    RejectReason::Malformed,
                    format!("suspicious flag must be 0 or 1, found {:?}", show(other)),
                )),
            }
        };
        Ok(match self.kind {
            Kind::Trade => MarketEvent::Trade(Trade {
                instrument: self.instrument,
                ts_event: ts,
                ts_recv: ts,
                price: price(1, "price")?,
                size: size(2, "size")?,
                aggressor: Side::None,
                trade_id: None,
                suspicious: flag(5)?,
                seq,
            }),
            Kind::Quote => {
                let bid = price(1, "bid")?;
                let ask = price(3, "ask")?;
                if bid.is_zero() && ask.is_zero() {
                    return Err((
                        RejectReason::Malformed,
                        "quote has neither bid nor ask".into(),
                    ));
                }
                MarketEvent::Quote(Quote {
                    instrument: self.instrument,
                    ts_event: ts,
                    ts_recv: ts,
                    bid: (!bid.is_zero()).then_some(bid),
                    bid_size: size(2, "bid_size")?,
                    ask: (!ask.is_zero()).then_some(ask),
                    ask_size: size(4, "ask_size")?,
                    update_id: None,
                    suspicious: flag(7)?,
                    seq,
                })
            }
        })
    }
}

impl PartReader for LeanReader {
    fn next_item(&mut self) -> Option<SourceItem> {
        if let Some(item) = self.queued.take() {
            return Some(item);
        }
        loop {
            let row = self.next_row();
            if self.ctx.kind == Kind::Trade {
                return row;
            }
            match row {
                Some(SourceItem::Event(MarketEvent::Quote(q))) => {
                    if let Some(item) = self.quote(q) {
                        return Some(item);
                    }
                }
                // A bad row or the end: a held quote first, as it stands.
                other => {
                    let Some(first) = self.held.take() else {
                        return other;
                    };
                    self.queued = other;
                    return Some(SourceItem::Event(MarketEvent::Quote(
                        self.top.settle(first),
                    )));
                }
            }
        }
    }
}

/// A Lean one-minute trade bar, as Lean computed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinuteBar {
    /// Start of the minute.
    pub start: Timestamp,
    /// Open.
    pub open: Price,
    /// High.
    pub high: Price,
    /// Low.
    pub low: Price,
    /// Close.
    pub close: Price,
    /// Volume.
    pub volume: Quantity,
}

/// Reads a Lean minute trade-bar zip (`ms, open, high, low, close, volume`), for comparing
/// bars computed from ticks with Lean's own.
pub fn read_minute_trade_bars(path: &Path) -> Result<Vec<MinuteBar>> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let date = name
        .split('_')
        .nth(1)
        .and_then(tz::parse_date)
        .ok_or_else(|| Error::format(path, "expected <symbol>_<yyyymmdd>_trade.zip"))?;
    let midnight = tz::new_york_midnight(date.0, date.1, date.2)
        .ok_or_else(|| Error::format(path, "date out of range"))?;
    let (_, data) = read_zip(path)?;
    let mut lines = LineBuffer::new(data);
    let mut out = Vec::new();
    while let Some((n, line)) = lines.next_line() {
        let mut fields = Vec::new();
        split_fields(line, &mut fields);
        let v: Option<Vec<i64>> = fields.iter().map(|f| parse_i64(f)).collect();
        let Some(v) = v.filter(|v| v.len() == 6) else {
            return Err(Error::format(
                path,
                format!("line {n}: expected 6 integers"),
            ));
        };
        let p = |x: i64| {
            Price::from_scaled(x, 4).map_err(|e| Error::format(path, format!("line {n}: {e}")))
        };
        out.push(MinuteBar {
            start: Timestamp(midnight.nanos() + v[0] * 1_000_000),
            open: p(v[1])?,
            high: p(v[2])?,
            low: p(v[3])?,
            close: p(v[4])?,
            volume: Quantity::from_int(v[5])
                .map_err(|e| Error::format(path, format!("line {n}: {e}")))?,
        });
    }
    Ok(out)
}
