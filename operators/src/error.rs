//! The error type of `tickflow-operators`.

/// Errors of operators: bad configuration or state that cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: an operator parameter that cannot work.
    #[error("operator {operator}: {reason}")]
    Config {
        /// Operator kind.
        operator: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Bad input: a snapshot that does not decode into this operator's state.
    #[error("cannot restore {operator} from snapshot: {source}")]
    Restore {
        /// Operator kind.
        operator: &'static str,
        /// Decoding error.
        source: serde_json::Error,
    },
    /// Bad input: the snapshots of a job with another number of workers that cannot be
    /// spread over this job's workers.
    #[error("cannot restore {operator} from the snapshots of {workers} workers: {reason}")]
    Rescale {
        /// Operator kind.
        operator: &'static str,
        /// How many workers took the snapshots.
        workers: usize,
        /// What is wrong.
        reason: String,
    },
    /// Internal: state that does not encode.
    #[error("cannot snapshot {operator}: {source}")]
    Snapshot {
        /// Operator kind.
        operator: &'static str,
        /// Encoding error.
        source: serde_json::Error,
    },
}

/// Result with the crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
