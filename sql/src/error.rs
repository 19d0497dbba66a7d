//! Errors of the SQL layer. DataFusion's own messages (with the position in the query where
//! the parser gives one) are passed through unchanged.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;

/// What went wrong with a query or a stream table.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The query does not parse or plan; the message is DataFusion's or names what is wrong.
    #[error("{0}")]
    Plan(String),
    /// The query failed on the data it read (a division by zero, a value that does not cast,
    /// an overflow): the query's doing, not the server's.
    #[error("query failed: {0}")]
    Query(String),
    /// The query failed while it ran.
    #[error("query failed: {0}")]
    Execution(String),
    /// A query sink could not be written.
    #[error("sink {sink}: {reason}")]
    Sink { sink: String, reason: String },
    /// A network or server problem (Flight SQL).
    #[error("{0}")]
    Transport(String),
}

impl SqlError {
    pub(crate) fn plan(msg: impl Into<String>) -> Self {
        Self::Plan(msg.into())
    }
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        // Unwrap the context layers DataFusion adds so the first line says what is wrong.
        match e.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(..)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(..) => Self::Plan(e.strip_backtrace()),
            DataFusionError::ArrowError(root, _)
                if matches!(
                    **root,
                    ArrowError::DivideByZero
                        | ArrowError::CastError(_)
                        | ArrowError::ArithmeticOverflow(_)
                        | ArrowError::ComputeError(_)
                        | ArrowError::InvalidArgumentError(_)
                        | ArrowError::ParseError(_)
                ) =>
            {
                Self::Query(e.strip_backtrace())
            }
            _ => Self::Execution(e.strip_backtrace()),
        }
    }
}

impl From<ArrowError> for SqlError {
    fn from(e: ArrowError) -> Self {
        Self::Execution(e.to_string())
    }
}
