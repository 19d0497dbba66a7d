//! What `tickflow hft bench` and `tickflow hft replay` do, as functions returning printable
//! reports (the command line only parses arguments and calls these).

use std::fmt;
use std::path::PathBuf;

use tickflow_core::{Price, Quantity};

use crate::book::BookCapacity;
use crate::engine::{Engine, EngineConfig, JournalKind, Mode, RunReport, format_money};
use crate::feed::synthetic::{SyntheticConfig, generate};
use crate::feed::{self, Feed, FeedError};
use crate::msg::{Action, FeedMsg, encode_all};
use crate::ring::Backoff;
use crate::risk::{RiskConfig, RiskReject};
use crate::strategy::StrategyKind;
use crate::venue::VenueConfig;

/// A feed to run: a recorded file or the synthetic generator.
#[derive(Clone, Debug)]
pub enum FeedSource {
    /// A recorded file (format from its name).
    File(PathBuf),
    /// The synthetic L3 feed with this many messages.
    Synthetic(usize),
}

/// Command errors.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The feed could not be loaded.
    #[error(transparent)]
    Feed(#[from] FeedError),
    /// A bad argument.
    #[error("{0}")]
    Arg(String),
}

fn load(source: &FeedSource) -> Result<Feed, CmdError> {
    let feed = match source {
        FeedSource::File(p) => feed::load(p)?,
        FeedSource::Synthetic(n) => generate(&SyntheticConfig {
            messages: *n,
            ..SyntheticConfig::default()
        }),
    };
    if feed.msgs.is_empty() {
        return Err(CmdError::Arg(format!(
            "the feed {} has no messages",
            feed.instrument
        )));
    }
    Ok(feed)
}

/// A typical order size for a feed: the median size of its adds and level updates.
pub fn typical_size(feed: &Feed) -> Quantity {
    let mut sizes: Vec<i64> = feed
        .msgs
        .iter()
        .filter(|m| matches!(m.action, Action::Add | Action::Level) && m.size.raw() > 0)
        .map(|m| m.size.raw())
        .collect();
    if sizes.is_empty() {
        return Quantity::from_raw(1_000_000_000);
    }
    let mid = sizes.len() / 2;
    let (_, m, _) = sizes.select_nth_unstable(mid);
    Quantity::from_raw((*m).max(1))
}

/// The feed repeated until it has at least `n` messages, a book clear between repetitions and
/// times shifted so they keep increasing.
pub fn repeat(msgs: &[FeedMsg], n: usize) -> Vec<FeedMsg> {
    let Some((first, last)) = msgs.first().zip(msgs.last()) else {
        return Vec::new();
    };
    let span = last.ts_ns.saturating_sub(first.ts_ns) + 1;
    let mut out = Vec::with_capacity(n.max(msgs.len()) + msgs.len());
    let mut k = 0u64;
    while out.len() < n.max(1) {
        if k > 0 {
            out.push(FeedMsg::new(
                last.ts_ns + (k - 1) * span,
                Action::Clear,
                tickflow_core::Side::None,
            ));
        }
        out.extend(msgs.iter().map(|m| FeedMsg {
            ts_ns: m.ts_ns + k * span,
            ..*m
        }));
        k += 1;
    }
    out.truncate(n.max(msgs.len()));
    out
}

/// A loaded feed with the order size and the engine settings a command starts from.
struct Job {
    feed: Feed,
    qty: Quantity,
    config: EngineConfig,
}

/// Loads the feed and builds the strategy (by name) and the engine settings around it: fused,
/// unpaced, no pinning, risk limits for the order size (default: the feed's median add size),
/// a book sized to the feed.
fn prepare(source: &FeedSource, strategy: &str, qty: Option<Quantity>) -> Result<Job, CmdError> {
    let feed = load(source)?;
    let qty = qty.unwrap_or_else(|| typical_size(&feed));
    let strategy = StrategyKind::by_name(strategy, feed.tick, qty).ok_or_else(|| {
        CmdError::Arg(format!(
            "unknown strategy {strategy:?} (expected market-maker or imbalance)"
        ))
    })?;
    let config = EngineConfig {
        mode: Mode::Fused,
        rate: 0,
        pin: None,
        backoff: Backoff::Spin,
        strategy,
        risk: RiskConfig::for_qty(qty),
        venue: VenueConfig::default(),
        book: BookCapacity::for_feed(&feed.msgs),
        warmup: 10_000,
        journal: 1024,
    };
    Ok(Job { feed, qty, config })
}

/// Options of `tickflow hft bench`.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The feed.
    pub source: FeedSource,
    /// Messages to run (the feed is repeated to reach it).
    pub messages: usize,
    /// Offered rate, messages per second (0: unpaced).
    pub rate: u64,
    /// Modes to run.
    pub modes: Vec<Mode>,
    /// Strategy name.
    pub strategy: String,
    /// Pin threads to cores 0 and 1.
    pub pin: bool,
    /// Also search for the highest sustained rate.
    pub find_max: bool,
    /// How the split mode's decision thread waits for updates.
    pub backoff: Backoff,
}

/// Parses `spin` or `yield:N` (spin N empty polls, then yield the core on each further one).
pub fn parse_backoff(text: &str) -> Result<Backoff, CmdError> {
    if text == "spin" {
        return Ok(Backoff::Spin);
    }
    text.strip_prefix("yield:")
        .and_then(|n| n.parse().ok())
        .map(Backoff::SpinThenYield)
        .ok_or_else(|| CmdError::Arg(format!("backoff {text:?}: expected spin or yield:N")))
}

/// One run of the bench.
pub struct BenchRun {
    /// Label.
    pub label: String,
    /// The run.
    pub report: RunReport,
}

/// What the platform takes from a spinning thread: gaps between consecutive clock reads on the
/// pinned core over a while (interrupts, preemption, the hypervisor). Everything a paced run
/// measures sits on top of this.
#[derive(Clone, Copy, Debug)]
pub struct Hiccups {
    /// How long the meter spun.
    pub spun_ns: u64,
    /// Gaps of 2 µs or more.
    pub gaps: u64,
    /// Time lost in those gaps.
    pub lost_ns: u64,
    /// The longest gap.
    pub max_ns: u64,
}

/// Spins on the current thread for `ms` milliseconds reading the clock, and sums the gaps.
pub fn hiccups(ms: u64) -> Hiccups {
    let clock = crate::clock::Clock::calibrate(10);
    let end = clock.now() + clock.from_ns(ms * 1_000_000);
    let threshold = clock.from_ns(2_000);
    let start = clock.now();
    let (mut prev, mut gaps, mut lost, mut max) = (start, 0u64, 0u64, 0u64);
    loop {
        let now = clock.now();
        let d = now.saturating_sub(prev);
        if d >= threshold {
            gaps += 1;
            lost += d;
            max = max.max(d);
        }
        prev = now;
        if now >= end {
            break;
        }
    }
    Hiccups {
        spun_ns: clock.to_ns(prev - start),
        gaps,
        lost_ns: clock.to_ns(lost),
        max_ns: clock.to_ns(max),
    }
}

/// The bench's output.
pub struct BenchReport {
    /// Feed name and size.
    pub feed: String,
    /// The platform's hiccups on the loop's core, measured before the runs.
    pub hiccups: Hiccups,
    /// Runs.
    pub runs: Vec<BenchRun>,
    /// Highest rate found sustainable per mode, with the run at that rate.
    pub max_sustained: Vec<(Mode, u64)>,
}

/// Whether a paced run kept up: the median message did not wait behind earlier ones (under 1 µs
/// of queueing) and no backlog was left at the end (under 1 ms behind schedule). Percentiles
/// further out are set by the platform's hiccups on these machines (see [`hiccups`]), not by
/// the rate.
pub fn sustained(r: &RunReport) -> bool {
    r.latency.queueing.summary().p50 < 1_000 && r.final_lag_ns < 1_000_000
}

/// Runs the bench.
pub fn bench(o: &BenchOptions) -> Result<BenchReport, CmdError> {
    let Job { feed, config, .. } = prepare(&o.source, &o.strategy, None)?;
    let msgs = repeat(&feed.msgs, o.messages);
    let frames = encode_all(&msgs);
    if o.pin {
        let _ = crate::pin::pin_to_core(0);
    }
    let hiccups = hiccups(1_000);
    let mut runs = Vec::new();
    let mut max_sustained = Vec::new();
    for &mode in &o.modes {
        let run = |rate| {
            Engine::new(EngineConfig {
                mode,
                rate,
                pin: o.pin.then_some([0, 1]),
                backoff: o.backoff,
                ..config.clone()
            })
            .run(&frames)
        };
        let label = |rate: u64| {
            let m = if mode == Mode::Fused {
                "fused"
            } else {
                "split"
            };
            if rate == 0 {
                format!("{m}, unpaced")
            } else {
                format!("{m}, paced {rate}/s")
            }
        };
        runs.push(BenchRun {
            label: label(0),
            report: run(0),
        });
        if o.rate > 0 {
            runs.push(BenchRun {
                label: label(o.rate),
                report: run(o.rate),
            });
        }
        if o.find_max {
            // Double until the loop falls behind, then bisect between the last two rates.
            let (mut lo, mut hi) = (0u64, 250_000u64);
            loop {
                if sustained(&run(hi)) {
                    lo = hi;
                    hi *= 2;
                    if hi > 64_000_000 {
                        break;
                    }
                } else {
                    break;
                }
            }
            for _ in 0..5 {
                if hi - lo <= hi / 20 {
                    break;
                }
                let mid = (lo + hi) / 2;
                if sustained(&run(mid)) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            max_sustained.push((mode, lo));
        }
    }
    Ok(BenchReport {
        feed: format!(
            "{} ({} messages, repeated to {})",
            feed.instrument,
            feed.msgs.len(),
            msgs.len()
        ),
        hiccups,
        runs,
        max_sustained,
    })
}

fn us(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1000.0)
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "feed: {}", self.feed)?;
        let h = &self.hiccups;
        writeln!(
            f,
            "platform: spinning {:.1} s on the loop's core, {} gaps of 2 µs or more took {:.3} % of the time (longest {} µs)",
            h.spun_ns as f64 / 1e9,
            h.gaps,
            h.lost_ns as f64 * 100.0 / h.spun_ns.max(1) as f64,
            us(h.max_ns)
        )?;
        for run in &self.runs {
            let r = &run.report;
            writeln!(
                f,
                "\n{}: {} messages in {:.3} s = {:.0} msgs/s; behind schedule at the end: {} µs; orders {}, fills {}",
                run.label,
                r.messages,
                r.elapsed_ns as f64 / 1e9,
                r.throughput(),
                us(r.final_lag_ns),
                r.trading.orders,
                r.trading.fills
            )?;
            writeln!(
                f,
                "  {:<17} {:>10} {:>9} {:>9} {:>9} {:>9} {:>10}",
                "stage (µs)", "count", "p50", "p90", "p99", "p99.9", "max"
            )?;
            for (name, s) in r.latency.summaries() {
                if s.count == 0 {
                    continue;
                }
                writeln!(
                    f,
                    "  {:<17} {:>10} {:>9} {:>9} {:>9} {:>9} {:>10}",
                    name,
                    s.count,
                    us(s.p50),
                    us(s.p90),
                    us(s.p99),
                    us(s.p999),
                    us(s.max)
                )?;
            }
        }
        for (mode, rate) in &self.max_sustained {
            writeln!(
                f,
                "\nhighest sustained rate, {mode:?}: {rate} msgs/s (median queueing under 1 µs, no backlog at the end)"
            )?;
        }
        Ok(())
    }
}

/// Options of `tickflow hft replay`.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// The feed.
    pub source: FeedSource,
    /// Strategy name.
    pub strategy: String,
    /// Order size (default: the feed's median add size).
    pub qty: Option<Quantity>,
    /// Order latency to the venue, in feed-time nanoseconds.
    pub latency_ns: u64,
    /// Journal lines to print.
    pub show: usize,
}

/// The replay's output.
pub struct ReplayReport {
    /// Feed name.
    pub feed: String,
    /// Tick of the feed.
    pub tick: Price,
    /// Order size used.
    pub qty: Quantity,
    /// Strategy name.
    pub strategy: String,
    /// The run.
    pub report: RunReport,
    /// Journal lines to print.
    pub show: usize,
}

/// Runs a strategy over a feed once, fused and unpaced.
pub fn replay(o: &ReplayOptions) -> Result<ReplayReport, CmdError> {
    let Job { feed, qty, config } = prepare(&o.source, &o.strategy, o.qty)?;
    let frames = encode_all(&feed.msgs);
    let cfg = EngineConfig {
        venue: VenueConfig {
            latency_ns: o.latency_ns,
        },
        warmup: 0,
        journal: (feed.msgs.len() * 2).max(1024),
        ..config
    };
    let report = Engine::new(cfg).run(&frames);
    Ok(ReplayReport {
        feed: describe_feed(&feed),
        tick: feed.tick,
        qty,
        strategy: o.strategy.clone(),
        report,
        show: o.show,
    })
}

/// A loaded feed for the report: its instrument, messages, what was left out and its gaps.
fn describe_feed(feed: &Feed) -> String {
    let mut text = format!("{} ({} messages", feed.instrument, feed.msgs.len());
    if feed.skipped > 0 {
        text += &format!(
            "; {} records of other instruments or without market data left out",
            feed.skipped
        );
    }
    if feed.gaps > 0 {
        text += &format!(
            "; {} gaps in the depth updates, the book cleared at each",
            feed.gaps
        );
    }
    if feed.trade_gaps > 0 {
        text += &format!("; {} gaps in the trade ids", feed.trade_gaps);
    }
    text + ")"
}

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.report;
        let t = &r.trading;
        writeln!(
            f,
            "feed: {}, tick {}, order size {}; strategy {}",
            self.feed, self.tick, self.qty, self.strategy
        )?;
        let m = &r.market;
        writeln!(
            f,
            "book: {} messages; {} on orders not in the book, {} duplicate adds, {} bad events, {} refused at capacity, {} undecodable",
            m.messages,
            m.unknown_orders,
            m.duplicate_orders,
            m.bad_events,
            m.book_full,
            m.decode_errors
        )?;
        let shown: Vec<_> = r
            .journal
            .iter()
            .filter(|e| {
                !matches!(
                    e.kind,
                    JournalKind::Rejected(_)
                        | JournalKind::Report(crate::venue::ReportKind::Accepted)
                )
            })
            .take(self.show)
            .collect();
        if !shown.is_empty() {
            writeln!(f, "first {} orders and reports:", shown.len())?;
            for e in shown {
                let what = match e.kind {
                    JournalKind::Order(k) => format!("order {k:?}"),
                    JournalKind::Report(k) => format!("{k:?}"),
                    JournalKind::Rejected(why) => format!("rejected {}", why.as_str()),
                };
                writeln!(
                    f,
                    "  {:>20} #{:<6} {:<16} {:<4} {:>14} x {}",
                    e.ts_ns,
                    e.id,
                    what,
                    e.side.as_str(),
                    e.price,
                    e.qty
                )?;
            }
        }
        writeln!(
            f,
            "orders {}, cancels {}, fills {} ({} taking liquidity), filled quantity {}, venue rejects {}",
            t.orders,
            t.cancels,
            t.fills,
            t.taker_fills,
            Quantity::from_raw(t.filled_qty.min(i64::MAX as i128) as i64),
            t.venue_rejects
        )?;
        let rejects: Vec<String> = RiskReject::ALL
            .iter()
            .filter(|w| t.risk_rejects[**w as usize] > 0)
            .map(|w| format!("{} {}", w.as_str(), t.risk_rejects[*w as usize]))
            .collect();
        writeln!(
            f,
            "risk rejects: {}",
            if rejects.is_empty() {
                "none".to_string()
            } else {
                rejects.join(", ")
            }
        )?;
        writeln!(
            f,
            "position {}, cash {}, marked at the last uncrossed mid {} -> PnL {}",
            Quantity::from_raw(t.position),
            format_money(t.cash),
            r.last_mid
                .map_or("-".to_string(), |m| Price::from_raw(m).to_string()),
            format_money(r.pnl())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_names() {
        assert_eq!(parse_backoff("spin").unwrap(), Backoff::Spin);
        assert_eq!(
            parse_backoff("yield:100").unwrap(),
            Backoff::SpinThenYield(100)
        );
        assert!(parse_backoff("sleep").is_err());
    }

    #[test]
    fn repeat_clears_between_copies_and_keeps_time_increasing() {
        let msgs: Vec<FeedMsg> = (0..3)
            .map(|i| FeedMsg::new(100 + i, Action::Trade, tickflow_core::Side::Buy))
            .collect();
        let r = repeat(&msgs, 7);
        assert_eq!(r.len(), 7);
        assert_eq!(r[3].action, Action::Clear);
        assert!(r.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
        assert_eq!(repeat(&msgs, 2).len(), 3, "never shorter than the feed");
    }

    #[test]
    fn replay_reports_trades_and_pnl() {
        let r = replay(&ReplayOptions {
            source: FeedSource::Synthetic(50_000),
            strategy: "market-maker".into(),
            qty: None,
            latency_ns: 0,
            show: 5,
        })
        .unwrap();
        let text = r.to_string();
        assert!(r.report.trading.fills > 0, "{text}");
        assert!(
            text.contains("PnL") && text.contains("first 5 orders"),
            "{text}"
        );
        let e = replay(&ReplayOptions {
            source: FeedSource::Synthetic(1_000),
            strategy: "nope".into(),
            qty: None,
            latency_ns: 0,
            show: 0,
        });
        assert!(e.is_err_and(|e| e.to_string().contains("unknown strategy")));
    }
}
