//! Databento's DBN encoding, versions 1 to 3, as far as tickflow reads it: the prelude and the
//! market-by-order (MBO) record, read from their bytes. The replay reader and the fast path's
//! feed both frame a file's records with these, so a damaged file gets the same answer from
//! both, and every length is checked before a field is read.
//!
//! A DBN stream is `"DBN"`, a version byte, a little-endian `u32` metadata length and the
//! metadata, then records, each starting with its length in 4-byte words and its type. An MBO
//! record (type `0xA0`, 56 bytes): header (length `u8`, type `u8`, publisher `u16`, instrument
//! `u32`, `ts_event` `u64`), `order_id u64`, `price i64` (1e-9), `size u32`, `flags u8`,
//! `channel_id u8`, `action u8`, `side u8`, `ts_recv u64`, `ts_in_delta i32`, `sequence u32`.
//! Version 4 frames its records with another header and is not read.

/// Bytes of the prelude: `"DBN"`, the version, the metadata length.
pub const PRELUDE: usize = 8;
/// The record type of MBO records.
pub const MBO: u8 = 0xA0;
/// Bytes of an MBO record.
pub const MBO_LEN: usize = 56;
/// The price of a record that has none.
pub const UNDEF_PRICE: i64 = i64::MAX;
/// A record's length byte counts words of this many bytes.
const WORD: usize = 4;
/// Bytes of the header every record starts with.
const RECORD_HEADER: usize = 16;

/// The metadata length a prelude announces, or why the bytes are not a DBN stream of a
/// version read here.
pub fn metadata_len(prelude: &[u8]) -> Result<u32, String> {
    match prelude {
        [b'D', b'B', b'N', version, a, b, c, d, ..] => {
            if (1..=3).contains(version) {
                Ok(u32::from_le_bytes([*a, *b, *c, *d]))
            } else {
                Err(format!(
                    "a DBN file of version {version}; versions 1 to 3 are read"
                ))
            }
        }
        _ => Err("it does not start with \"DBN\" and its version".into()),
    }
}

/// The size in bytes of the record whose first byte is `first`, or why that byte cannot frame
/// a record (then the next record cannot be found either).
pub fn record_len(first: u8) -> Result<usize, String> {
    let len = usize::from(first) * WORD;
    if len < RECORD_HEADER {
        return Err(format!(
            "a record of {len} bytes, shorter than its {RECORD_HEADER}-byte header, leaves the \
             next one nowhere to be found (the file is damaged)"
        ));
    }
    Ok(len)
}

use crate::{Price, Quantity, Side};

/// The fields of an MBO record that carry market data, in tickflow's units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MboRecord {
    /// The venue's numeric instrument id.
    pub instrument_id: u32,
    /// Matching-engine time, ns since the epoch.
    pub ts_event: u64,
    /// Order id.
    pub order_id: u64,
    /// Price (DBN's 1e-9 units are tickflow's); zero where the record has none
    /// ([`UNDEF_PRICE`]).
    pub price: Price,
    /// Size in contracts or shares.
    pub size: Quantity,
    /// Databento's flag bits (`F_LAST` 0x80, `F_SNAPSHOT` 0x20, ...).
    pub flags: u8,
    /// `A` add, `C` cancel, `M` modify, `R` clear, `F` fill, `T` trade, `N` none.
    pub action: u8,
    /// `B` bid → buy, `A` ask → sell, anything else none.
    pub side: Side,
    /// Receive time, ns since the epoch.
    pub ts_recv: u64,
}

impl MboRecord {
    /// Reads a whole record (as long as its length byte says): `Ok(None)` for a record of
    /// another type, an error for an MBO record too short for the layout.
    pub fn parse(rec: &[u8]) -> Result<Option<Self>, String> {
        if rec.get(1) != Some(&MBO) {
            return Ok(None);
        }
        if rec.len() < MBO_LEN {
            return Err(format!(
                "a market-by-order record of {} bytes; its layout has {MBO_LEN}",
                rec.len()
            ));
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&rec[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let u32_at =
            |at: usize| u32::from_le_bytes([rec[at], rec[at + 1], rec[at + 2], rec[at + 3]]);
        Ok(Some(Self {
            instrument_id: u32_at(4),
            ts_event: u64_at(8),
            order_id: u64_at(16),
            price: match u64_at(24) as i64 {
                UNDEF_PRICE => Price::ZERO,
                raw => Price::from_raw(raw),
            },
            size: Quantity::from_raw(i64::from(u32_at(32)) * 1_000_000_000),
            flags: rec[36],
            action: rec[38],
            side: match rec[39] {
                b'B' => Side::Buy,
                b'A' => Side::Sell,
                _ => Side::None,
            },
            ts_recv: u64_at(40),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_prelude_and_an_mbo_record_and_says_what_is_wrong() {
        assert_eq!(metadata_len(b"DBN\x02\x10\x01\x00\x00"), Ok(272));
        assert!(
            metadata_len(b"DBN\x04\x10\x01\x00\x00")
                .unwrap_err()
                .contains("version 4")
        );
        assert!(
            metadata_len(b"DBN\x01")
                .unwrap_err()
                .contains("does not start with")
        );
        assert!(
            metadata_len(b"PAR1xxxxxxxx")
                .unwrap_err()
                .contains("does not start with")
        );

        assert_eq!(record_len(14), Ok(56));
        assert!(
            record_len(3)
                .unwrap_err()
                .starts_with("a record of 12 bytes")
        );

        let mut r = [0u8; MBO_LEN];
        r[0] = 14;
        r[1] = MBO;
        r[4..8].copy_from_slice(&7u32.to_le_bytes());
        r[8..16].copy_from_slice(&1_000u64.to_le_bytes());
        r[16..24].copy_from_slice(&11u64.to_le_bytes());
        r[24..32].copy_from_slice(&(-5i64).to_le_bytes());
        r[32..36].copy_from_slice(&3u32.to_le_bytes());
        (r[36], r[38], r[39]) = (0x80, b'A', b'B');
        r[40..48].copy_from_slice(&1_010u64.to_le_bytes());
        let want = MboRecord {
            instrument_id: 7,
            ts_event: 1_000,
            order_id: 11,
            price: Price::from_raw(-5),
            size: Quantity::from_int(3).unwrap(),
            flags: 0x80,
            action: b'A',
            side: Side::Buy,
            ts_recv: 1_010,
        };
        assert_eq!(MboRecord::parse(&r), Ok(Some(want)));
        r[24..32].copy_from_slice(&UNDEF_PRICE.to_le_bytes());
        r[39] = b'N';
        let none = MboRecord::parse(&r).unwrap().unwrap();
        assert_eq!((none.price, none.side), (Price::ZERO, Side::None));
        assert!(
            MboRecord::parse(&r[..52])
                .unwrap_err()
                .contains("of 52 bytes")
        );
        r[1] = 0x01;
        assert_eq!(MboRecord::parse(&r), Ok(None), "another type");
        assert_eq!(MboRecord::parse(&[]), Ok(None));
    }
}
