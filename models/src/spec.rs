//! The feature spec: which columns a model reads, in which order, and how each is normalized.
//!
//! Saved with every model. Normalization is a z-score with the mean and standard deviation of
//! the training rows only (never validation or test rows), clipped to ±[`CLIP`]; a missing value
//! (`None`, not yet defined) becomes 0, the training mean.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Normalized values are clipped to this many standard deviations.
pub const CLIP: f32 = 5.0;

/// Columns and their normalization statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Column names, in the order the model reads them.
    pub columns: Vec<String>,
    /// Training mean per column.
    pub mean: Vec<f64>,
    /// Training standard deviation per column (1 where a column is constant).
    pub std: Vec<f64>,
}

impl FeatureSpec {
    /// Fits the statistics on rows (defined values only); `rows` yields one vector per row.
    pub fn fit<'a>(columns: &[String], rows: impl Iterator<Item = &'a [Option<f64>]>) -> Self {
        let n = columns.len();
        let (mut count, mut sum, mut sq) = (vec![0u64; n], vec![0.0; n], vec![0.0; n]);
        let mut rows_seen = Vec::new();
        for row in rows {
            rows_seen.push(row);
            for (i, v) in row.iter().enumerate().take(n) {
                if let Some(v) = v.filter(|v| v.is_finite()) {
                    count[i] += 1;
                    sum[i] += v;
                }
            }
        }
        let mean: Vec<f64> = (0..n)
            .map(|i| {
                if count[i] > 0 {
                    sum[i] / count[i] as f64
                } else {
                    0.0
                }
            })
            .collect();
        // Two passes for the variance: no cancellation on large-valued columns (volume).
        for row in rows_seen {
            for (i, v) in row.iter().enumerate().take(n) {
                if let Some(v) = v.filter(|v| v.is_finite()) {
                    sq[i] += (v - mean[i]) * (v - mean[i]);
                }
            }
        }
        let std = (0..n)
            .map(|i| {
                let s = if count[i] > 1 {
                    (sq[i] / (count[i] - 1) as f64).sqrt()
                } else {
                    0.0
                };
                if s > 1e-12 && s.is_finite() { s } else { 1.0 }
            })
            .collect();
        Self {
            columns: columns.to_vec(),
            mean,
            std,
        }
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// True when the spec has no columns.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Appends the normalized values of `row` (in the spec's own column order) to `out`.
    pub fn normalize_into(&self, row: &[Option<f64>], out: &mut Vec<f32>) {
        for i in 0..self.columns.len() {
            out.push(self.normalize_one(i, row.get(i).copied().flatten()));
        }
    }

    /// Normalizes value `v` of column `i`.
    pub fn normalize_one(&self, i: usize, v: Option<f64>) -> f32 {
        match v.filter(|v| v.is_finite()) {
            Some(v) => (((v - self.mean[i]) / self.std[i]) as f32).clamp(-CLIP, CLIP),
            None => 0.0,
        }
    }

    /// Where each of the spec's columns sits in `input` (a pipeline's feature columns). Every
    /// missing column is named; extra input columns are fine.
    pub fn bind(&self, input: &[String], path: &str) -> Result<Vec<usize>> {
        let missing: Vec<&str> = self
            .columns
            .iter()
            .filter(|c| !input.contains(c))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Error::Mismatch {
                path: path.to_owned(),
                reason: format!(
                    "the model reads column{} {} that the features stream does not have (it has: {})",
                    if missing.len() == 1 { "" } else { "s" },
                    missing.join(", "),
                    input.join(", ")
                ),
            });
        }
        Ok(self
            .columns
            .iter()
            .map(|c| input.iter().position(|i| i == c).expect("checked above"))
            .collect())
    }

    /// Checks that the statistics have one entry per column and are usable.
    pub fn validate(&self, path: &str) -> Result<()> {
        let bad = |reason: String| Error::Model {
            path: path.to_owned(),
            reason,
        };
        if self.columns.is_empty() {
            return Err(bad("the feature spec has no columns".into()));
        }
        if self.mean.len() != self.columns.len() || self.std.len() != self.columns.len() {
            return Err(bad(format!(
                "the feature spec has {} columns but {} means and {} standard deviations",
                self.columns.len(),
                self.mean.len(),
                self.std.len()
            )));
        }
        for (i, c) in self.columns.iter().enumerate() {
            // A column read twice is a spec edited by hand (training lists each feature once):
            // the model would read that column in two places and never the one it learned.
            if let Some(j) = self.columns[..i].iter().position(|d| d == c) {
                return Err(bad(format!(
                    "the feature spec lists column `{c}` twice (positions {} and {})",
                    j + 1,
                    i + 1
                )));
            }
            if !(self.mean[i].is_finite() && self.std[i].is_finite() && self.std[i] > 0.0) {
                return Err(bad(format!(
                    "feature `{c}` has mean {} and standard deviation {}",
                    self.mean[i], self.std[i]
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_normalize_and_bind() {
        let cols = vec!["a".to_string(), "b".to_string()];
        let rows = [
            vec![Some(1.0), Some(10.0)],
            vec![Some(3.0), None],
            vec![None, Some(10.0)],
        ];
        let spec = FeatureSpec::fit(&cols, rows.iter().map(Vec::as_slice));
        assert_eq!(spec.mean, vec![2.0, 10.0]);
        assert!((spec.std[0] - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(spec.std[1], 1.0, "a constant column keeps a unit scale");
        let mut out = Vec::new();
        spec.normalize_into(&[Some(2.0 + 2f64.sqrt()), None], &mut out);
        assert!((out[0] - 1.0).abs() < 1e-6 && out[1] == 0.0);
        spec.normalize_into(&[Some(1e9), Some(f64::NAN)], &mut out);
        assert_eq!(&out[2..], &[CLIP, 0.0]);

        let input: Vec<String> = ["x", "b", "a"].map(String::from).to_vec();
        assert_eq!(spec.bind(&input, "m").unwrap(), vec![2, 1]);
        let e = spec.bind(&input[..2], "m").unwrap_err().to_string();
        assert!(e.contains("column a ") && e.contains("it has: x, b"), "{e}");
        spec.validate("m").unwrap();
        let mut twice = spec.clone();
        twice.columns[1] = "a".into();
        assert_eq!(
            twice.validate("m").unwrap_err().to_string(),
            "model m: the feature spec lists column `a` twice (positions 1 and 2)"
        );
        let mut broken = spec.clone();
        broken.std.pop();
        assert!(
            broken
                .validate("m")
                .unwrap_err()
                .to_string()
                .contains("1 standard deviations")
        );
    }
}
