//! Stateful stream operators and the one adapter that runs them in timely.
//!
//! In flow [`MarketEvent`](tickflow_core::MarketEvent)s; out flow accepted events, rejects with
//! their reasons, and bars. Every operator is plain Rust that knows nothing of timely
//! ([`Operator`]: `on_batch`, `on_watermark`, `snapshot`, `restore`), so it is unit-tested on
//! its own; [`adapter::apply`] runs any of them in a timely dataflow, exchanging records by
//! instrument, buffering them until the watermark (the input frontier) passes their time, and
//! handing them over in a deterministic order.
//!
//! Layout:
//! - `operator`: the [`Operator`] trait, [`Emitter`] and the [`Record`] trait.
//! - `adapter`: the timely adapter and the ordered sink stage.
//! - `normalize`: validation, de-duplication, lateness and reordering.
//! - `bars`: time bars and volume bars.
//! - `error`: the crate's [`Error`].

pub mod adapter;
pub mod bars;
pub mod error;
pub mod exchange;
pub mod features;
pub mod indicators;
pub mod normalize;
pub mod operator;
pub mod portfolio;
pub mod predict;
pub mod risk;
pub mod signals;

pub use crate::bars::{BarInput, TimeBars, VolumeBars};
pub use crate::error::{Error, Result};
pub use crate::normalize::{Normalize, NormalizeConfig, Normalized};
pub use crate::operator::{Emitter, Operator, Record};
