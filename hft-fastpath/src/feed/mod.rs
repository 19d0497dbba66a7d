//! Feed loaders: recorded order-by-order files, and a seeded synthetic L3 feed, turned into
//! [`FeedMsg`]s at start-up (this is not the hot path: files are read and parsed before the
//! loop starts; the loop then decodes the fixed-size frames).
//!
//! Formats, detected from the file name:
//! - Databento DBN market-by-order (`*.dbn`, `*.dbn.zst`): [`dbn`], a decoder of the raw
//!   56-byte MBO records written for this crate.
//! - LOBSTER message files (`*_message_*.csv`): [`lobster`].
//! - Binance websocket captures (`*.gz`, `<receive ns> <json>` lines): [`binance`], whose
//!   `@depth` diffs become price-level messages and `@trade` messages trades.
//!
//! Layout:
//! - `dbn`, `lobster`, `binance`: the loaders.
//! - `synthetic`: the seeded synthetic L3 feed.

pub mod binance;
pub mod dbn;
pub mod lobster;
pub mod synthetic;

use std::path::{Path, PathBuf};

use tickflow_core::Price;

use crate::msg::{Action, FeedMsg};

/// The file names [`load`] reads, as errors list them.
const FEED_NAMES: &str =
    "*.dbn[.zst] (Databento MBO), *_message_*.csv (LOBSTER) or *.gz (Binance capture)";

/// A feed that could not be loaded: which file, where, and why.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file's name says no format this crate reads.
    #[error("{0}: unknown feed format (expected {FEED_NAMES})")]
    UnknownFormat(PathBuf),
    /// A directory where one feed file is wanted.
    #[error("{0}: a directory; the fast path replays one feed file ({FEED_NAMES}){1}")]
    Directory(PathBuf, String),
    /// A record could not be parsed.
    #[error("{path}: {at}: {reason}")]
    Bad {
        /// File.
        path: PathBuf,
        /// Line or record number.
        at: String,
        /// What is wrong.
        reason: String,
    },
}

/// A loaded feed: the messages of one instrument, in file order.
#[derive(Clone, Debug)]
pub struct Feed {
    /// Name of the instrument (symbol or venue id).
    pub instrument: String,
    /// The messages.
    pub msgs: Vec<FeedMsg>,
    /// The price grid: the largest increment that divides every price seen.
    pub tick: Price,
    /// Records read but not turned into messages (other instruments, control messages), for
    /// the load report.
    pub skipped: u64,
    /// Places where the venue's update ids show updates missing (the book is cleared at each
    /// and rebuilt from the updates after it), for the load report.
    pub gaps: u64,
    /// Places where the venue's trade ids jump (trades missing), for the load report.
    pub trade_gaps: u64,
}

impl Feed {
    /// Builds a feed and infers its tick.
    pub fn new(instrument: String, msgs: Vec<FeedMsg>, skipped: u64) -> Self {
        let tick = infer_tick(&msgs);
        Self {
            instrument,
            msgs,
            tick,
            skipped,
            gaps: 0,
            trade_gaps: 0,
        }
    }
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs()
}

/// The largest increment dividing every positive book price (1e-9 when there is none).
pub fn infer_tick(msgs: &[FeedMsg]) -> Price {
    let mut g = 0i64;
    for m in msgs {
        if m.price.raw() > 0 && matches!(m.action, Action::Add | Action::Modify | Action::Level) {
            g = gcd(g, m.price.raw());
            if g == 1 {
                break;
            }
        }
    }
    Price::from_raw(g.max(1))
}

/// The recorded feed formats, told by file name.
#[derive(Clone, Copy)]
enum FeedKind {
    Dbn,
    Lobster,
    Binance,
}

fn kind_of(path: &Path) -> Option<FeedKind> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if name.ends_with(".dbn") || name.ends_with(".dbn.zst") {
        Some(FeedKind::Dbn)
    } else if name.contains("_message_") && name.ends_with(".csv") {
        Some(FeedKind::Lobster)
    } else if name.ends_with(".gz") {
        Some(FeedKind::Binance)
    } else {
        None
    }
}

/// Loads a recorded feed, choosing the reader from the file name.
pub fn load(path: &Path) -> Result<Feed, FeedError> {
    match kind_of(path) {
        Some(FeedKind::Dbn) => dbn::load(path),
        Some(FeedKind::Lobster) => lobster::load(path),
        Some(FeedKind::Binance) => binance::load(path),
        None if path.is_dir() => Err(FeedError::Directory(path.to_path_buf(), feeds_in(path))),
        None => Err(FeedError::UnknownFormat(path.to_path_buf())),
    }
}

/// The feed files directly in `dir`, as a hint: ", such as NAME (and N more)", or nothing.
fn feeds_in(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && kind_of(p).is_some())
        .map(|p| p.display().to_string())
        .collect();
    names.sort();
    match names.len() {
        0 => String::new(),
        1 => format!(", such as {}", names[0]),
        n => format!(", such as {} (and {} more)", names[0], n - 1),
    }
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, FeedError> {
    std::fs::read(path).map_err(|source| FeedError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn bad(path: &Path, at: impl std::fmt::Display, reason: impl Into<String>) -> FeedError {
    FeedError::Bad {
        path: path.to_path_buf(),
        at: at.to_string(),
        reason: reason.into(),
    }
}
