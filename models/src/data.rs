//! Training data: feature rows joined with forward returns, and the time-ordered split.
//!
//! A [`Row`] is one instrument's feature vector at the end of one bar, with a reference price:
//! the quote midpoint at the bar's end (the features stream's [`PRICE_COLUMN`]) where there is
//! one, else the bar's close. Mid-to-mid returns carry no bid-ask bounce, which close-to-close
//! returns do (a close at the ask tends to be followed by one nearer the bid), so a market
//! without a signal really has nothing to learn. The target of a row is the log return of the
//! price over the next `horizon` bars of the same instrument; its *target end* is the end of the
//! bar that return reaches. A row with no bar
//! `horizon` ahead has no target; a row whose forward return is exactly 0 has no direction and is
//! left out of the samples (it still serves as history for sequence models).
//!
//! [`Dataset::split`] cuts on time, never at random: train, then validation, then test. A sample
//! belongs to a part only if its target end is before the next part starts (the samples whose
//! targets reach into the next part are purged), so no training target is computed from prices
//! that validation or test rows see, and normalization is fitted on training rows only.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use tickflow_core::Timestamp;

use crate::error::{Error, Result};

/// The features stream's column holding the reference price; not a model input.
pub const PRICE_COLUMN: &str = "mid";

/// One instrument's features at the end of one bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Instrument symbol.
    pub instrument: String,
    /// End of the bar.
    pub time: Timestamp,
    /// Reference price: the quote midpoint at the bar's end, else the bar's close.
    pub close: f64,
    /// Whether `close` is the quote midpoint.
    pub mid: bool,
    /// One value per dataset column.
    pub values: Vec<Option<f64>>,
}

/// A row with a target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Index into [`Dataset::rows`].
    pub row: usize,
    /// Log return of the reference price over the next `horizon` bars.
    pub forward_return: f64,
    /// End of the bar the forward return reaches.
    pub target_end: Timestamp,
    /// Log return of the reference price over the previous bar, if there was one.
    pub last_return: Option<f64>,
    /// Whether the forward return runs from one quote midpoint to another (else one end or
    /// both are trade prices, whose returns carry bid-ask bounce).
    pub mid_target: bool,
}

/// Feature rows with targets.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Feature column names.
    pub columns: Vec<String>,
    /// Forward-return horizon, in bars.
    pub horizon: usize,
    /// Every row, sorted by time, then instrument.
    pub rows: Vec<Row>,
    /// For each row, the previous row of the same instrument.
    pub prev: Vec<Option<usize>>,
    /// Rows with a nonzero forward return, in row order.
    pub samples: Vec<Sample>,
}

/// Indices into [`Dataset::samples`] of each part, and where the parts start.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Training samples.
    pub train: Vec<usize>,
    /// Validation samples (early stopping).
    pub val: Vec<usize>,
    /// Test samples (the out-of-sample report).
    pub test: Vec<usize>,
    /// First time of the validation part.
    pub val_start: Timestamp,
    /// First time of the test part.
    pub test_start: Timestamp,
    /// Samples left out because their targets reach into the next part.
    pub purged: usize,
}

/// Checks the fractions of a split: the train and validation parts positive, room left for the
/// test part.
pub(crate) fn check_fractions(train: f64, val: f64) -> Result<()> {
    if train > 0.0 && val > 0.0 && train + val < 1.0 {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "split fractions train {train} and validation {val} must be positive and leave room for a test part"
        )))
    }
}

impl Dataset {
    /// Builds the dataset; rows may come in any order.
    pub fn new(columns: Vec<String>, mut rows: Vec<Row>, horizon: usize) -> Result<Self> {
        if horizon == 0 {
            return Err(Error::Config("horizon must be at least 1 bar".into()));
        }
        if let Some(r) = rows.iter().find(|r| r.values.len() != columns.len()) {
            return Err(Error::Data(format!(
                "row of {} at {} has {} values for {} columns",
                r.instrument,
                r.time,
                r.values.len(),
                columns.len()
            )));
        }
        rows.sort_by(|a, b| (a.time, &a.instrument).cmp(&(b.time, &b.instrument)));
        let mut prev = vec![None; rows.len()];
        let mut by_instrument: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            let list = by_instrument.entry(&r.instrument).or_default();
            prev[i] = list.last().copied();
            list.push(i);
        }
        let mut samples = Vec::new();
        for list in by_instrument.values() {
            for (p, &i) in list.iter().enumerate() {
                let Some(&j) = list.get(p + horizon) else {
                    break;
                };
                let (c0, c1) = (rows[i].close, rows[j].close);
                if !(c0 > 0.0 && c1 > 0.0 && c0.is_finite() && c1.is_finite()) {
                    continue;
                }
                let forward_return = (c1 / c0).ln();
                if forward_return == 0.0 {
                    continue;
                }
                let last_return = prev[i]
                    .map(|k| rows[k].close)
                    .filter(|c| *c > 0.0)
                    .map(|c| (c0 / c).ln());
                samples.push(Sample {
                    row: i,
                    forward_return,
                    target_end: rows[j].time,
                    last_return,
                    mid_target: rows[i].mid && rows[j].mid,
                });
            }
        }
        samples.sort_by_key(|s| s.row);
        Ok(Self {
            columns,
            horizon,
            rows,
            prev,
            samples,
        })
    }

    /// Time-ordered split: the first `train` fraction of samples (by time) for training, the next
    /// `val` fraction for validation, the rest for testing; samples whose targets reach into the
    /// next part are purged.
    pub fn split(&self, train: f64, val: f64) -> Result<Split> {
        check_fractions(train, val)?;
        let n = self.samples.len();
        if n < 30 {
            return Err(Error::Data(format!(
                "{n} samples with a target; at least 30 are needed to train, validate and test"
            )));
        }
        let time = |k: usize| self.rows[self.samples[k].row].time;
        let val_start = time(((n as f64 * train) as usize).min(n - 1));
        let test_start = time(((n as f64 * (train + val)) as usize).min(n - 1));
        if val_start == test_start || time(0) == val_start {
            return Err(Error::Data(
                "the samples span too few distinct bar times to split into train, validation and test".into(),
            ));
        }
        let mut s = Split {
            train: Vec::new(),
            val: Vec::new(),
            test: Vec::new(),
            val_start,
            test_start,
            purged: 0,
        };
        for (k, sample) in self.samples.iter().enumerate() {
            let t = time(k);
            let (part, limit) = if t < val_start {
                (&mut s.train, Some(val_start))
            } else if t < test_start {
                (&mut s.val, Some(test_start))
            } else {
                (&mut s.test, None)
            };
            if limit.is_some_and(|l| sample.target_end >= l) {
                s.purged += 1;
            } else {
                part.push(k);
            }
        }
        Ok(s)
    }

    /// The model input of sample row `row` with a window of `k` rows: the rows of the same
    /// instrument ending at `row`, oldest first, each normalized by `spec` (missing history is
    /// zeros, the training mean). Appends `k * columns` values to `out`.
    pub fn window_into(
        &self,
        spec: &crate::spec::FeatureSpec,
        row: usize,
        k: usize,
        out: &mut Vec<f32>,
    ) {
        let mut chain = Vec::with_capacity(k);
        let mut at = Some(row);
        while chain.len() < k {
            chain.push(at);
            at = at.and_then(|i| self.prev[i]);
        }
        for r in chain.into_iter().rev() {
            match r {
                Some(i) => spec.normalize_into(&self.rows[i].values, out),
                None => out.extend(std::iter::repeat_n(0.0, spec.len())),
            }
        }
    }

    /// Reads the JSON Lines files a pipeline's `jsonl` sink writes for its features stream and the
    /// bars it was computed on, joined on instrument and bar end.
    pub fn load_jsonl(features: &Path, bars: &Path, horizon: usize) -> Result<Self> {
        let mut closes: HashMap<(String, String), f64> = HashMap::new();
        for_each_line(bars, |line_no, obj| {
            let key = key_of(obj, bars, line_no)?;
            let close = obj
                .get("close")
                .and_then(serde_json::Value::as_f64)
                .ok_or_else(|| {
                    Error::Data(format!("{}:{line_no}: no numeric `close`", bars.display()))
                })?;
            closes.insert(key, close);
            Ok(())
        })?;
        let mut columns: Option<Vec<String>> = None;
        let mut rows = Vec::new();
        let mut unmatched = 0usize;
        for_each_line(features, |line_no, obj| {
            let cols = columns.get_or_insert_with(|| {
                obj.keys()
                    .filter(|k| !["instrument", "end", PRICE_COLUMN].contains(&k.as_str()))
                    .cloned()
                    .collect()
            });
            let key = key_of(obj, features, line_no)?;
            let mut values = Vec::with_capacity(cols.len());
            for c in cols.iter() {
                values.push(match obj.get(c) {
                    Some(serde_json::Value::Null) => None,
                    Some(v) => Some(v.as_f64().ok_or_else(|| {
                        Error::Data(format!(
                            "{}:{line_no}: `{c}` is not a number: {v}",
                            features.display()
                        ))
                    })?),
                    None => {
                        return Err(Error::Data(format!(
                            "{}:{line_no}: no `{c}` (the first line has it)",
                            features.display()
                        )));
                    }
                });
            }
            let Some(&close) = closes.get(&key) else {
                unmatched += 1;
                return Ok(());
            };
            let mid = obj
                .get(PRICE_COLUMN)
                .and_then(serde_json::Value::as_f64)
                .filter(|m| *m > 0.0);
            let time = Timestamp::parse_rfc3339(&key.1).map_err(|e| {
                Error::Data(format!("{}:{line_no}: `end`: {e}", features.display()))
            })?;
            rows.push(Row {
                instrument: key.0,
                time,
                close: mid.unwrap_or(close),
                mid: mid.is_some(),
                values,
            });
            Ok(())
        })?;
        let columns = columns
            .ok_or_else(|| Error::Data(format!("{}: no feature rows", features.display())))?;
        // Every feature row is computed on a bar: one without is a sign of mismatched files.
        if unmatched > 0 {
            return Err(Error::Data(format!(
                "{unmatched} of the {} rows of {} have no bar in {} (same instrument and end)",
                unmatched + rows.len(),
                features.display(),
                bars.display()
            )));
        }
        Self::new(columns, rows, horizon)
    }
}

fn key_of(
    obj: &serde_json::Map<String, serde_json::Value>,
    path: &Path,
    line_no: usize,
) -> Result<(String, String)> {
    let field = |name: &str| {
        obj.get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Error::Data(format!("{}:{line_no}: no string `{name}`", path.display())))
    };
    Ok((field("instrument")?, field("end")?))
}

fn for_each_line(
    path: &Path,
    mut f: impl FnMut(usize, &serde_json::Map<String, serde_json::Value>) -> Result<()>,
) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| Error::Data(format!("{}:{}: {e}", path.display(), i + 1)))?;
        let obj = value.as_object().ok_or_else(|| {
            Error::Data(format!("{}:{}: not a JSON object", path.display(), i + 1))
        })?;
        f(i + 1, obj)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<Row> {
        let mut out = Vec::new();
        for t in 0..n {
            for (k, name) in ["A", "B"].iter().enumerate() {
                out.push(Row {
                    instrument: (*name).into(),
                    time: Timestamp(t as i64 * 60_000_000_000),
                    close: 100.0 + ((t * 7 + k * 3) % 11) as f64,
                    // Instrument A is quoted from the fourth bar on.
                    mid: k == 0 && t >= 3,
                    values: vec![Some(t as f64)],
                });
            }
        }
        out
    }

    #[test]
    fn targets_look_forward_by_the_horizon_and_flat_moves_are_left_out() {
        let d = Dataset::new(vec!["x".into()], rows(40), 3).unwrap();
        for s in &d.samples {
            let r = &d.rows[s.row];
            let later = d
                .rows
                .iter()
                .filter(|o| o.instrument == r.instrument && o.time > r.time)
                .nth(2)
                .unwrap();
            assert_eq!(s.target_end, later.time);
            assert!((s.forward_return - (later.close / r.close).ln()).abs() < 1e-15);
            assert_ne!(s.forward_return, 0.0);
            // Mid to mid only where both ends are quote midpoints.
            assert_eq!(s.mid_target, r.mid && later.mid, "{s:?}");
        }
        let mid = d.samples.iter().filter(|s| s.mid_target).count();
        assert!(mid > 0 && mid < d.samples.len(), "{mid}");
        // The last 3 rows of each instrument have no target.
        assert!(d.samples.len() <= 2 * 37);
    }

    #[test]
    fn split_is_time_ordered_and_purged() {
        let d = Dataset::new(vec!["x".into()], rows(200), 5).unwrap();
        let s = d.split(0.6, 0.2).unwrap();
        let t = |k: usize| d.rows[d.samples[k].row].time;
        assert!(s.purged > 0);
        for &k in &s.train {
            assert!(t(k) < s.val_start && d.samples[k].target_end < s.val_start);
        }
        for &k in &s.val {
            assert!(t(k) >= s.val_start && t(k) < s.test_start);
            assert!(d.samples[k].target_end < s.test_start);
        }
        assert!(s.test.iter().all(|&k| t(k) >= s.test_start));
        assert_eq!(
            s.train.len() + s.val.len() + s.test.len() + s.purged,
            d.samples.len()
        );
    }

    #[test]
    fn windows_are_the_instruments_own_history_oldest_first() {
        let d = Dataset::new(vec!["x".into()], rows(10), 1).unwrap();
        let spec = crate::spec::FeatureSpec {
            columns: vec!["x".into()],
            mean: vec![0.0],
            std: vec![1.0],
        };
        // Row 5 is instrument B at t=2: history t=0,1,2 of B, then a window longer than history.
        let mut out = Vec::new();
        d.window_into(&spec, 5, 3, &mut out);
        assert_eq!(out, vec![0.0, 1.0, 2.0]);
        out.clear();
        d.window_into(&spec, 5, 5, &mut out);
        assert_eq!(out, vec![0.0, 0.0, 0.0, 1.0, 2.0]);
    }

    #[test]
    fn jsonl_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let bars = dir.path().join("bars.jsonl");
        let feats = dir.path().join("features.jsonl");
        std::fs::write(
            &bars,
            "{\"instrument\":\"A\",\"end\":\"2024-01-02T14:31:00Z\",\"close\":10}\n",
        )
        .unwrap();
        std::fs::write(
            &feats,
            "{\"instrument\":\"A\",\"end\":\"2024-01-02T14:31:00Z\",\"x\":1}\n{\"instrument\":\"A\",\"end\":\"2024-01-02T14:32:00Z\",\"x\":\"high\"}\n",
        )
        .unwrap();
        let e = Dataset::load_jsonl(&feats, &bars, 1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("features.jsonl:2") && e.contains("`x` is not a number"),
            "{e}"
        );
        // A feature row whose bar is not in the bars file.
        std::fs::write(
            &feats,
            "{\"instrument\":\"A\",\"end\":\"2024-01-02T14:32:00Z\",\"x\":1}\n",
        )
        .unwrap();
        let e = Dataset::load_jsonl(&feats, &bars, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 of the 1 rows") && e.contains("no bar"), "{e}");
    }
}
