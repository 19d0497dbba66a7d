//! The models crate's error type.

/// What can go wrong training, saving, loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model directory that cannot be used: missing, unreadable, or not matching its metadata.
    #[error("model {path}: {reason}")]
    Model {
        /// The model directory or file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The model's feature spec does not match the features it is given.
    #[error("model {path} does not fit this pipeline's features: {reason}")]
    Mismatch {
        /// The model directory.
        path: String,
        /// What does not match.
        reason: String,
    },
    /// Training data that cannot be used.
    #[error("training data: {0}")]
    Data(String),
    /// A bad setting (model kind, device, hyper-parameter).
    #[error("{0}")]
    Config(String),
    /// An error of candle.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// An I/O error, with the path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
