//! Source configuration, as written in a pipeline file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tickflow_core::{Duration, Quantity, Timestamp};

/// A source of a pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SourceConfig {
    /// The built-in deterministic synthetic market.
    Synthetic(SyntheticConfig),
    /// A Kafka topic (see [`crate::kafka`]).
    Kafka(crate::kafka::KafkaSourceConfig),
    /// Recorded data: a file or a directory of files.
    Replay {
        /// File or directory.
        path: PathBuf,
        /// Format, or `Auto` to detect it from each file's name.
        format: ReplayFormat,
        /// The size given to each side of a quote from a file that records none (TrueFX).
        /// Without it such a file is not read: under a directory it is left out, named alone
        /// it is refused, so that no fill is simulated against a size nobody recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quote_size: Option<Quantity>,
    },
}

/// Recorded formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayFormat {
    /// Detect from the file name.
    Auto,
    /// Lean (AlgoSeek) tick trade or quote zips.
    Lean,
    /// Binance websocket captures (`<recv ns> <json>` lines, gzip).
    Binance,
    /// Binance futures order-book CSV (depth snapshots and updates).
    #[serde(rename = "binance-depth")]
    BinanceDepth,
    /// Tardis.dev trade, quote or order-book CSV.
    Tardis,
    /// LOBSTER message files.
    Lobster,
    /// Databento DBN (MBO), zstd-compressed or plain.
    Dbn,
    /// Parquet files of trades, quotes or book events (as a Parquet sink writes them).
    Parquet,
    /// TrueFX quotes (bid and ask, no sizes), as TrueFX publishes them or as
    /// `timestamp,bid,ask` named for their currency pair.
    #[serde(rename = "truefx")]
    TrueFx,
}

impl ReplayFormat {
    /// Every format.
    pub const ALL: [Self; 9] = [
        Self::Auto,
        Self::Lean,
        Self::Binance,
        Self::BinanceDepth,
        Self::Tardis,
        Self::Lobster,
        Self::Dbn,
        Self::Parquet,
        Self::TrueFx,
    ];

    /// Names accepted in pipeline files and on the command line, in the order of
    /// [`ReplayFormat::ALL`].
    pub const NAMES: [&'static str; 9] = {
        let mut names = [""; 9];
        let mut i = 0;
        while i < names.len() {
            names[i] = Self::ALL[i].name();
            i += 1;
        }
        names
    };

    /// The name [`ReplayFormat::from_name`] reads.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Lean => "lean",
            Self::Binance => "binance",
            Self::BinanceDepth => "binance-depth",
            Self::Tardis => "tardis",
            Self::Lobster => "lobster",
            Self::Dbn => "dbn",
            Self::Parquet => "parquet",
            Self::TrueFx => "truefx",
        }
    }

    /// Parses a name from [`ReplayFormat::NAMES`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Parameters of the synthetic market. The same parameters and seed give byte-identical output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyntheticConfig {
    /// Number of instruments.
    pub instruments: usize,
    /// Random seed.
    pub seed: u64,
    /// Session start (event time of the open).
    pub start: Timestamp,
    /// Session length.
    pub duration: Duration,
    /// Average events (trades and quotes) per second of event time across the whole market.
    pub events_per_second: f64,
    /// Fraction of events that are quote updates (the rest are trades).
    pub quote_ratio: f64,
    /// Correlation of returns between instruments through the market factor (0..1).
    pub correlation: f64,
    /// Fraction of records deliberately corrupted (duplicates, crossed quotes, zero sizes,
    /// suspicious flags, late arrivals) to exercise validation; 0 for clean data.
    pub fault_rate: f64,
    /// Strength of a planted, learnable signal (0: none, the default). Each instrument carries
    /// a hidden order-flow pressure (mean-reverting over about five minutes) that skews its
    /// displayed bid and ask sizes and drifts its price: at strength 1 the drift over a minute
    /// equals one minute's idiosyncratic volatility per unit of pressure. Models can learn it from
    /// the book imbalance; at 0 the market has nothing to learn and the output is unchanged.
    pub signal: f64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            instruments: 8,
            seed: 42,
            // 09:30 New York on a Tuesday.
            start: Timestamp(1_704_205_800_000_000_000),
            duration: Duration::from_secs(6 * 3600 + 1800),
            events_per_second: 100.0,
            quote_ratio: 0.6,
            correlation: 0.5,
            fault_rate: 0.0,
            signal: 0.0,
        }
    }
}

impl SyntheticConfig {
    /// Every problem at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errs = Vec::new();
        if self.instruments == 0 || self.instruments > 10_000 {
            errs.push(format!(
                "instruments must be between 1 and 10000, got {}",
                self.instruments
            ));
        }
        if !(self.events_per_second.is_finite() && self.events_per_second > 0.0) {
            errs.push(format!(
                "events_per_second must be a positive number, got {}",
                self.events_per_second
            ));
        }
        if self.duration.nanos() <= 0 {
            errs.push("duration must be positive".into());
        }
        for (name, v) in [
            ("quote_ratio", self.quote_ratio),
            ("correlation", self.correlation),
            ("fault_rate", self.fault_rate),
            ("signal", self.signal),
        ] {
            if !(0.0..=1.0).contains(&v) {
                errs.push(format!("{name} must be between 0 and 1, got {v}"));
            }
        }
        if self.quote_ratio >= 1.0 {
            errs.push("quote_ratio must be below 1 (a market needs trades)".into());
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_has_its_name_and_is_found_by_it() {
        assert_eq!(ReplayFormat::NAMES[3], "binance-depth");
        for f in ReplayFormat::ALL {
            assert_eq!(ReplayFormat::from_name(f.name()), Some(f));
            // Pipeline files name formats the way serde writes them.
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.name()));
        }
        assert_eq!(ReplayFormat::from_name("csv"), None);
    }
}
