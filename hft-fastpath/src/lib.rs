//! The HFT fast path: the microsecond loop that runs outside the dataflow.
//!
//! In flow fixed-size feed frames ([`msg::FeedMsg`], 40 bytes), decoded from recorded
//! order-by-order data or generated; out flow fixed-size order frames ([`msg::OrderMsg`]) to a
//! simulated venue that matches them against the replayed book with queue position, and the
//! fills, PnL and latency histograms of the run.
//!
//! Contract of the hot path (everything [`engine::FusedLoop::step`] and the split threads do per
//! message): no heap allocation, no lock, no system call. All memory — the book's order slab,
//! id map and level ladders, the venue's order and report queues, the rings, the histograms, the
//! journal — is allocated when the loop is built; capacities are fixed and an event that would
//! exceed one is refused and counted, never grown into. `tests/no_alloc.rs` checks this with a
//! counting global allocator. The feed loaders (`feed`) allocate freely: they run before the loop.
//!
//! Layout:
//! - `msg`: the feed and order wire formats.
//! - `feed`: loaders of Databento MBO, LOBSTER and Binance depth captures, and a synthetic feed.
//! - `idmap`: the fixed-capacity order-id map.
//! - `book`: the L3 order book with its L2 view and queue positions.
//! - `strategy`: the strategy trait, a market maker and a book-imbalance taker.
//! - `risk`: O(1) pre-trade checks and the kill switch.
//! - `venue`: the simulated venue (order gateway, matching, queue position).
//! - `ring`: the SPSC ring and backoff.
//! - `clock`: the TSC clock; `latency`: HDR histograms; `pin`: core pinning.
//! - `engine`: the fused and split loops and the pacing load generator.
//! - `cmd`: `tickflow hft bench` and `tickflow hft replay`.

pub mod book;
pub mod clock;
pub mod cmd;
pub mod engine;
pub mod feed;
pub mod idmap;
pub mod latency;
pub mod msg;
pub mod pin;
pub mod ring;
pub mod risk;
pub mod strategy;
pub mod venue;

pub use crate::book::{BookCapacity, BookError, Effect, LevelView, OrderBook};
pub use crate::engine::{Engine, EngineConfig, Mode, RunReport};
pub use crate::feed::{Feed, FeedError};
pub use crate::msg::{Action, FeedMsg, OrderKind, OrderMsg};
