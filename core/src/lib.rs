//! Domain types of tickflow. Nothing flows through this crate; every other crate speaks its types.
//!
//! Money and quantities are fixed-point integers ([`Price`], [`Quantity`]) parsed from decimal
//! text or scaled integers, never through `f64`. Time is [`Timestamp`], nanoseconds since the
//! Unix epoch (UTC). Instruments are interned [`InstrumentId`]s into an [`InstrumentRegistry`].
//! Market records ([`Trade`], [`Quote`], [`BookEvent`]) and derived records ([`Bar`]) carry an
//! Arrow schema and convert to and from Arrow `RecordBatch`es ([`ArrowRecord`]).
//!
//! Layout:
//! - `fixed`: the fixed-point engine shared by [`Price`] and [`Quantity`].
//! - `time`: [`Timestamp`] and [`Duration`], calendar conversion, RFC 3339 text.
//! - `instrument`: [`InstrumentId`], [`Instrument`], [`InstrumentRegistry`].
//! - `records`: [`Trade`], [`Quote`], [`BookEvent`], [`Bar`], [`MarketEvent`], [`Reject`].
//! - `arrow`: Arrow schemas and `RecordBatch` conversion for every record type.
//! - `error`: the crate's [`Error`].
//! - `wire`: the compact binary encoding of market records on Kafka.
//! - `depth`: the update-id continuity of Binance depth diffs.
//! - `dbn`: the prelude and market-by-order records of Databento's DBN files.

pub mod arrow;
pub mod dbn;
pub mod depth;
pub mod error;
pub mod fixed;
pub mod instrument;
pub mod kafka;
pub mod records;
pub mod time;
pub mod trading;
pub mod wire;

pub use crate::arrow::{ArrowRecord, INSTRUMENTS_KEY};
pub use crate::error::{Error, Result, describe};
pub use crate::fixed::{FIXED_DECIMALS, FIXED_SCALE, ParseFixedError, Price, Quantity};
pub use crate::instrument::{Instrument, InstrumentId, InstrumentRegistry, InstrumentSpec};
pub use crate::records::{
    Bar, BarKind, BookAction, BookEvent, IndicatorRow, MarketEvent, Origin, Prediction, Quote,
    Reject, RejectReason, SeqNo, Side, Signal, Trade,
};
pub use crate::time::{Duration, Timestamp};
pub use crate::trading::{
    Fill, FillStatus, Order, OrderType, PortfolioValue, Position, RiskReason, RiskReject,
    TimeInForce, exact_notional, money_to_exact, round_money,
};
