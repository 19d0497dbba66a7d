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

/// An error and its causes on one line, `outer: cause: root cause`. A cause whose text the
/// error before it already ends with (a message written as `"{path}: {source}"`) is not
/// repeated; one that says more (a transport error whose reason is only in its source) is.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut last = text.clone();
    let mut cause = error.source();
    while let Some(e) = cause {
        let line = e.to_string();
        if !line.is_empty() && !last.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        last = line;
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {source}")]
    struct Io {
        path: String,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("transport error")]
    struct Transport(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("cannot run: {0}")]
    struct Outer(#[source] Transport);

    #[test]
    fn causes_are_described_once_each() {
        let io = Io {
            path: "out/x".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
        };
        assert_eq!(describe(&io), "out/x: no such directory");
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = Outer(Transport(refused));
        assert_eq!(
            describe(&outer),
            "cannot run: transport error: refused",
            "a cause the message does not carry is added"
        );
    }
}
