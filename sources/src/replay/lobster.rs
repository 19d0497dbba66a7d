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

use std::path::Path;

use tickflow_core::{
    BookAction, BookEvent, InstrumentId, InstrumentRegistry, InstrumentSpec, MarketEvent, Price,
    Quantity, RejectReason, SeqNo, Side, Timestamp, Trade, fixed::parse_raw,
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

/// Reader of one message file.
pub struct LobsterReader {
    lines: LineBuffer,
    origin: String,
    instrument: InstrumentId,
    midnight: Timestamp,
    numbering: LineSeq,
    /// The trade of a visible execution, sent after its book event.
    pending: Option<Trade>,
}

impl LobsterReader {
    /// Opens a file.
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
        Ok(Self {
            lines: LineBuffer::streaming(stream_file(path)?.reader),
            origin: path.display().to_string(),
            instrument,
            midnight,
            numbering: LineSeq::new(source),
            pending: None,
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
                self.pending = Some(Trade {
                    seq: self.seq(),
                    ..trade
                });
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
}

impl PartReader for LobsterReader {
    fn next_item(&mut self) -> Option<SourceItem> {
        if let Some(t) = self.pending.take() {
            return Some(SourceItem::Event(MarketEvent::Trade(t)));
        }
        loop {
            let Some((line_no, line)) = self.lines.next_line() else {
                // A file that breaks off part-way says so once, as a reject.
                return self.lines.cut_short(&self.origin, &mut self.numbering);
            };
            if line.iter().all(u8::is_ascii_whitespace)
                || (line_no == 1 && line.starts_with(b"Time"))
            {
                continue;
            }
            self.numbering.line(line_no);
            let line = line.to_vec();
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
            match parsed {
                Ok(Some(e)) => return Some(SourceItem::Event(e)),
                Ok(None) => continue,
                Err((reason, detail)) => {
                    let seq = self.seq();
                    return Some(SourceItem::Bad(bad_row(&self.origin, seq, reason, detail)));
                }
            }
        }
    }
}
