//! Market and derived records.
//!
//! Every record carries its instrument, its event time and a [`SeqNo`]: the position at which
//! its source produced it. `(ts_event, instrument, seq)` orders records totally and
//! deterministically, whichever worker or thread handled them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::fixed::{Price, Quantity};
use crate::instrument::InstrumentId;
use crate::time::{Duration, Timestamp};

/// Where a source produced a record: the index of the source part (file or synthetic
/// instrument) in the job (high 16 bits) and the
/// record's ordinal within that source (low 48 bits).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize, Debug,
)]
#[serde(transparent)]
pub struct SeqNo(pub u64);

impl SeqNo {
    /// Builds a sequence number from a source index and an ordinal.
    #[inline]
    pub fn new(source: u16, ordinal: u64) -> Self {
        Self((u64::from(source) << 48) | (ordinal & ((1 << 48) - 1)))
    }
    /// The source index.
    #[inline]
    pub fn source(self) -> u16 {
        (self.0 >> 48) as u16
    }
    /// The ordinal within the source.
    #[inline]
    pub fn ordinal(self) -> u64 {
        self.0 & ((1 << 48) - 1)
    }

    /// Record `index` (0-based) of line `line` of a file part: a file's ordinals are its lines
    /// (records, in a binary file) shifted left by [`SeqNo::LINE_SHIFT`], plus each record's
    /// place in its line, so that a record found bad downstream is reported at its line.
    /// Lines go up to 2³² − 1; records of one line past 2¹⁶ − 1 share the last place.
    #[inline]
    pub fn at_line(source: u16, line: u64, index: u64) -> Self {
        Self::new(
            source,
            (line << Self::LINE_SHIFT) | index.min((1 << Self::LINE_SHIFT) - 1),
        )
    }

    /// The line of a record numbered by [`SeqNo::at_line`].
    #[inline]
    pub fn line(self) -> u64 {
        self.ordinal() >> Self::LINE_SHIFT
    }

    /// Bits of a file record's ordinal that give its place within its line.
    pub const LINE_SHIFT: u32 = 16;
}

/// A source part as reject messages name it: its name, and what its records' ordinals say.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Origin {
    /// File path or source name.
    pub name: String,
    /// Whether the ordinals are lines ([`SeqNo::at_line`]: recorded files) or not (a Kafka
    /// partition's offsets, a synthetic instrument's record count).
    pub lines: bool,
}

impl Origin {
    /// Where `seq` is in this part: its line in a file, its ordinal otherwise.
    pub fn position(&self, seq: SeqNo) -> u64 {
        if self.lines {
            seq.line()
        } else {
            seq.ordinal()
        }
    }
}

/// Side of a trade aggressor, a quote or an order.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Buy side (bid).
    Buy,
    /// Sell side (ask).
    Sell,
    /// Not known or not applicable.
    #[default]
    None,
}

impl Side {
    /// Stable text name.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
            Side::None => "none",
        }
    }
    /// Parses [`Side::as_str`] output.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "buy" => Some(Side::Buy),
            "sell" => Some(Side::Sell),
            "none" => Some(Side::None),
            _ => None,
        }
    }
}

/// A trade print.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Trade {
    /// Instrument.
    pub instrument: InstrumentId,
    /// Event time at the venue.
    pub ts_event: Timestamp,
    /// Receive time where the source recorded one, else equal to `ts_event`.
    pub ts_recv: Timestamp,
    /// Trade price.
    pub price: Price,
    /// Trade size.
    pub size: Quantity,
    /// Aggressor side where known.
    pub aggressor: Side,
    /// Venue trade id where the source has one (used to drop duplicates).
    pub trade_id: Option<u64>,
    /// Flagged suspicious by the source.
    pub suspicious: bool,
    /// Source position.
    pub seq: SeqNo,
}

/// A top-of-book quote; either side may be absent.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Quote {
    /// Instrument.
    pub instrument: InstrumentId,
    /// Event time at the venue.
    pub ts_event: Timestamp,
    /// Receive time where recorded.
    pub ts_recv: Timestamp,
    /// Best bid, if present.
    pub bid: Option<Price>,
    /// Size at the bid (zero when absent).
    pub bid_size: Quantity,
    /// Best ask, if present.
    pub ask: Option<Price>,
    /// Size at the ask (zero when absent).
    pub ask_size: Quantity,
    /// Venue update id where the source has one (used to drop duplicates).
    pub update_id: Option<u64>,
    /// Flagged suspicious by the source.
    pub suspicious: bool,
    /// Source position.
    pub seq: SeqNo,
}

/// What an order-by-order event does to the book.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
#[serde(rename_all = "lowercase")]
pub enum BookAction {
    /// A new resting order.
    Add,
    /// An order changes price or size.
    Modify,
    /// An order is cancelled, wholly or in part (`size` is the amount removed).
    Cancel,
    /// An order trades (`size` is the amount executed).
    Execute,
    /// The whole book is cleared.
    Clear,
}

impl BookAction {
    /// Stable text name.
    pub fn as_str(self) -> &'static str {
        match self {
            BookAction::Add => "add",
            BookAction::Modify => "modify",
            BookAction::Cancel => "cancel",
            BookAction::Execute => "execute",
            BookAction::Clear => "clear",
        }
    }
    /// Parses [`BookAction::as_str`] output.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "add" => BookAction::Add,
            "modify" => BookAction::Modify,
            "cancel" => BookAction::Cancel,
            "execute" => BookAction::Execute,
            "clear" => BookAction::Clear,
            _ => return None,
        })
    }
}

/// An order-by-order (L3) book event, or a price-level update when `order_id` is `None`.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct BookEvent {
    /// Instrument.
    pub instrument: InstrumentId,
    /// Event time at the venue.
    pub ts_event: Timestamp,
    /// Receive time where recorded.
    pub ts_recv: Timestamp,
    /// What happens.
    pub action: BookAction,
    /// Side of the order or level.
    pub side: Side,
    /// Order or level price.
    pub price: Price,
    /// Size added, removed or executed; for a level update, the new level size.
    pub size: Quantity,
    /// Venue order id; `None` for aggregated level updates.
    pub order_id: Option<u64>,
    /// Flagged suspicious by the source.
    pub suspicious: bool,
    /// Source position.
    pub seq: SeqNo,
}

/// How a bar was closed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Debug)]
#[serde(rename_all = "lowercase", tag = "type", content = "size")]
pub enum BarKind {
    /// Closed when event time passes the end of a fixed interval.
    Time(Duration),
    /// Closed when cumulative volume reaches a threshold.
    Volume(Quantity),
    /// Closed like [`BarKind::Time`], but built from quote mid prices, for markets whose data
    /// records quotes and no trades (FX): no traded volume, and each quote weighs one.
    Mid(Duration),
}

impl fmt::Display for BarKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BarKind::Time(d) => write!(f, "time:{d}"),
            BarKind::Volume(q) => write!(f, "volume:{q}"),
            BarKind::Mid(d) => write!(f, "mid:{d}"),
        }
    }
}

/// An OHLCV bar over `[start, end)` of event time.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Bar {
    /// Instrument.
    pub instrument: InstrumentId,
    /// Bar type.
    pub kind: BarKind,
    /// First instant covered (inclusive).
    pub start: Timestamp,
    /// End of the bar (exclusive); the bar's event time.
    pub end: Timestamp,
    /// First trade price (of a mid bar: first mid price).
    pub open: Price,
    /// Highest trade price (mid price).
    pub high: Price,
    /// Lowest trade price (mid price).
    pub low: Price,
    /// Last trade price (mid price).
    pub close: Price,
    /// Summed trade size; zero for a mid bar, whose quotes record no trading.
    pub volume: Quantity,
    /// Volume-weighted average price, rounded to 9 decimals; of a mid bar, the mean of its mid
    /// prices, each quote weighing one.
    pub vwap: Price,
    /// Number of trades; of a mid bar, number of quotes (the "tick volume").
    pub trade_count: u64,
}

/// Indicator values of one instrument at the end of one bar. `names` is shared by every row
/// of a stream (`sma_20`, `rsi_14`, ...); `values[i]` is `None` while indicator `i` is not yet
/// defined.
#[derive(Clone, PartialEq, Serialize, Deserialize, Debug)]
pub struct IndicatorRow {
    /// Instrument.
    pub instrument: InstrumentId,
    /// End of the bar the values were computed on; the row's event time.
    pub end: Timestamp,
    /// Column names, shared.
    pub names: std::sync::Arc<[String]>,
    /// One value per name.
    pub values: Vec<Option<f64>>,
}

impl IndicatorRow {
    /// The value of a named indicator, if defined.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.values.get(i).copied().flatten())
    }
}

/// A trading signal from a strategy's rules.
#[derive(Clone, PartialEq, Serialize, Deserialize, Debug)]
pub struct Signal {
    /// Instrument.
    pub instrument: InstrumentId,
    /// Event time (end of the bar whose values triggered it).
    pub ts_event: Timestamp,
    /// Buy or sell.
    pub side: Side,
    /// Conviction in [0, 1].
    pub strength: f64,
    /// Strategy and rule that fired, e.g. `trend: buy when macd crosses_above 0 and adx_14 > 25`.
    pub reason: std::sync::Arc<str>,
}

/// A model's forecast of one instrument's return over the next `horizon` bars.
#[derive(Clone, PartialEq, Serialize, Deserialize, Debug)]
pub struct Prediction {
    /// Instrument.
    pub instrument: InstrumentId,
    /// Event time: the end of the bar whose features the model read.
    pub ts_event: Timestamp,
    /// Forecast horizon, in bars.
    pub horizon: u32,
    /// Probability that the return over the horizon is positive.
    pub p_up: f64,
    /// Expected log return over the horizon.
    pub expected_return: f64,
    /// Version of the model that made it (kind and a hash of its weights).
    pub model_version: std::sync::Arc<str>,
}

/// Any market record a source produces.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub enum MarketEvent {
    /// A trade.
    Trade(Trade),
    /// A quote.
    Quote(Quote),
    /// An order-book event.
    Book(BookEvent),
}

impl MarketEvent {
    /// The instrument.
    #[inline]
    pub fn instrument(&self) -> InstrumentId {
        match self {
            MarketEvent::Trade(t) => t.instrument,
            MarketEvent::Quote(q) => q.instrument,
            MarketEvent::Book(b) => b.instrument,
        }
    }
    /// The event time.
    #[inline]
    pub fn ts_event(&self) -> Timestamp {
        match self {
            MarketEvent::Trade(t) => t.ts_event,
            MarketEvent::Quote(q) => q.ts_event,
            MarketEvent::Book(b) => b.ts_event,
        }
    }
    /// The source position.
    #[inline]
    pub fn seq(&self) -> SeqNo {
        match self {
            MarketEvent::Trade(t) => t.seq,
            MarketEvent::Quote(q) => q.seq,
            MarketEvent::Book(b) => b.seq,
        }
    }
    /// The stream this record belongs to.
    pub fn kind(&self) -> &'static str {
        match self {
            MarketEvent::Trade(_) => "trade",
            MarketEvent::Quote(_) => "quote",
            MarketEvent::Book(_) => "book",
        }
    }
}

/// Why a record was refused, or where records are missing ([`RejectReason::Gap`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The source could not parse the row (wrong column count, garbage, truncated line).
    Malformed,
    /// A price that is zero or negative.
    NonPositivePrice,
    /// A price that is NaN or infinite in the source.
    NonFinitePrice,
    /// A size that is zero or negative.
    NonPositiveSize,
    /// A quote whose bid is above its ask.
    CrossedQuote,
    /// Flagged suspicious by the source.
    Suspicious,
    /// A second copy of a record already accepted (same venue id).
    Duplicate,
    /// Arrived after the watermark had passed its event time by more than the allowed lateness.
    Late,
    /// Records missing from the source: its venue's update ids jump before this record. The
    /// record itself is read as usual; the reject marks where the missing records would be.
    Gap,
}

impl RejectReason {
    /// All reasons, in reporting order.
    pub const ALL: [RejectReason; 9] = [
        RejectReason::Malformed,
        RejectReason::NonPositivePrice,
        RejectReason::NonFinitePrice,
        RejectReason::NonPositiveSize,
        RejectReason::CrossedQuote,
        RejectReason::Suspicious,
        RejectReason::Duplicate,
        RejectReason::Late,
        RejectReason::Gap,
    ];

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::NonPositivePrice => "non_positive_price",
            RejectReason::NonFinitePrice => "non_finite_price",
            RejectReason::NonPositiveSize => "non_positive_size",
            RejectReason::CrossedQuote => "crossed_quote",
            RejectReason::Suspicious => "suspicious",
            RejectReason::Duplicate => "duplicate",
            RejectReason::Late => "late",
            RejectReason::Gap => "gap",
        }
    }

    /// Parses [`RejectReason::as_str`] output.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Index into [`RejectReason::ALL`] (for counters).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused record: from a source (a row that did not parse) or from normalize.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Reject {
    /// The instrument, when known.
    pub instrument: Option<InstrumentId>,
    /// The event time, when known.
    pub ts_event: Option<Timestamp>,
    /// Why.
    pub reason: RejectReason,
    /// Human-readable detail (which field, which value).
    pub detail: String,
    /// Where it came from: file path or source name.
    pub origin: String,
    /// Where in the origin: the line (1-based) of a text file, the record of a binary file
    /// (1-based), the offset in a Kafka partition, the record (1-based) of a synthetic
    /// instrument; 0 for the whole origin.
    pub line: u64,
    /// Source position of the record, for ordering.
    pub seq: SeqNo,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.origin, self.line, self.reason, self.detail
        )
    }
}
