//! Market-data inputs. Out flow [`SourceItem`]s: market events ([`MarketEvent`]) in event-time
//! order per part, or rejects for rows that could not be read (file, line, reason).
//!
//! A job's sources are planned once ([`plan`]): every source declares its instruments (so the
//! [`InstrumentRegistry`] is built before any worker starts, with ids that do not depend on the
//! number of workers) and splits into [`Part`]s — a file, or one instrument of the synthetic
//! market. Each worker opens its share of the parts and merges them in event-time order
//! ([`Merger`]). [`Pacer`] replays at a multiple of real time.
//!
//! Layout:
//! - `config`: [`SourceConfig`] and its validation.
//! - `rng`: the deterministic random number generator of the synthetic market.
//! - `synthetic`: the synthetic market.
//! - `replay`: readers of recorded formats (`lean`, `binance`, `tardis`, `lobster`, `dbn`) and format detection.
//! - `merge`: k-way event-time merge of parts.
//! - `pacing`: real-time replay.
//! - `error`: the crate's [`Error`].

pub mod config;
pub mod error;
pub mod kafka;
pub mod merge;
pub mod pacing;
pub mod replay;
pub mod rng;
pub mod synthetic;

use std::sync::Arc;

use tickflow_core::{InstrumentRegistry, InstrumentSpec, MarketEvent, Reject, Timestamp};

pub use crate::config::{ReplayFormat, SourceConfig, SyntheticConfig};
pub use crate::error::{Error, Result};
pub use crate::merge::Merger;
pub use crate::pacing::Pacer;
pub use crate::replay::{LeftOut, describe_left_out};

/// The recorded market data directory for tests and benchmarks: `$TICKFLOW_SAMPLE_DATA`. When
/// it is not set, says that the caller is skipped (on stderr) and returns `None`.
pub fn sample_data() -> Option<std::path::PathBuf> {
    match std::env::var_os("TICKFLOW_SAMPLE_DATA") {
        Some(p) => Some(std::path::PathBuf::from(p)),
        None => {
            eprintln!(
                "SKIPPED: TICKFLOW_SAMPLE_DATA is not set (point it at shared/data to run this test)"
            );
            None
        }
    }
}

/// What a part reader yields.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceItem {
    /// A record, as read (not yet validated).
    Event(MarketEvent),
    /// A row that could not be read, or a gap where records are missing
    /// ([`RejectReason::Gap`](tickflow_core::RejectReason::Gap)), with where and why.
    Bad(Reject),
}

/// An open part: yields items until it is exhausted.
pub trait PartReader: Send {
    /// The next item, or `None` at the end.
    fn next_item(&mut self) -> Option<SourceItem>;
}

/// One independently readable piece of a source.
#[derive(Clone, Debug)]
pub enum Part {
    /// One instrument of the synthetic market.
    Synthetic {
        /// Market parameters.
        config: SyntheticConfig,
        /// Which instrument of the market.
        index: usize,
        /// Part index (for sequence numbers).
        source: u16,
    },
    /// One partition of a Kafka topic, between two offsets.
    Kafka {
        /// The source.
        config: kafka::KafkaSourceConfig,
        /// The partition and its offsets.
        range: kafka::PartitionRange,
        /// Part index (for sequence numbers).
        source: u16,
        /// The next offset to read: how far the reader got, shared with the plan so that only
        /// what was read is committed.
        read_to: Arc<std::sync::atomic::AtomicI64>,
    },
    /// One recorded file.
    File {
        /// Path of the file.
        path: std::path::PathBuf,
        /// Its format.
        format: ReplayFormat,
        /// Part index (for sequence numbers).
        source: u16,
        /// The size given to quotes of a format that records none.
        quote_size: Option<tickflow_core::Quantity>,
    },
}

impl Part {
    /// Instruments this part produces.
    pub fn instruments(&self) -> Result<Vec<InstrumentSpec>> {
        match self {
            Part::Synthetic { config, index, .. } => {
                Ok(vec![synthetic::instrument_spec(config, *index)])
            }
            Part::File { path, format, .. } => replay::instruments(path, *format),
            Part::Kafka { config, range, .. } => {
                kafka::instruments(config, std::slice::from_ref(range))
            }
        }
    }

    /// Opens the part for reading.
    pub fn open(&self, registry: &InstrumentRegistry) -> Result<Box<dyn PartReader>> {
        match self {
            Part::Synthetic {
                config,
                index,
                source,
            } => Ok(Box::new(synthetic::InstrumentStream::new(
                config, *index, *source, registry,
            )?)),
            Part::File {
                path,
                format,
                source,
                quote_size,
            } => replay::open(path, *format, *source, registry, *quote_size),
            Part::Kafka {
                config,
                range,
                source,
                read_to,
            } => Ok(Box::new(kafka::PartitionReader::open(
                config,
                range,
                *source,
                Arc::new(registry.clone()),
                read_to.clone(),
            )?)),
        }
    }

    /// A short name for progress and error messages.
    pub fn name(&self) -> String {
        match self {
            Part::Synthetic { index, .. } => format!("synthetic[{index}]"),
            Part::File { path, .. } => path.display().to_string(),
            Part::Kafka { config, range, .. } => {
                format!("kafka:{}/{}", config.topic, range.partition)
            }
        }
    }

    /// The part as reject messages name it: a file's records are numbered by line
    /// ([`SeqNo::at_line`](tickflow_core::SeqNo::at_line)), the others' by offset or count.
    pub fn origin(&self) -> tickflow_core::Origin {
        tickflow_core::Origin {
            name: self.name(),
            lines: matches!(self, Part::File { .. }),
        }
    }

    /// A lower bound of the part's event times, where its name gives one: a Lean tick file
    /// holds one New York trading day, which starts after midnight UTC of its date.
    pub fn earliest(&self) -> Option<Timestamp> {
        // Planned parts carry their detected format (`plan` resolves `auto`).
        let Part::File {
            path,
            format: ReplayFormat::Lean,
            ..
        } = self
        else {
            return None;
        };
        let (_, (y, m, d), _) = replay::lean::parse_name(path).ok()?;
        Timestamp::from_date(y, m, d)
    }
}

/// A part opened on its first read, on whichever thread reads it (a reader thread, not the
/// worker that planned it). A part that cannot be opened yields one reject saying why, then
/// ends; the other parts go on.
pub struct LazyPart {
    part: Part,
    registry: Arc<InstrumentRegistry>,
    index: usize,
    state: LazyState,
}

enum LazyState {
    Closed,
    Open(Box<dyn PartReader>),
    Done,
}

impl LazyPart {
    /// Part number `index` of the plan, not yet opened.
    pub fn new(part: Part, index: usize, registry: Arc<InstrumentRegistry>) -> Self {
        Self {
            part,
            registry,
            index,
            state: LazyState::Closed,
        }
    }
}

impl PartReader for LazyPart {
    fn next_item(&mut self) -> Option<SourceItem> {
        loop {
            match &mut self.state {
                LazyState::Open(r) => return r.next_item(),
                LazyState::Done => return None,
                LazyState::Closed => match self.part.open(&self.registry) {
                    Ok(r) => self.state = LazyState::Open(r),
                    Err(e) => {
                        self.state = LazyState::Done;
                        return Some(SourceItem::Bad(Reject {
                            instrument: None,
                            ts_event: None,
                            reason: tickflow_core::RejectReason::Malformed,
                            detail: format!("cannot open: {e}"),
                            origin: self.part.name(),
                            line: 0,
                            seq: tickflow_core::SeqNo::new(self.index as u16, 0),
                        }));
                    }
                },
            }
        }
    }
}

/// Records, for every Kafka source of `plan`, that the run has processed what it read: the
/// consumer groups' offsets move to where each partition's reader got (its range's end unless
/// reading failed part-way). Call only once every sink has finished without error.
pub fn commit_read(plan: &Plan) -> Result<()> {
    commit_offsets(
        plan,
        plan.parts
            .iter()
            .enumerate()
            .filter_map(|(i, part)| match part {
                Part::Kafka { read_to, .. } => {
                    Some((i, read_to.load(std::sync::atomic::Ordering::Acquire)))
                }
                _ => None,
            }),
    )
}

/// Commits, for the Kafka parts of `plan` named by index, the offset to go on from: every
/// record before it has been processed.
pub fn commit_offsets(
    plan: &Plan,
    positions: impl IntoIterator<Item = (usize, i64)>,
) -> Result<()> {
    let mut by_source: Vec<(&kafka::KafkaSourceConfig, Vec<kafka::PartitionRange>)> = Vec::new();
    for (i, next) in positions {
        if let Some(Part::Kafka { config, range, .. }) = plan.parts.get(i) {
            let read = kafka::PartitionRange {
                end: next,
                ..range.clone()
            };
            match by_source.iter_mut().find(|(c, _)| *c == config) {
                Some((_, ranges)) => ranges.push(read),
                None => by_source.push((config, vec![read])),
            }
        }
    }
    for (config, ranges) in by_source {
        kafka::commit(config, &ranges)?;
    }
    Ok(())
}

/// The planned sources of a job: the instrument registry and the parts to read.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Every instrument any part produces, with deterministic ids.
    pub registry: InstrumentRegistry,
    /// Parts, in a fixed order; worker `w` of `n` reads parts `i` with `i % n == w`.
    pub parts: Vec<Part>,
    /// Files under replayed directories that are not read, and why.
    pub left_out: Vec<LeftOut>,
}

impl Plan {
    /// Whether the job follows Kafka topics without end (a live job).
    pub fn live(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Kafka { config, .. } if config.follow))
    }
}

/// Plans sources: expands directories, detects formats, declares instruments. Each part gets
/// its own index, which its records carry in their [`SeqNo`](tickflow_core::SeqNo).
pub fn plan(sources: &[SourceConfig]) -> Result<Plan> {
    let following = sources
        .iter()
        .filter(|s| matches!(s, SourceConfig::Kafka(k) if k.follow))
        .count();
    if following > 0 && following < sources.len() {
        return Err(Error::Config(
            "a Kafka source with follow = true never ends, so it cannot share a job with sources \
             that do (replay, synthetic, Kafka without follow)"
                .into(),
        ));
    }
    let mut parts = Vec::new();
    let mut left_out = Vec::new();
    let part_index = |parts: &Vec<Part>| {
        u16::try_from(parts.len())
            .map_err(|_| Error::Config("more than 65535 files or instruments in one job".into()))
    };
    for source in sources {
        match source {
            SourceConfig::Synthetic(cfg) => {
                cfg.validate()
                    .map_err(|errs| Error::Config(errs.join("; ")))?;
                for index in 0..cfg.instruments {
                    let source = part_index(&parts)?;
                    parts.push(Part::Synthetic {
                        config: cfg.clone(),
                        index,
                        source,
                    });
                }
            }
            SourceConfig::Kafka(config) => {
                for range in kafka::partitions(config)? {
                    let source = part_index(&parts)?;
                    parts.push(Part::Kafka {
                        config: config.clone(),
                        read_to: Arc::new(std::sync::atomic::AtomicI64::new(range.start)),
                        range,
                        source,
                    });
                }
            }
            SourceConfig::Replay {
                path,
                format,
                quote_size,
            } => {
                let expanded = replay::expand(path, *format)?;
                left_out.extend(expanded.left_out);
                let before = parts.len();
                for (file, fmt) in expanded.files {
                    // Quotes without sizes are read only with a size to give them.
                    if fmt == ReplayFormat::TrueFx && quote_size.is_none() {
                        left_out.push(LeftOut {
                            path: file,
                            why: replay::truefx::NO_SIZES.into(),
                        });
                        continue;
                    }
                    let source = part_index(&parts)?;
                    parts.push(Part::File {
                        path: file,
                        format: fmt,
                        source,
                        quote_size: *quote_size,
                    });
                }
                if parts.len() == before {
                    // Every file found holds quotes without sizes.
                    return Err(Error::format(path, replay::truefx::NO_SIZES));
                }
            }
        }
    }
    let mut specs = Vec::new();
    for part in &parts {
        specs.extend(part.instruments()?);
    }
    Ok(Plan {
        registry: InstrumentRegistry::from_specs(specs),
        parts,
        left_out,
    })
}
