//! Out-of-sample scores of a direction forecast, beside naive baselines.

use serde::{Deserialize, Serialize};

/// Accuracy, AUC and log-loss of probabilities against outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Samples scored.
    pub n: usize,
    /// Share of samples whose direction was called right (p > 0.5 calls up).
    pub accuracy: f64,
    /// Area under the ROC curve of the scores (0.5: no skill).
    pub auc: f64,
    /// Mean negative log-likelihood of the outcomes (natural log).
    pub log_loss: f64,
}

/// Probabilities are clipped to [EPS, 1 − EPS] for the log-loss.
const EPS: f64 = 1e-7;

/// Scores probabilities `p` (of an up move) against outcomes `up`.
pub fn scores(p: &[f64], up: &[bool]) -> Scores {
    let n = up.len();
    let hits = p.iter().zip(up).filter(|(p, u)| (**p > 0.5) == **u).count();
    let log_loss = p
        .iter()
        .zip(up)
        .map(|(p, u)| {
            let p = p.clamp(EPS, 1.0 - EPS);
            -(if *u { p.ln() } else { (1.0 - p).ln() })
        })
        .sum::<f64>()
        / n.max(1) as f64;
    Scores {
        n,
        accuracy: hits as f64 / n.max(1) as f64,
        auc: auc(p, up),
        log_loss,
    }
}

/// Area under the ROC curve (the Mann–Whitney statistic, ties counted half); 0.5 when one class
/// is absent.
pub fn auc(score: &[f64], up: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..score.len()).collect();
    idx.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && score[idx[j + 1]] == score[idx[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let mean_rank = (i + j + 2) as f64 / 2.0;
        rank_sum += mean_rank * idx[i..=j].iter().filter(|&&k| up[k]).count() as f64;
        i = j + 1;
    }
    let pos = up.iter().filter(|u| **u).count() as f64;
    let neg = up.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// The PnL of a simple strategy trading on the predictions through the simulated exchange.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrategyResult {
    /// The rule traded.
    pub rule: String,
    /// From when it traded (the test part's start).
    pub from: String,
    /// Signals, orders and fills.
    pub signals: u64,
    /// Orders accepted by risk.
    pub orders: u64,
    /// Fills from the simulated exchange.
    pub fills: u64,
    /// Fees paid.
    pub fees: f64,
    /// Realized plus unrealized PnL after fees, at the last prices.
    pub pnl: f64,
    /// Return on the capital.
    pub total_return: f64,
    /// Largest fall of the portfolio value from a peak, as a fraction of the peak.
    pub max_drawdown: f64,
}

/// The evaluation report of a trained model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The model on the test part.
    pub model: Scores,
    /// Always the training set's more frequent direction, with its frequency as probability.
    pub majority: Scores,
    /// The sign of the last bar's return, with its training hit rate as probability.
    pub last_sign: Scores,
    /// Share of up moves in the training part.
    pub train_up_rate: f64,
    /// Correlation of the expected return with the realized forward return (test part).
    pub return_correlation: f64,
    /// The model on the validation part.
    pub validation: Scores,
    /// The strategy traded on the predictions, if it was run.
    pub strategy: Option<StrategyResult>,
}

impl std::fmt::Display for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "out of sample ({} test samples):", self.model.n)?;
        writeln!(
            f,
            "  {:<26} {:>9} {:>7} {:>9}",
            "", "accuracy", "AUC", "log-loss"
        )?;
        for (name, s) in [
            ("model", &self.model),
            ("majority class", &self.majority),
            ("sign of last return", &self.last_sign),
        ] {
            writeln!(
                f,
                "  {name:<26} {:>9.4} {:>7.4} {:>9.4}",
                s.accuracy, s.auc, s.log_loss
            )?;
        }
        writeln!(
            f,
            "  model on validation        {:>9.4} {:>7.4} {:>9.4}",
            self.validation.accuracy, self.validation.auc, self.validation.log_loss
        )?;
        writeln!(
            f,
            "  training up-rate {:.4}; expected vs realized return correlation {:.4}",
            self.train_up_rate, self.return_correlation
        )?;
        if let Some(s) = &self.strategy {
            writeln!(f, "strategy `{}` from {}:", s.rule, s.from)?;
            writeln!(
                f,
                "  {} signals, {} orders, {} fills, fees {:.2}, PnL after fees {:.2} ({:+.4}% of capital), max drawdown {:.4}%",
                s.signals,
                s.orders,
                s.fills,
                s.fees,
                s.pnl,
                s.total_return * 100.0,
                s.max_drawdown * 100.0
            )?;
        }
        Ok(())
    }
}

/// Pearson correlation; 0 when either side is constant.
pub fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_pairs_and_ties() {
        let up = [false, false, true, true];
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &up), 1.0);
        assert_eq!(auc(&[0.9, 0.8, 0.2, 0.1], &up), 0.0);
        assert_eq!(auc(&[0.5; 4], &up), 0.5);
        // One of four pairs misordered.
        assert_eq!(auc(&[0.1, 0.6, 0.5, 0.9], &up), 0.75);
        assert_eq!(auc(&[0.1, 0.2], &[true, true]), 0.5);
    }

    #[test]
    fn accuracy_and_log_loss() {
        let s = scores(&[0.9, 0.2, 0.6], &[true, false, false]);
        assert!((s.accuracy - 2.0 / 3.0).abs() < 1e-12);
        let ll = -(0.9f64.ln() + 0.8f64.ln() + 0.4f64.ln()) / 3.0;
        assert!((s.log_loss - ll).abs() < 1e-12);
        assert!((correlation(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-12);
    }
}
