//! SQL over live streams.
//!
//! Every named stream of a running pipeline is a table, and DataFusion answers two kinds of
//! query over them:
//!
//! - **Snapshot queries** over each stream's retained recent history (`trades`, `bars`, ...)
//!   and the current-state tables (`latest_quotes`, `latest_positions`, ...: the last row per
//!   instrument), answered in milliseconds.
//! - **Continuous queries**, planned once and executed as the watermark moves. Event-time
//!   windows come from three table functions:
//!
//!   ```sql
//!   SELECT symbol, window_start, window_end, count(*) AS trades,
//!          first_value(price ORDER BY ts_event) AS open, max(price) AS high,
//!          min(price) AS low, last_value(price ORDER BY ts_event) AS close, sum(size) AS volume
//!   FROM tumble('trades', 'ts_event', INTERVAL '1 minute')
//!   GROUP BY symbol, window_start, window_end
//!   ```
//!
//!   `tumble(stream, time_column, size)`, `hop(stream, time_column, slide, size)` (size a
//!   multiple of slide) and `session(stream, time_column, gap [, key_column, ...])` each add
//!   `window_start` and `window_end` columns. A window's rows are handed to the query when the
//!   watermark passes its end plus the allowed lateness; rows that come later are counted and
//!   reported. Group by `window_start` to get one result per window: one execution may close
//!   several windows at once.
//!
//! Streams arrive through the [`Hub`]; [`SqlEngine`] runs the queries; [`flight`] serves them
//! over Arrow Flight SQL.

pub mod checkpoint;
pub mod continuous;
pub mod engine;
pub mod error;
pub mod flight;
pub mod fold;
pub mod hub;
pub mod output;
pub mod tables;
pub mod window;

pub use checkpoint::QueryHooks;
pub use continuous::{ContinuousQuery, QueryDef, QueryStats};
pub use engine::{SqlEngine, Started};
pub use error::SqlError;
pub use hub::{Event, Hub, Retention, StreamInfo};
pub use output::QueryOutput;
