//! Latency histograms: HDR histograms (3 significant digits, 1 ns to 60 s) of each stage and of
//! tick-to-order, recorded in nanoseconds. Recording never allocates: the histograms are sized
//! for their whole range at start-up and values beyond it are clamped to the top.

use hdrhistogram::Histogram;

/// The top of the recordable range: 60 s.
const MAX_NS: u64 = 60_000_000_000;

/// One latency distribution.
#[derive(Clone, Debug)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

/// Percentiles of a distribution, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

impl Latency {
    /// An empty histogram covering 1 ns to 60 s.
    pub fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, MAX_NS, 3).expect("valid histogram bounds"),
        }
    }

    /// Records one value (clamped into the range).
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns.clamp(1, MAX_NS));
    }

    /// Adds another histogram's values.
    pub fn merge(&mut self, other: &Latency) {
        self.hist
            .add(&other.hist)
            .expect("histograms with the same bounds");
    }

    /// The percentiles.
    pub fn summary(&self) -> Summary {
        let h = &self.hist;
        Summary {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// The loop's histograms.
#[derive(Clone, Debug, Default)]
pub struct StageLatencies {
    /// Arrival (intended send time) to the start of processing: time spent waiting behind
    /// earlier messages. Non-zero when the loop falls behind the offered rate.
    pub queueing: Latency,
    /// Frame decode.
    pub decode: Latency,
    /// Book update and venue matching.
    pub book: Latency,
    /// Market thread to decision thread (split mode only).
    pub hop: Latency,
    /// Strategy.
    pub strategy: Latency,
    /// Risk checks and order encoding.
    pub risk_encode: Latency,
    /// Arrival to the decision (every message, whether or not it led to an order).
    pub tick_to_decision: Latency,
    /// Arrival to an encoded order on the wire (messages that led to orders).
    pub tick_to_order: Latency,
}

impl StageLatencies {
    /// Named summaries, in stage order.
    pub fn summaries(&self) -> [(&'static str, Summary); 8] {
        [
            ("queueing", self.queueing.summary()),
            ("decode", self.decode.summary()),
            ("book+venue", self.book.summary()),
            ("ring hop", self.hop.summary()),
            ("strategy", self.strategy.summary()),
            ("risk+encode", self.risk_encode.summary()),
            ("tick-to-decision", self.tick_to_decision.summary()),
            ("tick-to-order", self.tick_to_order.summary()),
        ]
    }

    /// Adds another set's values.
    pub fn merge(&mut self, o: &StageLatencies) {
        self.queueing.merge(&o.queueing);
        self.decode.merge(&o.decode);
        self.book.merge(&o.book);
        self.hop.merge(&o.hop);
        self.strategy.merge(&o.strategy);
        self.risk_encode.merge(&o.risk_encode);
        self.tick_to_decision.merge(&o.tick_to_decision);
        self.tick_to_order.merge(&o.tick_to_order);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_within_three_digits() {
        let mut l = Latency::new();
        for v in 1..=10_000u64 {
            l.record(v);
        }
        l.record(u64::MAX);
        let s = l.summary();
        assert_eq!(s.count, 10_001);
        assert!((s.p50 as i64 - 5_000).abs() <= 5, "{s:?}");
        assert!((s.p99 as i64 - 9_900).abs() <= 10, "{s:?}");
        assert!(s.max >= MAX_NS - MAX_NS / 1000, "clamped, not lost: {s:?}");
    }
}
