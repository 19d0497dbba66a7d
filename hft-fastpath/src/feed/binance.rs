//! Binance websocket captures: gzip text, one message a line, `<local receive ns> <json>`,
//! combined-stream envelopes `{"stream": ..., "data": ...}`.
//!
//! `@depth` diffs become price-level messages ([`Action::Level`], the new size of each level;
//! the last level of a diff carries [`FeedMsg::LAST`]); a REST depth snapshot recorded into the
//! capture (`lastUpdateId`) becomes a `Clear` and the levels of the snapshot; `@trade` messages
//! become trades with the aggressor's side (`m` true: the buyer was the maker, so a seller
//! aggressed). Other streams (`@bookTicker`) are skipped. Time is the local receive time, the
//! order in which the feed arrived. The captures start without a depth snapshot, so levels not updated since the
//! capture began are missing from the book until one comes. A snapshot is synced with the
//! diffs as Binance says a local book is ([`DepthSync`]): the diffs before it but newer than it
//! are applied to its levels, and diffs after it that it already holds are skipped. A diff
//! that does not follow the one before it (updates missing: a [`Step::Gap`]) is preceded by a
//! `Clear`, as Binance says to drop a local book that missed updates; the book then holds the
//! levels updated since, as at the start of the capture. Gaps are counted in [`Feed::gaps`];
//! a trade whose id is more than one above the highest before it follows missing trades, counted
//! in [`Feed::trade_gaps`].

use std::io::Read;
use std::path::Path;

use serde_json::Value;
use tickflow_core::depth::{DepthSync, Level, SYNC_WINDOW, Step, UpdateIds};
use tickflow_core::{Price, Quantity, Side, Timestamp};

use super::{Feed, FeedError, bad, read};
use crate::msg::{Action, FeedMsg};

/// Loads a gzip capture.
pub fn load(path: &Path) -> Result<Feed, FeedError> {
    let raw = read(path)?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(raw.as_slice())
        .read_to_string(&mut text)
        .map_err(|e| bad(path, "file", format!("gzip: {e}")))?;
    let mut msgs = Vec::new();
    let mut skipped = 0;
    let mut gaps = 0;
    let (mut trade_gaps, mut last_trade) = (0, None::<u64>);
    let mut symbol = String::new();
    let mut sync = DepthSync::new(SYNC_WINDOW);
    for (i, line) in text.lines().enumerate() {
        let at = format!("line {}", i + 1);
        if line.trim().is_empty() {
            continue;
        }
        let (ts, json) = line
            .split_once(' ')
            .ok_or_else(|| bad(path, &at, "expected `<receive ns> <json>`"))?;
        let ts: u64 = ts
            .parse()
            .map_err(|_| bad(path, &at, format!("receive time is not an integer: {ts:?}")))?;
        let v: Value =
            serde_json::from_str(json).map_err(|e| bad(path, &at, format!("JSON: {e}")))?;
        if let Some(id) = v.get("lastUpdateId") {
            // A REST depth snapshot recorded into the capture: it replaces the whole book.
            if symbol.is_empty()
                && let Some(s) = v.get("symbol").and_then(Value::as_str)
            {
                symbol = s.to_string();
            }
            let id = id
                .as_u64()
                .ok_or_else(|| bad(path, &at, format!("lastUpdateId is {id}")))?;
            let levels = levels(&v, ("bids", "asks")).map_err(|why| bad(path, &at, why))?;
            msgs.push(FeedMsg {
                flags: FeedMsg::SNAPSHOT,
                ..FeedMsg::new(ts, Action::Clear, Side::None)
            });
            let (levels, gap) = sync.snapshot(id, levels);
            gaps += u64::from(gap.is_some());
            push_levels(&mut msgs, levels, ts, FeedMsg::SNAPSHOT);
            continue;
        }
        let stream = v.get("stream").and_then(Value::as_str).unwrap_or("");
        let data = v
            .get("data")
            .ok_or_else(|| bad(path, &at, "no `data` in the envelope"))?;
        if symbol.is_empty()
            && let Some(s) = data.get("s").and_then(Value::as_str)
        {
            symbol = s.to_string();
        }
        if stream.contains("@depth") {
            let levels = levels(data, ("b", "a")).map_err(|why| bad(path, &at, why))?;
            let recv = Timestamp(i64::try_from(ts).unwrap_or(i64::MAX));
            let id = |key: &str| {
                data.get(key)
                    .and_then(Value::as_u64)
                    .ok_or_else(|| bad(path, &at, format!("depth update without `{key}`")))
            };
            let ids = UpdateIds {
                first: id("U")?,
                last: id("u")?,
                prev: data.get("pu").map(|_| id("pu")).transpose()?,
            };
            match sync.diff(recv, ids, &levels) {
                // Already in the snapshot before it.
                Step::Held(_) => skipped += 1,
                Step::Follows => push_levels(&mut msgs, levels, ts, 0),
                Step::Gap(_) => {
                    gaps += 1;
                    let clear = FeedMsg::new(ts, Action::Clear, Side::None);
                    msgs.push(FeedMsg {
                        flags: if levels.is_empty() { FeedMsg::LAST } else { 0 },
                        ..clear
                    });
                    push_levels(&mut msgs, levels, ts, 0);
                }
            }
        } else if stream.ends_with("@trade") {
            if let Some(id) = data.get("t").and_then(Value::as_u64) {
                trade_gaps += u64::from(last_trade.is_some_and(|l| id > l.saturating_add(1)));
                last_trade = last_trade.max(Some(id));
            }
            let field = |k: &str| {
                data.get(k)
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(path, &at, format!("trade without `{k}`")))
            };
            let price = Price::parse(field("p")?)
                .map_err(|e| bad(path, &at, format!("trade price: {e}")))?;
            let size = Quantity::parse(field("q")?)
                .map_err(|e| bad(path, &at, format!("trade size: {e}")))?;
            let buyer_maker = data.get("m").and_then(Value::as_bool).unwrap_or(false);
            msgs.push(FeedMsg {
                ts_ns: ts,
                order_id: 0,
                price,
                size,
                instrument: 0,
                action: Action::Trade,
                side: if buyer_maker { Side::Sell } else { Side::Buy },
                flags: FeedMsg::LAST,
            });
        } else {
            skipped += 1;
        }
    }
    Ok(Feed {
        gaps,
        trade_gaps,
        ..Feed::new(symbol, msgs, skipped)
    })
}

/// The levels of the bid and ask arrays under `keys`; the whole message is refused if any
/// level is malformed, so no partial update is applied.
fn levels(data: &Value, keys: (&str, &str)) -> Result<Vec<Level>, String> {
    let mut parsed = Vec::new();
    for (key, side) in [(keys.0, Side::Buy), (keys.1, Side::Sell)] {
        let levels = data
            .get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("depth update without `{key}`"))?;
        for l in levels {
            let (price, size) = level(l)?;
            parsed.push((side, price, size));
        }
    }
    Ok(parsed)
}

/// Level messages of `levels`; the last one carries [`FeedMsg::LAST`].
fn push_levels(msgs: &mut Vec<FeedMsg>, levels: Vec<Level>, ts: u64, flags: u8) {
    let first = msgs.len();
    msgs.extend(levels.into_iter().map(|(side, price, size)| FeedMsg {
        ts_ns: ts,
        order_id: 0,
        price,
        size,
        instrument: 0,
        action: Action::Level,
        side,
        flags,
    }));
    if msgs.len() > first
        && let Some(last) = msgs.last_mut()
    {
        last.flags |= FeedMsg::LAST;
    }
}

fn level(l: &Value) -> Result<(Price, Quantity), String> {
    let pair = l
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or_else(|| format!("level is not [price, size]: {l}"))?;
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .ok_or(format!("{v} is not a string"))
    };
    let price = Price::parse(&text(&pair[0])?).map_err(|e| format!("level price: {e}"))?;
    let size = Quantity::parse(&text(&pair[1])?).map_err(|e| format!("level size: {e}"))?;
    Ok((price, size))
}
