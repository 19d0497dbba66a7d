//! The error type of `tickflow-sources`.

use std::path::PathBuf;

/// Errors opening or planning sources. Bad rows inside a file are not errors: they are
/// reported as rejects and reading goes on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: a source configuration that cannot work.
    #[error("source configuration: {0}")]
    Config(String),
    /// Bad input: a path that does not exist or cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Bad input: a file whose format is not recognised or whose container is broken.
    #[error("{path}: {reason}")]
    Format {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Internal: an instrument the plan did not declare.
    #[error("instrument {venue}:{symbol} was not declared when the job was planned")]
    Undeclared {
        /// Venue.
        venue: String,
        /// Symbol.
        symbol: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    /// What is wrong, without the path (for a message that names the file already).
    pub(crate) fn reason(self) -> String {
        match self {
            Error::Io { source, .. } => source.to_string(),
            Error::Format { reason, .. } => reason,
            e => e.to_string(),
        }
    }
    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Result with the crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
