//! LOBSTER message files: `<SYM>_<yyyy-mm-dd>_<start>_<end>_message_<levels>.csv`, rows
//! `time, type, order_id, size, price, direction` (an optional header line is skipped).
//! Time is seconds after midnight New York time with up to 9 decimals; price is scaled by
//! 10,000; direction 1 = buy (bid), -1 = sell (ask). Files are plain or gzipped (`.csv.gz`)
//! and read as a stream.
//!
//! Types: 1 new order → `Add`; 2 partial cancel and 3 delete → `Cancel` of the size removed;
//! 4 visible execution → `Execute` and a [`Trade`]; 5 hidden execution and 6 cross trade →
//! a [`Trade`] only (they do not touch the visible book); 7 trading halt → nothing (a control
//! message, not market data).
//!
//! Quotes come from the message file's companion, `..._orderbook_<levels>.csv` (or `.csv.gz`)
//! beside it: row k holds the book after message k, `ask, ask size, bid, bid size` for each
//! level (an optional header line is skipped). The messages alone cannot rebuild the book (the
//! orders resting when the file starts are not in it), so the top of book is taken from there:
//! after a message that changes the best bid or ask, or the size at either, a [`Quote`] of both
//! sides follows its records at the message's time. LOBSTER's dummy price of an empty side
//! (±9999999999, size 0) is a side absent. Without a companion file, a message file gives no
//! quotes.
//!
//! Rows pair with messages by their place in the files, so a row that cannot be paired ends
//! the quotes, saying so once, and the messages read on: an orderbook file that ends first, or
//! an empty line in either file before its last row (a lost row or an inserted line cannot be
//! told apart, and pairing on past it could give each message the book after another one).
//! Empty lines at the end of either file are nothing.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use tickflow_core::{
    BookAction, BookEvent, InstrumentId, InstrumentRegistry, InstrumentSpec, MarketEvent, Price,
    Quantity, Quote, Reject, RejectReason, SeqNo, Side, Timestamp, Trade, fixed::parse_raw,
};

use super::text::{LineBuffer, LineSeq, bad_row, parse_i64, show, split_fixed, stream_file};
use super::tz;
use crate::error::{Error, Result};
use crate::{PartReader, SourceItem};

/// Venue of LOBSTER data.
pub const VENUE: &str = "NASDAQ";

/// Symbol and date from a message file name.
pub fn parse_name(path: &Path) -> Result<(String, (i32, u32, u32))> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let bad = || {
        Error::format(
            path,
            "a LOBSTER message file is named <SYMBOL>_<yyyy-mm-dd>_<start>_<end>_message_<levels>.csv",
        )
    };
    if !name.contains("_message_") {
        return Err(bad());
    }
    let mut parts = name.split('_');
    let symbol = parts.next().filter(|s| !s.is_empty()).ok_or_else(bad)?;
    let date = parts.next().and_then(tz::parse_date).ok_or_else(bad)?;
    Ok((symbol.to_ascii_uppercase(), date))
}

/// The instrument of a message file.
pub fn instruments(path: &Path) -> Result<Vec<InstrumentSpec>> {
    let (symbol, _) = parse_name(path)?;
    Ok(vec![InstrumentSpec {
        symbol,
        venue: VENUE.into(),
        tick_size: Price::from_raw(10_000_000),
        lot_size: Quantity::from_raw(1_000_000_000),
        currency: "USD".into(),
    }])
}

/// The orderbook file beside a message file (`_message_` → `_orderbook_`, plain or gzipped),
/// if there is one.
pub fn companion(messages: &Path) -> Option<PathBuf> {
    let name = messages.file_name()?.to_str()?;
    let at = name.rfind("_message_")?;
    let rest = &name[at + "_message_".len()..];
    let levels = rest.split('.').next().unwrap_or_default();
    let stem = format!("{}_orderbook_{levels}", &name[..at]);
    [".csv", ".csv.gz"]
        .iter()
        .map(|ext| messages.with_file_name(format!("{stem}{ext}")))
        .find(|p| p.is_file())
}

/// LOBSTER's price of an empty bid level.
const NO_BID: i64 = -9_999_999_999;
/// LOBSTER's price of an empty ask level.
const NO_ASK: i64 = 9_999_999_999;

/// The best bid and ask with their sizes, as an orderbook row gives them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Top {
    bid: Option<Price>,
    bid_size: Quantity,
    ask: Option<Price>,
    ask_size: Quantity,
}

/// An orderbook row.
enum BookRow {
    /// Its best levels.
    Top(Top),
    /// Why it does not read.
    Bad(String),
    /// An empty line.
    Empty,
}

/// The rows of an orderbook file, taken one per message row.
struct BookRows {
    lines: LineBuffer,
    origin: String,
}

impl BookRows {
    fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            lines: LineBuffer::streaming(stream_file(path)?.reader),
            origin: path.display().to_string(),
        })
    }

    /// The next row with its line, `None` at the end of the file; a header line (a first line
    /// of four names per level) is skipped. A first row damaged into a word or two is a row
    /// that does not read, not a header: skipping it would pair every later row with the
    /// message before its own.
    fn next_row(&mut self) -> Option<(u64, BookRow)> {
        let (mut line_no, mut line) = self.lines.next_line()?;
        // Fields counted while each is checked to be a name; `None` at the first that is not.
        let header = |l: &[u8]| {
            l.split(|&b| b == b',')
                .try_fold(0usize, |n, f| {
                    f.first()
                        .is_some_and(u8::is_ascii_alphabetic)
                        .then_some(n + 1)
                })
                .is_some_and(|n| n.is_multiple_of(4))
        };
        if line_no == 1 && header(line) {
            (line_no, line) = self.lines.next_line()?;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return Some((line_no, BookRow::Empty));
        }
        let mut fields: [&[u8]; 4] = [&[]; 4];
        let n = split_fixed(line, &mut fields);
        Some((
            line_no,
            match parse_top(&fields, n) {
                Ok(top) => BookRow::Top(top),
                Err(detail) => BookRow::Bad(detail),
            },
        ))
    }

    /// The next row that is not an empty line, `None` at the end of the file.
    fn next_filled_row(&mut self) -> Option<u64> {
        loop {
            match self.next_row()? {
                (_, BookRow::Empty) => continue,
                (line, _) => return Some(line),
            }
        }
    }
}

/// The best level of each side from the first fields of an orderbook row of `n` (`ask, ask
/// size, bid, bid size`, then the deeper levels, which are not read).
fn parse_top(f: &[&[u8]; 4], n: usize) -> Result<Top, String> {
    if n < 4 || !n.is_multiple_of(4) {
        return Err(format!(
            "an orderbook row has 4 columns per level, found {n}"
        ));
    }
    let side =
        |price_at: usize, name: &str, dummy: i64| -> Result<(Option<Price>, Quantity), String> {
            // The field's name is spelled out only for an error.
            let int = |i: usize, what: &str| {
                parse_i64(f[i])
                    .ok_or_else(|| format!("best {name}{what} is not an integer: {:?}", show(f[i])))
            };
            let price = int(price_at, "")?;
            let size = int(price_at + 1, " size")?;
            if price == dummy {
                if size != 0 {
                    return Err(format!(
                        "the best {name} is LOBSTER's empty level ({dummy}) with size {size}"
                    ));
                }
                return Ok((None, Quantity::ZERO));
            }
            let price = Price::from_scaled(price, 4).map_err(|e| format!("best {name}: {e}"))?;
            let size = Quantity::from_int(size).map_err(|e| format!("best {name} size: {e}"))?;
            Ok((Some(price), size))
        };
    let (ask, ask_size) = side(0, "ask", NO_ASK)?;
    let (bid, bid_size) = side(2, "bid", NO_BID)?;
    Ok(Top {
        bid,
        bid_size,
        ask,
        ask_size,
    })
}

/// Reader of one message file, with its orderbook file's quotes when there is one.
pub struct LobsterReader {
    lines: LineBuffer,
    origin: String,
    instrument: InstrumentId,
    midnight: Timestamp,
    numbering: LineSeq,
    /// The records of the row read last that are still to be sent.
    pending: VecDeque<SourceItem>,
    /// The orderbook file, while it has rows.
    book: Option<BookRows>,
    /// The top of book of the last quote sent.
    top: Option<Top>,
    /// The first empty line since the last message read, while an orderbook file is paired.
    empty_since: Option<u64>,
}

impl LobsterReader {
    /// Opens a file, and its orderbook file where there is one.
    pub fn open(path: &Path, source: u16, registry: &InstrumentRegistry) -> Result<Self> {
        let (symbol, (y, m, d)) = parse_name(path)?;
        let instrument = registry
            .lookup(VENUE, &symbol)
            .ok_or_else(|| Error::Undeclared {
                venue: VENUE.into(),
                symbol,
            })?;
        let midnight = tz::new_york_midnight(y, m, d)
            .ok_or_else(|| Error::format(path, "date out of range"))?;
        let book = companion(path).map(|p| BookRows::open(&p)).transpose()?;
        Ok(Self {
            lines: LineBuffer::streaming(stream_file(path)?.reader),
            origin: path.display().to_string(),
            instrument,
            midnight,
            numbering: LineSeq::new(source),
            pending: VecDeque::new(),
            book,
            top: None,
            empty_since: None,
        })
    }

    fn seq(&mut self) -> SeqNo {
        self.numbering.seq()
    }

    /// `Ok(None)` for rows that carry no market data (halts).
    fn parse(&mut self, f: &[&[u8]]) -> Result<Option<MarketEvent>, (RejectReason, String)> {
        let malformed = |m: String| (RejectReason::Malformed, m);
        if f.len() != 6 {
            return Err(malformed(format!("expected 6 columns, found {}", f.len())));
        }
        let secs = parse_raw(&String::from_utf8_lossy(f[0]))
            .map_err(|e| malformed(format!("time: {e}")))?;
        let ts = Timestamp(self.midnight.nanos() + secs);
        let int = |i: usize, name: &str| {
            parse_i64(f[i])
                .ok_or_else(|| malformed(format!("{name} is not an integer: {:?}", show(f[i]))))
        };
        let kind = int(1, "type")?;
        let order_id = int(2, "order id")?;
        let size =
            Quantity::from_int(int(3, "size")?).map_err(|e| malformed(format!("size: {e}")))?;
        let price = Price::from_scaled(int(4, "price")?, 4)
            .map_err(|e| malformed(format!("price: {e}")))?;
        let side = match int(5, "direction")? {
            1 => Side::Buy,
            -1 => Side::Sell,
            d => return Err(malformed(format!("direction must be 1 or -1, found {d}"))),
        };
        let instrument = self.instrument;
        let book = |action| BookEvent {
            instrument,
            ts_event: ts,
            ts_recv: ts,
            action,
            side,
            price,
            size,
            order_id: Some(order_id as u64),
            suspicious: false,
            seq: SeqNo::default(),
        };
        // The aggressor is on the other side of the resting order that executes.
        let trade = Trade {
            instrument,
            ts_event: ts,
            ts_recv: ts,
            price,
            size,
            aggressor: match side {
                Side::Buy => Side::Sell,
                Side::Sell => Side::Buy,
                Side::None => Side::None,
            },
            trade_id: None,
            suspicious: false,
            seq: SeqNo::default(),
        };
        Ok(Some(match kind {
            1 => MarketEvent::Book(BookEvent {
                seq: self.seq(),
                ..book(BookAction::Add)
            }),
            2 | 3 => MarketEvent::Book(BookEvent {
                seq: self.seq(),
                ..book(BookAction::Cancel)
            }),
            4 => {
                let event = MarketEvent::Book(BookEvent {
                    seq: self.seq(),
                    ..book(BookAction::Execute)
                });
                let seq = self.seq();
                self.pending
                    .push_back(SourceItem::Event(MarketEvent::Trade(Trade {
                        seq,
                        ..trade
                    })));
                event
            }
            5 | 6 => MarketEvent::Trade(Trade {
                seq: self.seq(),
                ..trade
            }),
            7 => return Ok(None),
            other => return Err(malformed(format!("unknown event type {other}"))),
        }))
    }

    /// Takes the orderbook row of the message row just read and queues what it gives: a quote
    /// at `ts` when the top of book changed (no quote when the message's time is unknown), or
    /// a reject at the orderbook row's own line when it cannot be read. When the orderbook
    /// file ends before the messages, or gives an empty line, one reject says so and the
    /// quotes stop there.
    fn book_row(&mut self, ts: Option<Timestamp>, instrument: InstrumentId, message_line: u64) {
        let Some(book) = self.book.as_mut() else {
            return;
        };
        let (line, detail, ended) = match book.next_row() {
            Some((_, BookRow::Top(top))) => {
                if let Some(ts) = ts
                    && self.top != Some(top)
                {
                    self.top = Some(top);
                    let seq = self.numbering.seq();
                    self.pending
                        .push_back(SourceItem::Event(MarketEvent::Quote(Quote {
                            instrument,
                            ts_event: ts,
                            ts_recv: ts,
                            bid: top.bid,
                            bid_size: top.bid_size,
                            ask: top.ask,
                            ask_size: top.ask_size,
                            update_id: None,
                            suspicious: false,
                            seq,
                        })));
                }
                return;
            }
            Some((line, BookRow::Bad(detail))) => (line, detail, false),
            Some((line, BookRow::Empty)) => (
                line,
                format!(
                    "an empty line where the row of message line {message_line} should be: the rows after it cannot be paired with their messages; no quotes from here on"
                ),
                true,
            ),
            // An orderbook file that ended (or broke off) is reported at the line it lacks.
            None => {
                let detail = match book.lines.take_error() {
                    Some(e) => format!(
                        "the orderbook file cannot be read further: {e}; no quotes from here on"
                    ),
                    None => format!(
                        "the orderbook file ends before the message file (it has no row for message line {message_line}); no quotes from here on"
                    ),
                };
                (book.lines.lines_read() + 1, detail, true)
            }
        };
        let seq = self.numbering.seq();
        let reject = Reject {
            instrument: Some(instrument),
            ts_event: ts,
            line,
            ..bad_row(&book.origin, seq, RejectReason::Malformed, detail)
        };
        self.pending.push_back(SourceItem::Bad(reject));
        if ended {
            self.book = None;
        }
    }
}

impl PartReader for LobsterReader {
    fn next_item(&mut self) -> Option<SourceItem> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            let Some((line_no, line)) = self.lines.next_line() else {
                // A file that breaks off part-way says so once, as a reject.
                if let Some(cut) = self.lines.cut_short(&self.origin, &mut self.numbering) {
                    return Some(cut);
                }
                // An orderbook file longer than its messages says so once.
                let mut book = self.book.take()?;
                let line = book.next_filled_row()?;
                let seq = self.seq();
                return Some(SourceItem::Bad(Reject {
                    instrument: Some(self.instrument),
                    line,
                    ..bad_row(
                        &book.origin,
                        seq,
                        RejectReason::Malformed,
                        "the orderbook file has rows after the message file's last; they are not read".into(),
                    )
                }));
            };
            if line_no == 1 && line.starts_with(b"Time") {
                continue;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                if self.book.is_some() {
                    self.empty_since.get_or_insert(line_no);
                }
                continue;
            }
            let line = line.to_vec();
            // Empty lines before this message: its row and those after it can no longer be
            // told from the rows of the lines that are gone; the quotes end, saying so once.
            if let Some(empty) = self.empty_since.take()
                && let Some(book) = self.book.take()
            {
                self.numbering.line(empty);
                let seq = self.seq();
                self.pending.push_back(SourceItem::Bad(Reject {
                    instrument: Some(self.instrument),
                    line: empty,
                    ..bad_row(
                        &self.origin,
                        seq,
                        RejectReason::Malformed,
                        format!(
                            "an empty line among the messages: the rows of {} after it cannot be paired with their messages; no quotes from here on",
                            book.origin
                        ),
                    )
                }));
            }
            self.numbering.line(line_no);
            // What is queued before this message's records (that reject, if any).
            let before = self.pending.len();
            let mut fields: [&[u8]; 6] = [&[]; 6];
            let n = split_fixed(&line, &mut fields);
            let parsed = if n > 6 {
                Err((
                    RejectReason::Malformed,
                    format!("expected 6 columns, found {n}"),
                ))
            } else {
                self.parse(&fields[..n])
            };
            let instrument = self.instrument;
            let first = match parsed {
                Ok(event) => {
                    let ts = event.as_ref().map(MarketEvent::ts_event);
                    // A halt gives no record and no quote; its orderbook row is still taken.
                    self.book_row(ts, instrument, line_no);
                    event.map(SourceItem::Event)
                }
                Err((reason, detail)) => {
                    let seq = self.seq();
                    let bad = SourceItem::Bad(bad_row(&self.origin, seq, reason, detail));
                    self.book_row(None, instrument, line_no);
                    Some(bad)
                }
            };
            // The message's first item goes out now, or after what was queued before it.
            match first {
                Some(first) if before == 0 => return Some(first),
                Some(first) => self.pending.insert(before, first),
                None => {}
            }
        }
    }
}
