//! LOBSTER message files: rows `time, type, order id, size, price, direction` (a header line is
//! skipped). Time is seconds after midnight; the fast path only uses time differences, so it is
//! counted from midnight UTC of the file's date. Price is scaled by 10,000; direction 1 is a
//! buy (bid) order, -1 a sell (ask) order.
//!
//! Types: 1 → `Add`; 2 (partial cancel) and 3 (delete) → `Cancel` of the size removed; 4
//! (visible execution) → `Execute`; 5 (hidden execution) → `Trade` with the aggressor on the
//! other side; 6 (cross trade) → `Trade` without a side; 7 (halt) is skipped. Every row is one
//! complete event ([`FeedMsg::LAST`]).

use std::path::Path;

use tickflow_core::{Price, Quantity, Side, Timestamp};

use super::{Feed, FeedError, bad, read};
use crate::msg::{Action, FeedMsg};

/// Midnight UTC of the date in `<SYM>_<yyyy-mm-dd>_...`, and the symbol.
fn name_parts(path: &Path) -> Option<(String, Timestamp)> {
    let name = path.file_name()?.to_str()?;
    let mut parts = name.split('_');
    let sym = parts.next()?.to_string();
    let date = parts.next()?;
    let mut d = date.split('-');
    let (y, m, dd) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    Some((sym, Timestamp::from_date(y, m, dd)?))
}

fn parse_time(s: &str) -> Option<u64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: u64 = secs.parse().ok()?;
    if frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut nanos: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..9 {
        nanos *= 10;
    }
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Loads a LOBSTER message file.
pub fn load(path: &Path) -> Result<Feed, FeedError> {
    let (sym, midnight) = name_parts(path).ok_or_else(|| {
        bad(
            path,
            "name",
            "a LOBSTER message file is named <SYMBOL>_<yyyy-mm-dd>_<start>_<end>_message_<levels>.csv",
        )
    })?;
    let text = read(path)?;
    let text = String::from_utf8(text).map_err(|e| bad(path, "file", format!("not UTF-8: {e}")))?;
    let mut msgs = Vec::new();
    let mut skipped = 0;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || (line_no == 1 && line.starts_with("Time")) {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 6 {
            return Err(bad(
                path,
                format!("line {line_no}"),
                format!("expected 6 fields, found {}", f.len()),
            ));
        }
        let at = || format!("line {line_no}");
        let int = |k: usize, what: &str| {
            f[k].trim()
                .parse::<i64>()
                .map_err(|_| bad(path, at(), format!("{what} is not an integer: {:?}", f[k])))
        };
        let t = parse_time(f[0].trim())
            .ok_or_else(|| bad(path, at(), format!("time is not seconds: {:?}", f[0])))?;
        let kind = int(1, "type")?;
        let id = int(2, "order id")?;
        let size = int(3, "size")?;
        let price = int(4, "price")?;
        let side = match int(5, "direction")? {
            1 => Side::Buy,
            -1 => Side::Sell,
            d => {
                return Err(bad(
                    path,
                    at(),
                    format!("direction must be 1 or -1, found {d}"),
                ));
            }
        };
        let size = Quantity::from_int(size).map_err(|e| bad(path, at(), format!("size: {e}")))?;
        let price =
            Price::from_scaled(price, 4).map_err(|e| bad(path, at(), format!("price: {e}")))?;
        let (action, side) = match kind {
            1 => (Action::Add, side),
            2 | 3 => (Action::Cancel, side),
            4 => (Action::Execute, side),
            5 => (
                Action::Trade,
                if side == Side::Buy {
                    Side::Sell
                } else {
                    Side::Buy
                },
            ),
            6 => (Action::Trade, Side::None),
            7 => {
                skipped += 1;
                continue;
            }
            other => return Err(bad(path, at(), format!("unknown event type {other}"))),
        };
        msgs.push(FeedMsg {
            ts_ns: midnight.nanos() as u64 + t,
            order_id: id as u64,
            price,
            size,
            instrument: 0,
            action,
            side,
            flags: FeedMsg::LAST,
        });
    }
    Ok(Feed::new(sym, msgs, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_and_names_bad_ones() {
        let dir = std::env::temp_dir().join(format!("hft-lobster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("AMZN_2012-06-21_34200000_57600000_message_1.csv");
        std::fs::write(
            &path,
            "Time,Type,OrderId,Size,Price,Direction\r\n34200.5,1,7,100,2238100,1\r\n34200.6,5,0,10,2238200,-1\r\n",
        )
        .unwrap();
        let f = load(&path).unwrap();
        assert_eq!(f.instrument, "AMZN");
        assert_eq!(f.msgs.len(), 2);
        assert_eq!(f.msgs[0].action, Action::Add);
        assert_eq!(f.msgs[0].price, Price::parse("223.81").unwrap());
        assert_eq!(
            f.msgs[1].ts_ns - f.msgs[0].ts_ns,
            100_000_000,
            "nanosecond times"
        );
        assert_eq!(
            (f.msgs[1].action, f.msgs[1].side),
            (Action::Trade, Side::Buy),
            "a hidden sell order executes against a buyer"
        );
        std::fs::write(&path, "34200.5,1,7,100,2238100,0\n").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("direction"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
