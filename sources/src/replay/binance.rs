//! Binance websocket captures: gzip text, one message a line, `<local receive ns> <json>`,
//! with `@trade`, `@bookTicker` and `@depth` streams mixed (combined-stream envelopes
//! `{"stream": ..., "data": ...}`).
//!
//! Event time is the venue's (`T`, else `E`, in ms). Spot `@bookTicker` messages carry no venue
//! time: they are stamped with their receive time shifted by the latest venue-minus-receive
//! offset seen in the same file, so they fall in order with the messages around them.
//! `@depth` diffs become price-level [`BookEvent`](tickflow_core::BookEvent)s (`order_id =
//! None`, `size` = new level size, zero removes the level).
//!
//! A REST depth snapshot recorded into the capture (`{"lastUpdateId": ...}`) replaces the book,
//! the way Binance says a local book is synced: the diffs recorded before it whose last update
//! id `u` is above the snapshot's `lastUpdateId` happened after it, so they are applied to its
//! levels (the snapshot is fetched after the stream starts, and answers with a book a little
//! older than the diffs already received). The book is cleared and the synced levels set, at
//! the snapshot's line. Diffs recorded after the snapshot that it already holds (`u` at most
//! its `lastUpdateId`) are rejected as duplicates. Diffs are kept for this for
//! [`SYNC_WINDOW`] of receive time ([`DepthSync`]).
//!
//! Diffs are checked for continuity ([`UpdateSequence`](tickflow_core::depth::UpdateSequence)):
//! when updates are missing before a diff, a [`Gap`](RejectReason::Gap) reject is reported at
//! its line, and the book is cleared before the diff's levels are set, as Binance says to drop
//! a local book that missed updates: from there the book holds the levels updated since, as at
//! the start of a capture, until a snapshot comes. A snapshot that cannot be brought up to the
//! diffs newer than it (updates missing between them) is reported the same way at its line;
//! its synced levels are set all the same, being the newest full book there is.
//!
//! Trade ids (`t`) of a symbol follow on one by one: a trade whose id is more than one above
//! the highest seen before it follows missing trades, and a [`Gap`](RejectReason::Gap) reject
//! that says which ids are missing is reported at its line before it. (A trade at or below
//! that id is a repeat, which normalize drops as a duplicate by its id.)

use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;

use serde_json::Value;
use tickflow_core::depth::{DepthSync, Level, SYNC_WINDOW, Step, UpdateIds};
use tickflow_core::{
    InstrumentId, InstrumentRegistry, InstrumentSpec, MarketEvent, Price, Quantity, Quote, Reject,
    RejectReason, SeqNo, Side, Timestamp, Trade,
};

use super::text::{
    LineBuffer, LineSeq, RowError, bad_row, fixed, malformed, parse_i64, stream_file,
};
use super::{book_clear, depth_gap, held, level_update};
use crate::error::{Error, Result};
use crate::{PartReader, SourceItem};

/// Venue and symbol from a capture's name: `spot_btcusdt_20240808.gz` → (BINANCE-SPOT, BTCUSDT).
pub fn parse_name(path: &Path) -> Result<(String, String)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let stem = name.strip_suffix(".gz").unwrap_or(name);
    let bad = || {
        Error::format(
            path,
            "a Binance capture is named <spot|usdm|cm>_<symbol>_<yyyymmdd>.gz",
        )
    };
    let (market, rest) = stem.split_once('_').ok_or_else(bad)?;
    let (symbol, date) = rest.rsplit_once('_').ok_or_else(bad)?;
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) || symbol.is_empty() {
        return Err(bad());
    }
    let venue = match market {
        "spot" => "BINANCE-SPOT",
        "usdm" => "BINANCE-USDM",
        "cm" => "BINANCE-COINM",
        _ => return Err(bad()),
    };
    Ok((venue.into(), symbol.to_ascii_uppercase()))
}

/// The instrument a capture holds.
pub fn instruments(path: &Path) -> Result<Vec<InstrumentSpec>> {
    let (venue, symbol) = parse_name(path)?;
    Ok(vec![spec(venue, symbol)])
}

/// A Binance instrument: COIN-M contracts are quoted in USD, the others in USDT.
pub(crate) fn spec(venue: String, symbol: String) -> InstrumentSpec {
    let quote_ccy = if venue == "BINANCE-COINM" {
        "USD"
    } else {
        "USDT"
    };
    InstrumentSpec {
        symbol,
        venue,
        tick_size: Price::from_raw(10_000_000),
        lot_size: Quantity::from_raw(1_000),
        currency: quote_ccy.into(),
    }
}

/// A capture, inflated as it is read ([`stream_file`]); a file that is not gzip is refused.
fn stream_capture(path: &Path) -> Result<Box<dyn Read + Send>> {
    let stream = stream_file(path)?;
    if !stream.gzip {
        return Err(Error::format(
            path,
            "not a gzip file (empty, or it does not start with the gzip magic bytes 1f 8b)",
        ));
    }
    Ok(stream.reader)
}

/// Reader of one capture.
pub struct BinanceReader {
    lines: LineBuffer,
    origin: String,
    instrument: InstrumentId,
    symbol: String,
    numbering: LineSeq,
    /// Latest venue time minus receive time, in ns.
    clock_offset: i64,
    /// Records and gap rejects of the line read last.
    pending: VecDeque<SourceItem>,
    /// Depth diffs of the last [`SYNC_WINDOW`], for a snapshot recorded after them.
    sync: DepthSync,
    /// The highest trade id seen.
    last_trade: Option<u64>,
}

impl BinanceReader {
    /// Opens a capture.
    pub fn open(path: &Path, source: u16, registry: &InstrumentRegistry) -> Result<Self> {
        let (venue, symbol) = parse_name(path)?;
        let instrument = registry
            .lookup(&venue, &symbol)
            .ok_or_else(|| Error::Undeclared {
                venue,
                symbol: symbol.clone(),
            })?;
        Ok(Self {
            lines: LineBuffer::streaming(stream_capture(path)?),
            origin: path.display().to_string(),
            instrument,
            symbol,
            numbering: LineSeq::new(source),
            clock_offset: 0,
            pending: VecDeque::new(),
            sync: DepthSync::new(SYNC_WINDOW),
            last_trade: None,
        })
    }

    fn seq(&mut self) -> SeqNo {
        self.numbering.seq()
    }

    fn parse_line(&mut self, line: &[u8]) -> Result<(), RowError> {
        let space = line
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| malformed("expected '<receive ns> <json>'".into()))?;
        let recv = parse_i64(&line[..space])
            .ok_or_else(|| malformed("receive time is not an integer".into()))?;
        let recv = Timestamp(recv);
        let msg: Value = serde_json::from_slice(&line[space + 1..])
            .map_err(|e| malformed(format!("invalid JSON: {e}")))?;
        if msg.get("lastUpdateId").is_some() {
            // A REST depth snapshot recorded into the capture: replaces the whole book.
            return self.parse_snapshot(&msg, recv);
        }
        let stream = msg
            .get("stream")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("missing \"stream\"".into()))?;
        let data = msg
            .get("data")
            .ok_or_else(|| malformed("missing \"data\"".into()))?;
        let symbol = data
            .get("s")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("missing symbol \"s\"".into()))?;
        if symbol != self.symbol {
            return Err(malformed(format!(
                "symbol {symbol} in a capture of {}",
                self.symbol
            )));
        }
        let ts_event = self.event_time(data, recv)?;
        let text = |key: &str| -> Result<&str, RowError> {
            data.get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| malformed(format!("missing {key:?}")))
        };
        let price = |t: &str, key: &str| fixed(t.as_bytes(), key, Price::parse);
        let qty =
            |t: &str, key: &str| Quantity::parse(t).map_err(|e| malformed(format!("{key}: {e}")));
        if stream.ends_with("@trade") {
            let buyer_is_maker = data
                .get("m")
                .and_then(Value::as_bool)
                .ok_or_else(|| malformed("missing \"m\"".into()))?;
            let trade_id = data.get("t").and_then(Value::as_u64);
            let (price, size) = (price(text("p")?, "p")?, qty(text("q")?, "q")?);
            if let Some(id) = trade_id {
                if let Some(last) = self.last_trade
                    && id > last.saturating_add(1)
                {
                    let missing = match id - last - 1 {
                        1 => format!("trade {} is missing", last + 1),
                        n => format!("{n} trades, ids {} to {}, are missing", last + 1, id - 1),
                    };
                    let detail =
                        format!("trade gap: {missing} (the highest id before it is {last})");
                    self.push_notice((RejectReason::Gap, detail), ts_event);
                }
                self.last_trade = self.last_trade.max(Some(id));
            }
            let seq = self.seq();
            self.pending
                .push_back(SourceItem::Event(MarketEvent::Trade(Trade {
                    instrument: self.instrument,
                    ts_event,
                    ts_recv: recv,
                    price,
                    size,
                    aggressor: if buyer_is_maker {
                        Side::Sell
                    } else {
                        Side::Buy
                    },
                    trade_id,
                    suspicious: false,
                    seq,
                })));
        } else if stream.ends_with("@bookTicker") {
            let update_id = data.get("u").and_then(Value::as_u64);
            let seq = self.seq();
            self.pending
                .push_back(SourceItem::Event(MarketEvent::Quote(Quote {
                    instrument: self.instrument,
                    ts_event,
                    ts_recv: recv,
                    bid: Some(price(text("b")?, "b")?),
                    bid_size: qty(text("B")?, "B")?,
                    ask: Some(price(text("a")?, "a")?),
                    ask_size: qty(text("A")?, "A")?,
                    update_id,
                    suspicious: false,
                    seq,
                })));
        } else if stream.contains("@depth") {
            let levels = levels(data, "b", "a")?;
            let id = |key: &str| {
                data.get(key)
                    .and_then(Value::as_u64)
                    .ok_or_else(|| malformed(format!("{key:?} is not an update id")))
            };
            let ids = UpdateIds {
                first: id("U")?,
                last: id("u")?,
                prev: data.get("pu").map(|_| id("pu")).transpose()?,
            };
            match self.sync.diff(recv, ids, &levels) {
                Step::Follows => {}
                // A diff the snapshot before it already holds is dropped, as a duplicate.
                Step::Held(snapshot) => return Err(held(ids.last, snapshot)),
                Step::Gap(gap) => {
                    self.push_notice(depth_gap(&gap), ts_event);
                    let seq = self.seq();
                    self.pending.push_back(SourceItem::Event(book_clear(
                        self.instrument,
                        (ts_event, recv),
                        seq,
                    )));
                }
            }
            self.push_levels(levels, ts_event, recv);
        } else {
            return Err(malformed(format!("unsupported stream {stream:?}")));
        }
        Ok(())
    }
}

impl BinanceReader {
    /// Venue time (`T`, else `E`), or the receive time shifted by the latest known offset.
    fn event_time(&mut self, data: &Value, recv: Timestamp) -> Result<Timestamp, RowError> {
        match data
            .get("T")
            .or_else(|| data.get("E"))
            .and_then(Value::as_i64)
        {
            Some(ms) => {
                let t = Timestamp::from_millis(ms)
                    .ok_or_else(|| malformed(format!("venue time {ms} out of range")))?;
                self.clock_offset = t.nanos() - recv.nanos();
                Ok(t)
            }
            None => Ok(Timestamp(recv.nanos() + self.clock_offset)),
        }
    }

    fn parse_snapshot(&mut self, msg: &Value, recv: Timestamp) -> Result<(), RowError> {
        let ts_event = self.event_time(msg, recv)?;
        let levels = levels(msg, "bids", "asks")?;
        let id = msg
            .get("lastUpdateId")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed("lastUpdateId is not an unsigned integer".into()))?;
        // Diffs recorded before the snapshot but newer than it: applied to its levels.
        let (levels, gap) = self.sync.snapshot(id, levels);
        if let Some(gap) = gap {
            let detail = format!(
                "depth snapshot {id} cannot be brought up to the diffs recorded before it: {gap}; \
                 its levels are set with those diffs applied"
            );
            self.push_notice((RejectReason::Gap, detail), ts_event);
        }
        let seq = self.seq();
        self.pending.push_back(SourceItem::Event(book_clear(
            self.instrument,
            (ts_event, recv),
            seq,
        )));
        self.push_levels(levels, ts_event, recv);
        Ok(())
    }

    /// Queues a reject about the line that does not refuse it (a [`RejectReason::Gap`] before
    /// it) at the current line, before the line's records.
    fn push_notice(&mut self, (reason, detail): RowError, ts_event: Timestamp) {
        let seq = self.seq();
        self.pending.push_back(SourceItem::Bad(Reject {
            instrument: Some(self.instrument),
            ts_event: Some(ts_event),
            ..bad_row(&self.origin, seq, reason, detail)
        }));
    }

    /// Queues price-level updates: `Modify` to a new size, `Cancel` when the size is zero.
    fn push_levels(&mut self, levels: Vec<Level>, ts_event: Timestamp, recv: Timestamp) {
        for (side, price, size) in levels {
            let seq = self.seq();
            self.pending.push_back(SourceItem::Event(level_update(
                self.instrument,
                (ts_event, recv),
                side,
                price,
                size,
                seq,
            )));
        }
    }
}

/// Parses `[[price, size], ...]` arrays under the bid and ask keys; the whole message is
/// refused if any level is malformed, so no partial update is applied.
fn levels(data: &Value, bid_key: &str, ask_key: &str) -> Result<Vec<Level>, RowError> {
    let mut out = Vec::new();
    for (key, side) in [(bid_key, Side::Buy), (ask_key, Side::Sell)] {
        let levels = data
            .get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(format!("missing level array {key:?}")))?;
        for level in levels {
            let pair = level
                .as_array()
                .filter(|p| p.len() == 2)
                .ok_or_else(|| malformed(format!("{key}: a level is [price, size]")))?;
            let (Some(p), Some(q)) = (pair[0].as_str(), pair[1].as_str()) else {
                return Err(malformed(format!("{key}: level values must be strings")));
            };
            let price = fixed(p.as_bytes(), key, Price::parse)?;
            let size = Quantity::parse(q).map_err(|e| malformed(format!("{key}: {e}")))?;
            out.push((side, price, size));
        }
    }
    Ok(out)
}

impl PartReader for BinanceReader {
    fn next_item(&mut self) -> Option<SourceItem> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            let Some((line_no, line)) = self.lines.next_line() else {
                // A capture that breaks off part-way (a recorder stopped mid-write) says so
                // once, as a reject, after the lines it holds.
                return self.lines.cut_short(&self.origin, &mut self.numbering);
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.numbering.line(line_no);
            let line = line.to_vec();
            if let Err((reason, detail)) = self.parse_line(&line) {
                let seq = self.seq();
                return Some(SourceItem::Bad(bad_row(&self.origin, seq, reason, detail)));
            }
        }
    }
}
