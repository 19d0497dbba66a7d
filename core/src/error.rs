//! The error type of `tickflow-core`.

use crate::fixed::ParseFixedError;

/// Errors raised by domain types, grouped by whose fault they are.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: text that is not a valid price, quantity or time.
    #[error(transparent)]
    Parse(#[from] ParseFixedError),
    /// Bad input: a timestamp or duration that does not parse.
    #[error("invalid time {text:?}: {reason}")]
    Time {
        /// The offending text.
        text: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Bad input: a value outside the representable range.
    #[error("{what} out of range")]
    OutOfRange {
        /// What overflowed.
        what: &'static str,
    },
    /// Bad input: an instrument id that the registry does not hold.
    #[error("unknown instrument id {0}")]
    UnknownInstrument(u32),
    /// Bad input: an Arrow batch whose columns do not match the record schema.
    #[error("arrow batch does not match the {record} schema: {reason}")]
    Schema {
        /// The record type.
        record: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// Internal: Arrow refused a batch built from valid records.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// Result with the crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
