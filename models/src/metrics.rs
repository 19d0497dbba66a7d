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
    /// Samples whose move was up (absent in models saved before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<usize>,
}

impl Scores {
    /// How far the AUC lies above no skill (0.5), in standard errors of the AUC of a forecast
    /// without skill on these outcomes: the normal approximation of the Mann–Whitney test,
    /// `sqrt((up + down + 1) / (12 · up · down))` (ties counted as if there were none, which
    /// overstates the error slightly). `None` where one direction is absent or not recorded.
    pub fn auc_z(&self) -> Option<f64> {
        let up = self.up? as f64;
        let down = self.n as f64 - up;
        (up > 0.0 && down > 0.0).then(|| {
            let se = ((up + down + 1.0) / (12.0 * up * down)).sqrt();
            (self.auc - 0.5) / se
        })
    }
}

/// P(Z > z) for a standard normal Z, within 1.5e-7 (Abramowitz and Stegun 7.1.26).
pub fn normal_upper_tail(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    // erfc(x) for x >= 0.
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        erfc / 2.0
    } else {
        1.0 - erfc / 2.0
    }
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
        up: Some(up.iter().filter(|u| **u).count()),
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
    /// How many test samples have targets from one quote midpoint to another (the rest run
    /// from or to a trade price); `None` in reports saved before it was counted.
    #[serde(default)]
    pub mid_targets: Option<usize>,
    /// The model on the test samples with mid-to-mid targets, where some but not all are.
    #[serde(default)]
    pub model_on_mid: Option<Scores>,
    /// The strategy traded on the predictions, if it was run.
    pub strategy: Option<StrategyResult>,
}

/// How far `s`'s AUC lies from no skill, with its p-value and verdict; `None` where it cannot
/// be told (one class only).
fn skill(s: &Scores) -> Option<String> {
    let z = s.auc_z()?;
    let p = normal_upper_tail(z);
    let verdict = if p < 0.01 {
        "skill at the 1 % level"
    } else if p < 0.05 {
        "skill at the 5 % level, not at 1 %"
    } else {
        "not told apart from chance at 5 %"
    };
    // The tail is good to 1.5e-7, absolute: a smaller one is told as a bound.
    let p = if p < 1e-6 {
        "< 1e-6".to_string()
    } else if p < 1e-3 {
        format!("= {p:.1e}")
    } else {
        format!("= {p:.3}")
    };
    Some(format!(
        "{z:+.2} standard errors from no skill (one-sided p {p}): {verdict}"
    ))
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
        if let Some(skill) = skill(&self.model) {
            writeln!(f, "  model AUC {skill}")?;
        }
        match self.mid_targets {
            Some(m) if m == self.model.n => {
                writeln!(f, "  targets: quote midpoint to quote midpoint")?;
            }
            Some(0) => writeln!(
                f,
                "  targets: trade price to trade price, no quote standing at the bars' ends (their returns carry bid-ask bounce: skill in them may not be tradeable)"
            )?,
            Some(m) => {
                writeln!(
                    f,
                    "  targets: {m} of the {} test samples quote midpoint to midpoint; the other {} from or to a trade price, with bid-ask bounce",
                    self.model.n,
                    self.model.n - m
                )?;
                if let Some(s) = &self.model_on_mid {
                    writeln!(
                        f,
                        "  {:<26} {:>9.4} {:>7.4} {:>9.4}",
                        "model on mid-to-mid only", s.accuracy, s.auc, s.log_loss
                    )?;
                    if let Some(skill) = skill(s) {
                        writeln!(f, "    its AUC {skill}")?;
                    }
                }
            }
            None => {}
        }
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
    fn the_report_tells_the_targets_and_the_model_on_mid_to_mid_ones_alone() {
        let up: Vec<bool> = (0..20).map(|i| i >= 10).collect();
        let p: Vec<f64> = (0..20).map(|i| f64::from(i) / 20.0).collect();
        let model = scores(&p, &up);
        let mut e = Evaluation {
            model,
            majority: model,
            last_sign: model,
            train_up_rate: 0.5,
            return_correlation: 0.0,
            validation: model,
            mid_targets: Some(20),
            model_on_mid: None,
            strategy: None,
        };
        assert!(
            e.to_string()
                .contains("targets: quote midpoint to quote midpoint\n"),
            "{e}"
        );
        e.mid_targets = Some(0);
        assert!(
            e.to_string()
                .contains("targets: trade price to trade price")
        );
        // 8 of 20 mid to mid, on which the model has no skill.
        e.mid_targets = Some(8);
        e.model_on_mid = Some(scores(
            &[0.5; 8],
            &[true, false, true, false, true, false, true, false],
        ));
        let text = e.to_string();
        assert!(
            text.contains("targets: 8 of the 20 test samples quote midpoint to midpoint; the other 12 from or to a trade price"),
            "{text}"
        );
        assert!(
            text.contains("  model on mid-to-mid only      0.5000  0.5000")
                && text.contains("its AUC +0.00 standard errors from no skill (one-sided p = 0.500): not told apart from chance at 5 %"),
            "{text}"
        );
        // Reports saved before the targets were counted say nothing of them.
        e.mid_targets = None;
        assert!(!e.to_string().contains("targets:"));
    }

    #[test]
    fn the_auc_is_told_in_standard_errors_from_no_skill() {
        // 10 up and 10 down, perfectly ordered: AUC 1, standard error sqrt(21 / 1200).
        let up: Vec<bool> = (0..20).map(|i| i >= 10).collect();
        let p: Vec<f64> = (0..20).map(|i| f64::from(i) / 20.0).collect();
        let s = scores(&p, &up);
        assert_eq!(s.up, Some(10));
        let z = s.auc_z().unwrap();
        assert!((z - 0.5 / (21.0f64 / 1200.0).sqrt()).abs() < 1e-12, "{z}");
        // Without skill, or one direction only.
        assert_eq!(
            scores(&[0.5; 4], &[true, false, true, false]).auc_z(),
            Some(0.0)
        );
        assert_eq!(scores(&[0.3, 0.7], &[true, true]).auc_z(), None);
        // Not recorded (a model saved before): none.
        let old: Scores =
            serde_json::from_str(r#"{"n":4,"accuracy":0.5,"auc":0.5,"log_loss":0.69}"#).unwrap();
        assert_eq!(old.auc_z(), None);
        // The normal tail at known points.
        for (z, tail) in [
            (0.0, 0.5),
            (1.0, 0.158_655_25),
            (1.96, 0.024_997_9),
            (-2.326_347_9, 0.99),
            (5.0, 2.866_515_7e-7),
        ] {
            let got = normal_upper_tail(z);
            assert!((got - tail).abs() < 1.5e-7, "{z}: {got} vs {tail}");
        }
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
