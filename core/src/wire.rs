//! The compact binary encoding of market records on Kafka (`tickflow publish --encoding
//! binary`); the Kafka source reads it beside JSON, telling them apart by the first byte.
//!
//! One message is one record, little-endian, fixed layout per record type:
//!
//! | offset  | size | field                                                              |
//! |---------|------|--------------------------------------------------------------------|
//! | 0       | 2    | magic `TF` (`0x54 0x46`)                                           |
//! | 2       | 1    | version, `1`                                                       |
//! | 3       | 1    | type: `1` trade, `2` quote, `3` book                               |
//! | 4       | 1    | flags: bit 0 suspicious, bit 1 id present, bit 2 bid present, bit 3 ask present |
//! | 5       | 1    | side (trade: aggressor; book: side): `0` none, `1` buy, `2` sell   |
//! | 6       | 1    | book action: `0` add, `1` modify, `2` cancel, `3` execute, `4` clear (`0` otherwise) |
//! | 7       | 1    | length `n` of the symbol, 1 to 255                                 |
//! | 8       | n    | symbol, UTF-8                                                      |
//! | 8+n     | 8    | `ts_event`, i64 nanoseconds since the Unix epoch                   |
//! | 16+n    | 8    | `ts_recv`, i64 nanoseconds                                         |
//! | 24+n    | 8    | id, u64 (trade id, quote update id or order id; 0 when absent)     |
//! | 32+n    | ...  | trade and book: price, size; quote: bid, bid size, ask, ask size   |
//!
//! Prices and sizes are i64 fixed-point raw values, units of 10⁻⁹ ([`crate::FIXED_SCALE`]),
//! exactly as tickflow holds them. A trade or book message is `48 + n` bytes, a quote
//! `64 + n` (about a quarter of its JSON). Any other length, version, type or code is refused
//! with the reason.

use crate::{
    BookAction, BookEvent, InstrumentId, MarketEvent, Price, Quantity, Quote, SeqNo, Side,
    Timestamp, Trade,
};

/// The first two bytes of every binary message.
pub const MAGIC: [u8; 2] = *b"TF";
/// The encoding's version.
pub const VERSION: u8 = 1;

const TRADE: u8 = 1;
const QUOTE: u8 = 2;
const BOOK: u8 = 3;
const SUSPICIOUS: u8 = 1;
const HAS_ID: u8 = 2;
const HAS_BID: u8 = 4;
const HAS_ASK: u8 = 8;

/// Whether `payload` is a binary message (rather than JSON).
pub fn is_binary(payload: &[u8]) -> bool {
    payload.starts_with(&MAGIC)
}

fn side_code(side: Side) -> u8 {
    match side {
        Side::None => 0,
        Side::Buy => 1,
        Side::Sell => 2,
    }
}

fn action_code(action: BookAction) -> u8 {
    match action {
        BookAction::Add => 0,
        BookAction::Modify => 1,
        BookAction::Cancel => 2,
        BookAction::Execute => 3,
        BookAction::Clear => 4,
    }
}

/// Writes `event` of instrument `symbol` into `out` (cleared first). Fails only for a symbol
/// that is empty or longer than 255 bytes.
pub fn encode(event: &MarketEvent, symbol: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let len = u8::try_from(symbol.len())
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("symbol {symbol:?} must be 1 to 255 bytes long"))?;
    let (kind, mut flags, side, action, ts_event, ts_recv, id, suspicious) = match event {
        MarketEvent::Trade(t) => (
            TRADE,
            0,
            side_code(t.aggressor),
            0,
            t.ts_event,
            t.ts_recv,
            t.trade_id,
            t.suspicious,
        ),
        MarketEvent::Quote(q) => (
            QUOTE,
            (u8::from(q.bid.is_some()) * HAS_BID) | (u8::from(q.ask.is_some()) * HAS_ASK),
            0,
            0,
            q.ts_event,
            q.ts_recv,
            q.update_id,
            q.suspicious,
        ),
        MarketEvent::Book(b) => (
            BOOK,
            0,
            side_code(b.side),
            action_code(b.action),
            b.ts_event,
            b.ts_recv,
            b.order_id,
            b.suspicious,
        ),
    };
    if suspicious {
        flags |= SUSPICIOUS;
    }
    if id.is_some() {
        flags |= HAS_ID;
    }
    out.clear();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, kind, flags, side, action, len]);
    out.extend_from_slice(symbol.as_bytes());
    out.extend_from_slice(&ts_event.nanos().to_le_bytes());
    out.extend_from_slice(&ts_recv.nanos().to_le_bytes());
    out.extend_from_slice(&id.unwrap_or(0).to_le_bytes());
    let mut raw = |v: i64| out.extend_from_slice(&v.to_le_bytes());
    match event {
        MarketEvent::Trade(t) => {
            raw(t.price.raw());
            raw(t.size.raw());
        }
        MarketEvent::Quote(q) => {
            raw(q.bid.map_or(0, Price::raw));
            raw(q.bid_size.raw());
            raw(q.ask.map_or(0, Price::raw));
            raw(q.ask_size.raw());
        }
        MarketEvent::Book(b) => {
            raw(b.price.raw());
            raw(b.size.raw());
        }
    }
    Ok(())
}

/// Reads one binary message. `instrument` resolves its symbol; `seq` is the record's source
/// position. The error says what is wrong with the message.
pub fn decode(
    payload: &[u8],
    instrument: impl FnOnce(&str) -> Result<InstrumentId, String>,
    seq: SeqNo,
) -> Result<MarketEvent, String> {
    if !is_binary(payload) {
        return Err("not a binary message (it does not start with \"TF\")".into());
    }
    let header = payload
        .get(..8)
        .ok_or("binary message shorter than its 8-byte header")?;
    let (version, kind, flags, side, action, n) = (
        header[2],
        header[3],
        header[4],
        header[5],
        header[6],
        usize::from(header[7]),
    );
    if version != VERSION {
        return Err(format!(
            "binary message of version {version}; this reader knows version {VERSION}"
        ));
    }
    let (name, values) = match kind {
        TRADE => ("trade", 2),
        QUOTE => ("quote", 4),
        BOOK => ("book", 2),
        other => {
            return Err(format!(
                "binary message of type {other} (expected 1 trade, 2 quote or 3 book)"
            ));
        }
    };
    let expected = 8 + n + 24 + 8 * values;
    if n == 0 || payload.len() != expected {
        return Err(format!(
            "binary {name} message of {} bytes with a {n}-byte symbol; expected {expected}",
            payload.len()
        ));
    }
    if flags & !(SUSPICIOUS | HAS_ID | HAS_BID | HAS_ASK) != 0 {
        return Err(format!("binary message with unknown flags {flags:#04x}"));
    }
    let symbol = std::str::from_utf8(&payload[8..8 + n])
        .map_err(|_| "binary message whose symbol is not UTF-8".to_string())?;
    let word = |i: usize| {
        let at = 8 + n + 8 * i;
        let mut b = [0u8; 8];
        b.copy_from_slice(&payload[at..at + 8]);
        b
    };
    let int = |i: usize| i64::from_le_bytes(word(i));
    let side = match side {
        0 => Side::None,
        1 => Side::Buy,
        2 => Side::Sell,
        other => return Err(format!("binary message with side code {other}")),
    };
    let ts_event = Timestamp(int(0));
    let ts_recv = Timestamp(int(1));
    let id = (flags & HAS_ID != 0).then(|| u64::from_le_bytes(word(2)));
    let suspicious = flags & SUSPICIOUS != 0;
    let instrument = instrument(symbol)?;
    let qty = |i: usize, field: &str| {
        let q = Quantity::from_raw(int(i));
        if q.raw() < 0 {
            Err(format!("binary {name} message with a negative {field}"))
        } else {
            Ok(q)
        }
    };
    Ok(match kind {
        TRADE => MarketEvent::Trade(Trade {
            instrument,
            ts_event,
            ts_recv,
            price: Price::from_raw(int(3)),
            size: qty(4, "size")?,
            aggressor: side,
            trade_id: id,
            suspicious,
            seq,
        }),
        QUOTE => MarketEvent::Quote(Quote {
            instrument,
            ts_event,
            ts_recv,
            bid: (flags & HAS_BID != 0).then(|| Price::from_raw(int(3))),
            bid_size: qty(4, "bid size")?,
            ask: (flags & HAS_ASK != 0).then(|| Price::from_raw(int(5))),
            ask_size: qty(6, "ask size")?,
            update_id: id,
            suspicious,
            seq,
        }),
        _ => MarketEvent::Book(BookEvent {
            instrument,
            ts_event,
            ts_recv,
            action: match action {
                0 => BookAction::Add,
                1 => BookAction::Modify,
                2 => BookAction::Cancel,
                3 => BookAction::Execute,
                4 => BookAction::Clear,
                other => return Err(format!("binary book message with action code {other}")),
            },
            side,
            price: Price::from_raw(int(3)),
            size: qty(4, "size")?,
            order_id: id,
            suspicious,
            seq,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(event: MarketEvent) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&event, "ESH4", &mut out).unwrap();
        let back = decode(
            &out,
            |s| {
                assert_eq!(s, "ESH4");
                Ok(event.instrument())
            },
            event.seq(),
        )
        .unwrap();
        assert_eq!(back, event);
        out
    }

    #[test]
    fn every_record_type_comes_back_exactly() {
        let id = InstrumentId(3);
        let t = Timestamp(1_381_132_800_688_000_123);
        let trade = round_trip(MarketEvent::Trade(Trade {
            instrument: id,
            ts_event: t,
            ts_recv: Timestamp(t.0 + 5),
            price: Price::parse("12345678.123456789").unwrap(),
            size: Quantity::parse("0.000000001").unwrap(),
            aggressor: Side::Sell,
            trade_id: Some(u64::MAX),
            suspicious: true,
            seq: SeqNo::new(2, 9),
        }));
        assert_eq!(trade.len(), 48 + 4);
        let quote = round_trip(MarketEvent::Quote(Quote {
            instrument: id,
            ts_event: t,
            ts_recv: t,
            bid: None,
            bid_size: Quantity::from_raw(0),
            ask: Some(Price::parse("-0.5").unwrap()),
            ask_size: Quantity::parse("7").unwrap(),
            update_id: None,
            suspicious: false,
            seq: SeqNo::new(2, 10),
        }));
        assert_eq!(quote.len(), 64 + 4);
        for action in [
            BookAction::Add,
            BookAction::Modify,
            BookAction::Cancel,
            BookAction::Execute,
            BookAction::Clear,
        ] {
            round_trip(MarketEvent::Book(BookEvent {
                instrument: id,
                ts_event: t,
                ts_recv: t,
                action,
                side: Side::Buy,
                price: Price::parse("4800.25").unwrap(),
                size: Quantity::parse("3").unwrap(),
                order_id: Some(0),
                suspicious: false,
                seq: SeqNo::new(0, 1),
            }));
        }
    }

    #[test]
    fn bad_messages_say_what_is_wrong() {
        let mut good = Vec::new();
        let trade = MarketEvent::Trade(Trade {
            instrument: InstrumentId(0),
            ts_event: Timestamp(1),
            ts_recv: Timestamp(1),
            price: Price::parse("1").unwrap(),
            size: Quantity::parse("1").unwrap(),
            aggressor: Side::None,
            trade_id: None,
            suspicious: false,
            seq: SeqNo::new(0, 0),
        });
        encode(&trade, "AIG", &mut good).unwrap();
        let err = |m: &[u8]| decode(m, |_| Ok(InstrumentId(0)), SeqNo::new(0, 0)).unwrap_err();
        assert!(err(b"{}").contains("not a binary message"));
        assert!(err(b"TF\x01").contains("shorter than its 8-byte header"));
        assert!(err(&good[..good.len() - 1]).contains("expected 51"));
        let mut m = good.clone();
        m[2] = 2;
        assert!(err(&m).contains("version 2"));
        let mut m = good.clone();
        m[3] = 9;
        assert!(err(&m).contains("type 9"));
        let mut m = good.clone();
        m[5] = 7;
        assert!(err(&m).contains("side code 7"));
        let mut m = good.clone();
        m[4] = 0x40;
        assert!(err(&m).contains("unknown flags"));
        let mut m = good.clone();
        let size_at = m.len() - 8;
        m[size_at..].copy_from_slice(&(-1i64).to_le_bytes());
        assert!(err(&m).contains("negative size"));
        let unknown = decode(
            &good,
            |s| Err(format!("unknown instrument {s}")),
            SeqNo::new(0, 0),
        );
        assert_eq!(unknown.unwrap_err(), "unknown instrument AIG");
        assert!(encode(&trade, "", &mut Vec::new()).is_err());
    }
}
