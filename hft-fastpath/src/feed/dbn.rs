//! Databento DBN market-by-order files, decoded from the raw records with
//! [`tickflow_core::dbn`] (the layout is described there). Records of other types are skipped.
//!
//! Actions: `A` add, `C` cancel, `M` modify, `R` clear, `F` fill (the book is changed by the
//! cancel that follows), `T` trade (an aggressor print, marked [`FeedMsg::PRINT`]: the fills of
//! the resting orders follow), `N` none (its `F_LAST` flag moves to the message before it).
//! Flags keep Databento's bits: `F_LAST` 0x80 is [`FeedMsg::LAST`], `F_SNAPSHOT` 0x20 is
//! [`FeedMsg::SNAPSHOT`]. A file with several instruments keeps the busiest one.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use tickflow_core::dbn::{self as layout, MboRecord};

use super::{Feed, FeedError, bad, read};
use crate::msg::{Action, FeedMsg};

/// Loads a `.dbn` or `.dbn.zst` file.
pub fn load(path: &Path) -> Result<Feed, FeedError> {
    let raw = read(path)?;
    let bytes = if path.extension().is_some_and(|e| e == "zst") {
        let mut out = Vec::new();
        zstd::stream::read::Decoder::new(raw.as_slice())
            .and_then(|mut d| d.read_to_end(&mut out))
            .map_err(|e| bad(path, "file", format!("zstd: {e}")))?;
        out
    } else {
        raw
    };
    let (per_instrument, skipped) = decode(&bytes).map_err(|(at, why)| bad(path, at, why))?;
    let busiest = per_instrument
        .iter()
        .max_by_key(|(id, v)| (v.len(), std::cmp::Reverse(**id)))
        .map(|(id, _)| *id);
    let Some(id) = busiest else {
        return Ok(Feed::new("none".into(), Vec::new(), skipped));
    };
    let others: u64 = per_instrument
        .iter()
        .filter(|(i, _)| **i != id)
        .map(|(_, v)| v.len() as u64)
        .sum();
    let mut map = per_instrument;
    let msgs = map.remove(&id).unwrap_or_default();
    Ok(Feed::new(format!("dbn:{id}"), msgs, skipped + others))
}

type Decoded = (HashMap<u32, Vec<FeedMsg>>, u64);

/// Decodes a whole uncompressed DBN stream into messages per instrument, and the count of
/// records skipped. Errors say where (byte offset) and why.
pub fn decode(b: &[u8]) -> Result<Decoded, (String, String)> {
    let meta_len = layout::metadata_len(b).map_err(|why| ("header".to_string(), why))?;
    let mut at = layout::PRELUDE + meta_len as usize;
    if at > b.len() {
        return Err(("header".into(), "metadata runs past the end".into()));
    }
    let mut out: HashMap<u32, Vec<FeedMsg>> = HashMap::new();
    let mut skipped = 0u64;
    while at < b.len() {
        let len = layout::record_len(b[at]).map_err(|why| (format!("byte {at}"), why))?;
        if at + len > b.len() {
            return Err((
                format!("byte {at}"),
                format!("a record of {len} bytes does not fit the stream"),
            ));
        }
        let record =
            MboRecord::parse(&b[at..at + len]).map_err(|why| (format!("byte {at}"), why))?;
        at += len;
        let Some(MboRecord {
            instrument_id: instrument,
            ts_event,
            order_id,
            price,
            size,
            flags,
            action,
            side,
            ..
        }) = record
        else {
            skipped += 1;
            continue;
        };
        let msgs = out.entry(instrument).or_default();
        let (action, extra) = match action {
            b'A' => (Action::Add, 0),
            b'C' => (Action::Cancel, 0),
            b'M' => (Action::Modify, 0),
            b'R' => (Action::Clear, 0),
            b'F' => (Action::Fill, 0),
            b'T' => (Action::Trade, FeedMsg::PRINT),
            b'N' => {
                if flags & FeedMsg::LAST != 0
                    && let Some(prev) = msgs.last_mut()
                {
                    prev.flags |= FeedMsg::LAST;
                }
                skipped += 1;
                continue;
            }
            other => {
                return Err((
                    format!("byte {}", at - len),
                    format!("unknown MBO action {:?}", other as char),
                ));
            }
        };
        msgs.push(FeedMsg {
            ts_ns: ts_event,
            order_id,
            price,
            size,
            instrument,
            action,
            side,
            flags: (flags & (FeedMsg::LAST | FeedMsg::SNAPSHOT)) | extra,
        });
    }
    Ok((out, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickflow_core::dbn::UNDEF_PRICE;
    use tickflow_core::{Price, Quantity, Side};

    fn record(action: u8, side: u8, id: u64, price: i64, size: u32, flags: u8) -> Vec<u8> {
        let mut r = vec![0u8; layout::MBO_LEN];
        r[0] = (layout::MBO_LEN / 4) as u8;
        r[1] = layout::MBO;
        r[4..8].copy_from_slice(&7u32.to_le_bytes());
        r[8..16].copy_from_slice(&1_000u64.to_le_bytes());
        r[16..24].copy_from_slice(&id.to_le_bytes());
        r[24..32].copy_from_slice(&price.to_le_bytes());
        r[32..36].copy_from_slice(&size.to_le_bytes());
        r[36] = flags;
        r[38] = action;
        r[39] = side;
        r
    }

    fn stream(records: &[Vec<u8>]) -> Vec<u8> {
        let mut b = b"DBN\x01".to_vec();
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        for r in records {
            b.extend_from_slice(r);
        }
        b
    }

    #[test]
    fn decodes_mbo_records() {
        let b = stream(&[
            record(b'A', b'B', 11, 4_750_250_000_000, 3, 0x80),
            record(b'T', b'A', 0, 4_750_250_000_000, 1, 0),
            record(b'F', b'B', 11, 4_750_250_000_000, 1, 0),
            record(b'N', b'N', 0, UNDEF_PRICE, 0, 0x80),
        ]);
        let (m, skipped) = decode(&b).unwrap();
        assert_eq!(skipped, 1);
        let v = &m[&7];
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].action, Action::Add);
        assert_eq!(v[0].side, Side::Buy);
        assert_eq!(v[0].size, Quantity::from_int(3).unwrap());
        assert_eq!(v[0].price, Price::parse("4750.25").unwrap());
        assert_eq!(v[1].action, Action::Trade);
        assert_eq!(v[1].flags & FeedMsg::PRINT, FeedMsg::PRINT);
        assert!(v[2].is_last(), "the N record's F_LAST moves back");
    }

    #[test]
    fn malformed_streams_say_where() {
        assert!(
            decode(b"PAR1xxxxxxxx")
                .unwrap_err()
                .1
                .contains("does not start with \"DBN\"")
        );
        // A length byte that cannot frame a record.
        let mut b = stream(&[record(b'A', b'B', 1, 1, 1, 0)]);
        let first = b.len() - layout::MBO_LEN;
        b[first] = 2;
        let (at, why) = decode(&b).unwrap_err();
        assert_eq!(at, format!("byte {first}"));
        assert!(
            why.starts_with("a record of 8 bytes, shorter than its 16-byte header"),
            "{why}"
        );
        let mut b = stream(&[record(b'A', b'B', 1, 1, 1, 0)]);
        b.truncate(b.len() - 3);
        let (at, why) = decode(&b).unwrap_err();
        assert!(
            at.starts_with("byte ") && why.contains("does not fit"),
            "{at}: {why}"
        );
        let b = stream(&[record(b'Z', b'B', 1, 1, 1, 0)]);
        assert!(decode(&b).unwrap_err().1.contains("unknown MBO action 'Z'"));
    }

    proptest::proptest! {
        /// A stream with bytes overwritten or cut short decodes or says where it is damaged.
        #[test]
        fn a_damaged_stream_never_panics(
            edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::collection::vec(proptest::num::u8::ANY, 1..9)), 1..6),
            cut in proptest::option::of(proptest::prelude::any::<proptest::sample::Index>()),
        ) {
            let records: Vec<Vec<u8>> = (0..20)
                .map(|k| record(b"ACMRFTN"[k % 7], b'B', k as u64, 4_750_000_000_000, 1, 0))
                .collect();
            let mut b = stream(&records);
            for (at, with) in edits {
                let at = at.index(b.len());
                let end = (at + with.len()).min(b.len());
                b.splice(at..end, with);
            }
            if let Some(cut) = cut {
                b.truncate(cut.index(b.len()));
            }
            let _ = decode(&b);
        }
    }
}
