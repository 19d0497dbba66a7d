//! The fixed-size binary messages of the fast path.
//!
//! Market data travels as [`FeedMsg`], 40 bytes on the wire ([`FeedMsg::WIRE_LEN`]), little
//! endian, the same layout whatever the venue's own format was: the loaders of `feed` translate
//! recorded files into these frames at start-up, and the loop's decode stage reads frames from a
//! byte buffer exactly as it would read them from a network ring. Orders leave the strategy as
//! [`OrderMsg`], 40 bytes on the wire, decoded again by the simulated venue.
//!
//! Prices and sizes are the raw fixed-point integers of [`tickflow_core::Price`] and
//! [`tickflow_core::Quantity`] (nine decimals).
//!
//! Wire layout of a feed frame (offsets in bytes):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | `ts_ns`: venue event time, ns since the Unix epoch |
//! | 8 | 8 | `order_id` (0 where the action has none) |
//! | 16 | 8 | `price`, raw 1e-9 |
//! | 24 | 8 | `size`, raw 1e-9 |
//! | 32 | 4 | `instrument` |
//! | 36 | 1 | `action` ([`Action`] as `u8`) |
//! | 37 | 1 | `side`: 0 none, 1 buy (bid), 2 sell (ask) |
//! | 38 | 1 | `flags` ([`FeedMsg::LAST`], [`FeedMsg::SNAPSHOT`], [`FeedMsg::PRINT`]) |
//! | 39 | 1 | reserved, 0 |

use tickflow_core::{Price, Quantity, Side};

/// What a feed message does.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u8)]
pub enum Action {
    /// A new resting order.
    Add = 1,
    /// An order loses `size` (partial or full cancel).
    Cancel = 2,
    /// An order gets a new price and size (loses priority when the price changes or the size
    /// grows).
    Modify = 3,
    /// A resting order trades for `size`, and the book loses it (LOBSTER's visible execution).
    Execute = 4,
    /// A resting order trades for `size`; the book is changed by a `Cancel` that follows
    /// (Databento's `F`).
    Fill = 5,
    /// A trade that does not touch the visible book (an aggressor print, a hidden execution).
    Trade = 6,
    /// The whole book is cleared.
    Clear = 7,
    /// Price-level data: the level at `price` now holds `size` (0 removes it).
    Level = 8,
}

impl Action {
    /// The action from its wire byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Action::Add,
            2 => Action::Cancel,
            3 => Action::Modify,
            4 => Action::Execute,
            5 => Action::Fill,
            6 => Action::Trade,
            7 => Action::Clear,
            8 => Action::Level,
            _ => return None,
        })
    }
}

/// Wire byte of a side.
pub fn side_to_u8(side: Side) -> u8 {
    match side {
        Side::None => 0,
        Side::Buy => 1,
        Side::Sell => 2,
    }
}

/// Side from its wire byte.
pub fn side_from_u8(b: u8) -> Option<Side> {
    Some(match b {
        0 => Side::None,
        1 => Side::Buy,
        2 => Side::Sell,
        _ => return None,
    })
}

/// One market-data event, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FeedMsg {
    /// Venue event time, ns since the Unix epoch.
    pub ts_ns: u64,
    /// Venue order id (0 where the action has none).
    pub order_id: u64,
    /// Order or level price.
    pub price: Price,
    /// Size added, removed, executed, or the new size (`Modify`, `Level`).
    pub size: Quantity,
    /// Instrument (the loader's numbering).
    pub instrument: u32,
    /// What happens.
    pub action: Action,
    /// Side of the resting order or level; for a `Trade`, the aggressor's.
    pub side: Side,
    /// [`FeedMsg::LAST`], [`FeedMsg::SNAPSHOT`].
    pub flags: u8,
}

/// Why a frame could not be decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum DecodeError {
    /// The frame is shorter than the message.
    #[error("frame of {0} bytes is shorter than a message")]
    Short(usize),
    /// Unknown action byte.
    #[error("unknown action byte {0}")]
    Action(u8),
    /// Unknown side byte.
    #[error("unknown side byte {0}")]
    Side(u8),
    /// Unknown order type or time in force byte.
    #[error("unknown order kind byte {0}")]
    Kind(u8),
}

#[inline]
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[inline]
fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

impl FeedMsg {
    /// Bytes on the wire.
    pub const WIRE_LEN: usize = 40;
    /// The last message of a venue event: the book is consistent after it.
    pub const LAST: u8 = 0x80;
    /// Part of a book snapshot.
    pub const SNAPSHOT: u8 = 0x20;
    /// A trade print whose resting side arrives as separate `Fill` messages (Databento `T`):
    /// the venue takes queue fills from those, not from the print.
    pub const PRINT: u8 = 0x01;

    /// A message with no id, price or size.
    pub fn new(ts_ns: u64, action: Action, side: Side) -> Self {
        Self {
            ts_ns,
            order_id: 0,
            price: Price::ZERO,
            size: Quantity::ZERO,
            instrument: 0,
            action,
            side,
            flags: Self::LAST,
        }
    }

    /// Whether the book is consistent after this message.
    #[inline]
    pub fn is_last(&self) -> bool {
        self.flags & Self::LAST != 0
    }

    /// Writes the wire form.
    #[inline]
    pub fn encode(&self, out: &mut [u8; Self::WIRE_LEN]) {
        out[0..8].copy_from_slice(&self.ts_ns.to_le_bytes());
        out[8..16].copy_from_slice(&self.order_id.to_le_bytes());
        out[16..24].copy_from_slice(&self.price.raw().to_le_bytes());
        out[24..32].copy_from_slice(&self.size.raw().to_le_bytes());
        out[32..36].copy_from_slice(&self.instrument.to_le_bytes());
        out[36] = self.action as u8;
        out[37] = side_to_u8(self.side);
        out[38] = self.flags;
        out[39] = 0;
    }

    /// Reads the wire form (the loop's decode stage).
    #[inline]
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() < Self::WIRE_LEN {
            return Err(DecodeError::Short(b.len()));
        }
        Ok(Self {
            ts_ns: u64_at(b, 0),
            order_id: u64_at(b, 8),
            price: Price::from_raw(u64_at(b, 16) as i64),
            size: Quantity::from_raw(u64_at(b, 24) as i64),
            instrument: u32_at(b, 32),
            action: Action::from_u8(b[36]).ok_or(DecodeError::Action(b[36]))?,
            side: side_from_u8(b[37]).ok_or(DecodeError::Side(b[37]))?,
            flags: b[38],
        })
    }
}

/// Encodes messages into one contiguous buffer of frames (done at start-up).
pub fn encode_all(msgs: &[FeedMsg]) -> Vec<u8> {
    let mut buf = vec![0u8; msgs.len() * FeedMsg::WIRE_LEN];
    for (m, frame) in msgs.iter().zip(buf.chunks_exact_mut(FeedMsg::WIRE_LEN)) {
        let frame: &mut [u8; FeedMsg::WIRE_LEN] = frame.try_into().expect("exact chunk");
        m.encode(frame);
    }
    buf
}

/// How long an order works.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum OrderKind {
    /// Limit order, immediate or cancel: the part not filled at once is canceled.
    LimitIoc = 1,
    /// Limit order, good till canceled: the rest joins the book at its price.
    LimitGtc = 2,
    /// Cancel of a working order (`id` names it).
    Cancel = 3,
}

/// An order (or cancel) leaving the strategy, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OrderMsg {
    /// Our order id (for a cancel, the order to cancel).
    pub id: u64,
    /// Limit price.
    pub price: Price,
    /// Quantity.
    pub qty: Quantity,
    /// Feed time of the tick that caused it.
    pub ts_ns: u64,
    /// Buy or sell.
    pub side: Side,
    /// Order kind.
    pub kind: OrderKind,
}

impl OrderMsg {
    /// Bytes on the wire: id, price, qty, ts (8 each), side, kind, 6 reserved.
    pub const WIRE_LEN: usize = 40;

    /// Writes the wire form (the loop's encode stage).
    #[inline]
    pub fn encode(&self, out: &mut [u8; Self::WIRE_LEN]) {
        out[0..8].copy_from_slice(&self.id.to_le_bytes());
        out[8..16].copy_from_slice(&self.price.raw().to_le_bytes());
        out[16..24].copy_from_slice(&self.qty.raw().to_le_bytes());
        out[24..32].copy_from_slice(&self.ts_ns.to_le_bytes());
        out[32] = side_to_u8(self.side);
        out[33] = self.kind as u8;
        out[34..40].fill(0);
    }

    /// Reads the wire form (the venue's gateway).
    #[inline]
    pub fn decode(b: &[u8; Self::WIRE_LEN]) -> Result<Self, DecodeError> {
        let kind = match b[33] {
            1 => OrderKind::LimitIoc,
            2 => OrderKind::LimitGtc,
            3 => OrderKind::Cancel,
            k => return Err(DecodeError::Kind(k)),
        };
        Ok(Self {
            id: u64_at(b, 0),
            price: Price::from_raw(u64_at(b, 8) as i64),
            qty: Quantity::from_raw(u64_at(b, 16) as i64),
            ts_ns: u64_at(b, 24),
            side: side_from_u8(b[32]).ok_or(DecodeError::Side(b[32]))?,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn action() -> impl Strategy<Value = Action> {
        (1u8..=8).prop_map(|b| Action::from_u8(b).expect("valid"))
    }

    proptest! {
        #[test]
        fn feed_frames_round_trip(ts in any::<u64>(), id in any::<u64>(), px in any::<i64>(),
                                  sz in any::<i64>(), inst in any::<u32>(), a in action(),
                                  s in 0u8..3, flags in any::<u8>()) {
            let m = FeedMsg {
                ts_ns: ts, order_id: id, price: Price::from_raw(px), size: Quantity::from_raw(sz),
                instrument: inst, action: a, side: side_from_u8(s).expect("valid"), flags,
            };
            let mut buf = [0u8; FeedMsg::WIRE_LEN];
            m.encode(&mut buf);
            prop_assert_eq!(FeedMsg::decode(&buf), Ok(m));
        }

        #[test]
        fn order_frames_round_trip(id in any::<u64>(), px in any::<i64>(), q in any::<i64>(),
                                   ts in any::<u64>(), s in 1u8..3, k in 1u8..=3) {
            let kind = match k { 1 => OrderKind::LimitIoc, 2 => OrderKind::LimitGtc, _ => OrderKind::Cancel };
            let m = OrderMsg { id, price: Price::from_raw(px), qty: Quantity::from_raw(q), ts_ns: ts,
                               side: side_from_u8(s).expect("valid"), kind };
            let mut buf = [0u8; OrderMsg::WIRE_LEN];
            m.encode(&mut buf);
            prop_assert_eq!(OrderMsg::decode(&buf), Ok(m));
        }
    }

    #[test]
    fn bad_frames_are_refused_with_the_reason() {
        assert_eq!(FeedMsg::decode(&[0u8; 12]), Err(DecodeError::Short(12)));
        let mut buf = [0u8; FeedMsg::WIRE_LEN];
        FeedMsg::new(1, Action::Add, Side::Buy).encode(&mut buf);
        buf[36] = 99;
        assert_eq!(FeedMsg::decode(&buf), Err(DecodeError::Action(99)));
        buf[36] = 1;
        buf[37] = 7;
        assert_eq!(FeedMsg::decode(&buf), Err(DecodeError::Side(7)));
    }
}
