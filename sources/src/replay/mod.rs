//! Readers of recorded market data, and format detection.
//!
//! Layout:
//! - `lean`: Lean (AlgoSeek) tick trade and quote zips, and Lean minute bars for comparison.
//! - `binance`: Binance websocket captures (trade, bookTicker, depth).
//! - `binance_depth`: Binance futures order-book CSV (depth snapshots and updates).
//! - `tardis`: Tardis.dev trade, quote and order-book CSV.
//! - `lobster`: LOBSTER message files.
//! - `dbn`: Databento DBN market-by-order.
//! - `parquet`: Parquet files of trades, quotes or book events (as a Parquet sink writes them).
//! - `text`: line and field helpers; `tz`: New York time.

pub mod binance;
pub mod binance_depth;
pub mod dbn;
pub mod lean;
pub mod lobster;
pub mod parquet;
pub mod tardis;
pub mod text;
pub mod truefx;
pub mod tz;

use std::io::Read;
use std::path::{Path, PathBuf};

use tickflow_core::depth::Gap;
use tickflow_core::{
    BookAction, BookEvent, InstrumentId, InstrumentRegistry, InstrumentSpec, MarketEvent, Price,
    Quantity, RejectReason, SeqNo, Side, Timestamp,
};

use crate::PartReader;
use crate::config::ReplayFormat;
use crate::error::{Error, Result};

/// Detects the format of a file from its name and first bytes; `Err` says why it is not one.
pub fn detect(path: &Path) -> Result<ReplayFormat, String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if name.ends_with(".dbn") || name.ends_with(".dbn.zst") {
        return Ok(ReplayFormat::Dbn);
    }
    if name.ends_with(".parquet") {
        return parquet::sniff(path).map(|_| ReplayFormat::Parquet);
    }
    if name.ends_with(".zip") {
        return if lean::is_tick_zip(path) {
            Ok(ReplayFormat::Lean)
        } else {
            Err("a zip that is not a Lean tick file (Lean minute, hour and daily bars are not tick data)".into())
        };
    }
    if name.ends_with(".csv") || name.ends_with(".csv.gz") {
        if name.contains("_orderbook_") {
            return Err(
                "a LOBSTER orderbook file whose _message_ file is not read here (it gives that file's quotes)".into(),
            );
        }
        if lobster::parse_name(path).is_ok() {
            return Ok(ReplayFormat::Lobster);
        }
        let header = first_line(path)?;
        return if tardis::sniff(&header) {
            Ok(ReplayFormat::Tardis)
        } else if binance_depth::sniff(&header) {
            Ok(ReplayFormat::BinanceDepth)
        } else if truefx::detect(path, &header)? {
            Ok(ReplayFormat::TrueFx)
        } else {
            Err(format!(
                "a CSV file in no supported layout ({})",
                first_line_shown(&header)
            ))
        };
    }
    if name.ends_with(".gz") {
        return if binance::parse_name(path).is_ok() {
            Ok(ReplayFormat::Binance)
        } else {
            Err("a gzip file not named like a Binance capture".into())
        };
    }
    Err("not a supported market-data file".into())
}

/// The first line of a file (inflated when it is gzip), at most its first 512 bytes.
fn first_line(path: &Path) -> Result<Vec<u8>, String> {
    let mut head = Vec::with_capacity(512);
    text::stream_file(path)
        .map_err(Error::reason)?
        .reader
        .take(512)
        .read_to_end(&mut head)
        .map_err(|e| e.to_string())?;
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(first.strip_suffix(b"\r").unwrap_or(first).to_vec())
}

/// A first line as an error shows it: quoted, cut at 80 characters.
fn first_line_shown(line: &[u8]) -> String {
    if line.iter().all(u8::is_ascii_whitespace) {
        return "its first line is empty".into();
    }
    let text = String::from_utf8_lossy(line);
    let mut shown: String = text.chars().take(80).collect();
    if text.chars().nth(80).is_some() {
        shown.push('…');
    }
    format!("its first line: `{shown}`")
}

/// A file under a replayed directory that is not read, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeftOut {
    /// The file.
    pub path: PathBuf,
    /// Why it is not read (not market data in a supported format, or not of the format asked
    /// for).
    pub why: String,
}

/// What a replayed path holds: the files to read, and the files of a directory left out.
#[derive(Clone, Debug, Default)]
pub struct Expanded {
    /// `(file, format)` pairs, sorted by path.
    pub files: Vec<(PathBuf, ReplayFormat)>,
    /// The files of a directory that are not read, sorted by path.
    pub left_out: Vec<LeftOut>,
}

/// Expands a path into `(file, format)` pairs, sorted by path. A directory is walked
/// recursively and files that are not market data (or, with a format given, not of that
/// format) are left out, each with why; a file named directly must be readable in the given
/// (or detected) format.
pub fn expand(path: &Path, format: ReplayFormat) -> Result<Expanded> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        let fmt = match format {
            ReplayFormat::Auto => {
                detect(path).map_err(|why| Error::format(path, format!("cannot replay {why}")))?
            }
            f => f,
        };
        return Ok(Expanded {
            files: vec![(path.to_path_buf(), fmt)],
            left_out: Vec::new(),
        });
    }
    let mut files = Vec::new();
    walk(path, &mut files)?;
    files.sort();
    let mut out = Expanded::default();
    for file in files {
        match (detect(&file), format) {
            (Ok(found), ReplayFormat::Auto) => out.files.push((file, found)),
            (Ok(found), wanted) if found == wanted => out.files.push((file, found)),
            (Ok(found), wanted) => out.left_out.push(LeftOut {
                path: file,
                why: format!(
                    "{} data, not {} as the source asks",
                    found.name(),
                    wanted.name()
                ),
            }),
            (Err(why), _) => out.left_out.push(LeftOut { path: file, why }),
        }
    }
    // A LOBSTER orderbook file is read with its message file, as its quotes: it is left out
    // only when that file is not read.
    let companions: Vec<PathBuf> = out
        .files
        .iter()
        .filter(|(_, f)| *f == ReplayFormat::Lobster)
        .filter_map(|(file, _)| lobster::companion(file))
        .collect();
    out.left_out.retain(|l| !companions.contains(&l.path));
    if out.files.is_empty() {
        let why = if out.left_out.is_empty() {
            "it holds no files".to_string()
        } else {
            format!("left out: {}", describe_left_out(&out.left_out).join("; "))
        };
        return Err(Error::format(
            path,
            format!(
                "no market-data files found here (Lean tick zips, Binance .gz captures or depth CSV, Tardis, LOBSTER or TrueFX CSV or .csv.gz, DBN, Parquet of trades, quotes or book events); {why}"
            ),
        ));
    }
    Ok(out)
}

/// Lines that say which files were left out, one per reason: the reason, how many files, and
/// the first of them.
pub fn describe_left_out(left_out: &[LeftOut]) -> Vec<String> {
    let mut by_why: Vec<(&str, &Path, usize)> = Vec::new();
    for l in left_out {
        match by_why.iter_mut().find(|(why, _, _)| *why == l.why) {
            Some((_, _, n)) => *n += 1,
            None => by_why.push((&l.why, &l.path, 1)),
        }
    }
    by_why
        .into_iter()
        .map(|(why, first, n)| match n {
            1 => format!("{}: {why}", first.display()),
            n => format!("{} and {} more: {why}", first.display(), n - 1),
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Instruments a file declares.
pub fn instruments(path: &Path, format: ReplayFormat) -> Result<Vec<InstrumentSpec>> {
    match format {
        ReplayFormat::Lean => lean::instruments(path),
        ReplayFormat::Binance => binance::instruments(path),
        ReplayFormat::BinanceDepth => binance_depth::instruments(path),
        ReplayFormat::Tardis => tardis::instruments(path),
        ReplayFormat::Lobster => lobster::instruments(path),
        ReplayFormat::Dbn => dbn::instruments(path),
        ReplayFormat::Parquet => parquet::instruments(path),
        ReplayFormat::TrueFx => truefx::instruments(path),
        ReplayFormat::Auto => {
            instruments(path, detect(path).map_err(|why| Error::format(path, why))?)
        }
    }
}

/// Opens a file for reading; `quote_size` is the size given to quotes of a format that records
/// none (TrueFX), which is refused without it.
pub fn open(
    path: &Path,
    format: ReplayFormat,
    source: u16,
    registry: &InstrumentRegistry,
    quote_size: Option<Quantity>,
) -> Result<Box<dyn PartReader>> {
    Ok(match format {
        ReplayFormat::Lean => Box::new(lean::LeanReader::open(path, source, registry)?),
        ReplayFormat::Binance => Box::new(binance::BinanceReader::open(path, source, registry)?),
        ReplayFormat::BinanceDepth => Box::new(binance_depth::BinanceDepthReader::open(
            path, source, registry,
        )?),
        ReplayFormat::Tardis => Box::new(tardis::TardisReader::open(path, source, registry)?),
        ReplayFormat::Lobster => Box::new(lobster::LobsterReader::open(path, source, registry)?),
        ReplayFormat::Dbn => Box::new(dbn::DbnReader::open(path, source, registry)?),
        ReplayFormat::Parquet => Box::new(parquet::ParquetReader::open(path, source, registry)?),
        ReplayFormat::TrueFx => {
            let size = quote_size.ok_or_else(|| Error::format(path, truefx::NO_SIZES))?;
            Box::new(truefx::TrueFxReader::open(path, source, registry, size)?)
        }
        ReplayFormat::Auto => open(
            path,
            detect(path).map_err(|why| Error::format(path, why))?,
            source,
            registry,
            quote_size,
        )?,
    })
}

/// A price-level update (no order id): the level's new size, `Cancel` when it is zero.
pub(crate) fn level_update(
    instrument: InstrumentId,
    times: (Timestamp, Timestamp),
    side: Side,
    price: Price,
    size: Quantity,
    seq: SeqNo,
) -> MarketEvent {
    let action = if size.is_zero() {
        BookAction::Cancel
    } else {
        BookAction::Modify
    };
    book_event(instrument, times, (action, side), price, size, seq)
}

/// The whole book of `instrument` cleared (a snapshot follows).
pub(crate) fn book_clear(
    instrument: InstrumentId,
    times: (Timestamp, Timestamp),
    seq: SeqNo,
) -> MarketEvent {
    let what = (BookAction::Clear, Side::None);
    book_event(instrument, times, what, Price::ZERO, Quantity::ZERO, seq)
}

fn book_event(
    instrument: InstrumentId,
    (ts_event, ts_recv): (Timestamp, Timestamp),
    (action, side): (BookAction, Side),
    price: Price,
    size: Quantity,
    seq: SeqNo,
) -> MarketEvent {
    MarketEvent::Book(BookEvent {
        instrument,
        ts_event,
        ts_recv,
        action,
        side,
        price,
        size,
        order_id: None,
        suspicious: false,
        seq,
    })
}

/// The reject of a depth diff (last update `last`) that the snapshot before it already holds.
pub(crate) fn held(last: u64, snapshot: u64) -> text::RowError {
    (
        RejectReason::Duplicate,
        format!(
            "depth update {last} is already in the depth snapshot before it (lastUpdateId \
             {snapshot})"
        ),
    )
}

/// The reject that marks updates missing before a depth diff: the book is cleared before the
/// diff's levels are set (Binance: a local book that missed updates is to be dropped).
pub(crate) fn depth_gap(gap: &Gap) -> text::RowError {
    (
        RejectReason::Gap,
        format!("depth gap: {gap}; the book is cleared and holds the levels updated from here on"),
    )
}
