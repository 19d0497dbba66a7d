//! Building blocks: a fixed-size ring and monotonic extremes over a sliding window.

use std::collections::VecDeque;

/// The last `n` values, in a buffer written round-robin (no division on the hot path).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Ring {
    buf: Vec<f64>,
    /// Next slot to write; when full, also the oldest value.
    pos: usize,
    full: bool,
}

impl Ring {
    /// A ring of capacity `n` (at least 1).
    pub fn new(n: usize) -> Self {
        Self {
            buf: vec![0.0; n.max(1)],
            pos: 0,
            full: false,
        }
    }
    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
    /// Values held.
    pub fn len(&self) -> usize {
        if self.full { self.buf.len() } else { self.pos }
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// True when holding `capacity` values.
    pub fn is_full(&self) -> bool {
        self.full
    }
    /// Appends; returns the value pushed out when full.
    #[inline]
    pub fn push(&mut self, x: f64) -> Option<f64> {
        let old = self.full.then(|| self.buf[self.pos]);
        self.buf[self.pos] = x;
        self.pos += 1;
        if self.pos == self.buf.len() {
            self.pos = 0;
            self.full = true;
        }
        old
    }
    /// The oldest value.
    #[inline]
    pub fn oldest(&self) -> Option<f64> {
        if self.full {
            Some(self.buf[self.pos])
        } else {
            self.buf[..self.pos].first().copied()
        }
    }
    /// The values as two slices, oldest first.
    pub fn as_slices(&self) -> (&[f64], &[f64]) {
        if self.full {
            (&self.buf[self.pos..], &self.buf[..self.pos])
        } else {
            (&self.buf[..self.pos], &[])
        }
    }
    /// Values from oldest to newest.
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        let (a, b) = self.as_slices();
        a.iter().chain(b).copied()
    }
}

/// Sum over the last `n` values, updated as TA-Lib does: add the newest, read, then take out
/// the oldest of the window — so results match TA-Lib's running totals to the last bit.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct WindowSum {
    ring: Ring,
    total: f64,
}

impl WindowSum {
    /// A window of `n` values.
    pub fn new(n: usize) -> Self {
        Self {
            ring: Ring::new(n),
            total: 0.0,
        }
    }
    /// Adds `x`; once `n` values are in, returns the sum of the last `n`.
    #[inline]
    pub fn push(&mut self, x: f64) -> Option<f64> {
        self.total += x;
        self.ring.push(x);
        if !self.ring.is_full() {
            return None;
        }
        let out = self.total;
        // The oldest value leaves before the next one arrives.
        if let Some(old) = self.ring.oldest() {
            self.total -= old;
        }
        Some(out)
    }
    /// Window length.
    pub fn period(&self) -> usize {
        self.ring.capacity()
    }
}

/// Sum and sum of squares over the last `n` values, in TA-Lib's order (see [`WindowSum`]).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct WindowMoments {
    ring: Ring,
    total: f64,
    total_sq: f64,
}

impl WindowMoments {
    /// A window of `n` values.
    pub fn new(n: usize) -> Self {
        Self {
            ring: Ring::new(n),
            total: 0.0,
            total_sq: 0.0,
        }
    }
    /// Adds `x`; once `n` values are in, returns `(sum, sum of squares)` of the last `n`.
    #[inline]
    pub fn push(&mut self, x: f64) -> Option<(f64, f64)> {
        self.total += x;
        self.total_sq += x * x;
        self.ring.push(x);
        if !self.ring.is_full() {
            return None;
        }
        let out = (self.total, self.total_sq);
        if let Some(old) = self.ring.oldest() {
            self.total -= old;
            self.total_sq -= old * old;
        }
        Some(out)
    }
    /// Window length.
    pub fn period(&self) -> usize {
        self.ring.capacity()
    }
}

/// Highest and lowest of the last `n` values, amortised O(1) with monotonic deques.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Extremes {
    n: u64,
    count: u64,
    max: VecDeque<(u64, f64)>,
    min: VecDeque<(u64, f64)>,
}

impl Extremes {
    /// Over a window of `n` values.
    pub fn new(n: usize) -> Self {
        Self {
            n: n.max(1) as u64,
            count: 0,
            max: VecDeque::new(),
            min: VecDeque::new(),
        }
    }
    /// Adds the newest `high` and `low`; once `n` are in, returns `(highest, lowest)`.
    pub fn push(&mut self, high: f64, low: f64) -> Option<(f64, f64)> {
        let i = self.count;
        self.count += 1;
        while self.max.back().is_some_and(|&(_, v)| v <= high) {
            self.max.pop_back();
        }
        self.max.push_back((i, high));
        while self.min.back().is_some_and(|&(_, v)| v >= low) {
            self.min.pop_back();
        }
        self.min.push_back((i, low));
        let oldest = self.count.saturating_sub(self.n);
        while self.max.front().is_some_and(|&(j, _)| j < oldest) {
            self.max.pop_front();
        }
        while self.min.front().is_some_and(|&(j, _)| j < oldest) {
            self.min.pop_front();
        }
        (self.count >= self.n).then(|| {
            (
                self.max.front().map_or(high, |m| m.1),
                self.min.front().map_or(low, |m| m.1),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn extremes_equal_a_scan(xs in proptest::collection::vec(-1000i32..1000, 1..200), n in 1usize..20) {
            let mut e = Extremes::new(n);
            for (i, &x) in xs.iter().enumerate() {
                let got = e.push(f64::from(x), f64::from(x) - 1.0);
                if i + 1 >= n {
                    let w = &xs[i + 1 - n..=i];
                    let hi = f64::from(*w.iter().max().unwrap());
                    let lo = f64::from(*w.iter().min().unwrap()) - 1.0;
                    prop_assert_eq!(got, Some((hi, lo)));
                } else {
                    prop_assert_eq!(got, None);
                }
            }
        }

        #[test]
        fn window_sum_equals_a_scan(xs in proptest::collection::vec(-1000i32..1000, 1..200), n in 1usize..20) {
            let mut s = WindowSum::new(n);
            for (i, &x) in xs.iter().enumerate() {
                let got = s.push(f64::from(x));
                if i + 1 >= n {
                    let sum: i64 = xs[i + 1 - n..=i].iter().map(|&v| i64::from(v)).sum();
                    prop_assert_eq!(got, Some(sum as f64));
                } else {
                    prop_assert!(got.is_none());
                }
            }
        }
    }
}
