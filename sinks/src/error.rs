//! The error type of `tickflow-sinks`.

use std::path::PathBuf;

/// Errors writing outputs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unavailable dependency: a file or directory that cannot be written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Unavailable dependency: Kafka brokers that cannot be reached, a topic that cannot be
    /// created, messages that could not be delivered.
    #[error("kafka topic {topic}: {reason}")]
    Kafka {
        /// The topic.
        topic: String,
        /// What failed.
        reason: String,
    },
    /// Internal: a batch that Arrow or Parquet refused.
    #[error("{path}: {reason}")]
    Encode {
        /// The path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// Result with the crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
