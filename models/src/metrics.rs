//! Out-of-sample scores of a direction forecast, beside naive baselines.
//!
//! How far a model's AUC lies from no skill is told in standard errors. The samples of a test
//! part are not independent: the instruments of one bar move together, and with a horizon of
//! `H` bars the targets of neighbouring bars share `H − 1` of their returns while the features,
//! and so the predictions, change slowly. The Mann–Whitney formula, which takes every sample
//! as independent, then understates the error: trained on a market without a signal, one in
//! six models over 1-bar targets and more than half over 10-bar targets were called skilled at
//! the 5 % level. [`scores_over`] takes the standard error from a circular block bootstrap over
//! time instead ([`Timeline`]): stretches of consecutive bars, every instrument of a bar
//! together, drawn with replacement.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use tickflow_core::Timestamp;

use crate::rng::Rng;

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
    /// The blocks of time the AUC's standard error was drawn from ([`scores_over`]); absent
    /// where the samples were taken as independent ([`scores`], and reports saved before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<usize>,
    /// The AUC's standard error by the block bootstrap, where there were blocks enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auc_se: Option<f64>,
}

impl Scores {
    /// How far the AUC lies above no skill (0.5), in standard errors. Where the scores were
    /// taken over time ([`scores_over`]), the error is the block bootstrap's, never less than
    /// the Mann–Whitney formula's, and `None` with fewer than [`MIN_BLOCKS`] blocks. Otherwise
    /// (samples independent) it is the normal approximation of the Mann–Whitney test,
    /// `sqrt((up + down + 1) / (12 · up · down))` (ties counted as if there were none, which
    /// overstates the error slightly). `None` where one direction is absent or not recorded.
    pub fn auc_z(&self) -> Option<f64> {
        let up = self.up? as f64;
        let down = self.n as f64 - up;
        if up == 0.0 || down == 0.0 {
            return None;
        }
        let independent = ((up + down + 1.0) / (12.0 * up * down)).sqrt();
        let se = match self.blocks {
            None => independent,
            Some(b) if b < MIN_BLOCKS => return None,
            Some(_) => self.auc_se?.max(independent),
        };
        Some((self.auc - 0.5) / se)
    }

    /// The one-sided p-value of [`Self::auc_z`]: the normal tail where the samples were taken as
    /// independent; over `b` blocks of time, Student's t tail with `b − 1` degrees of freedom
    /// (the error is itself estimated from only `b` blocks).
    pub fn auc_p(&self) -> Option<f64> {
        let z = self.auc_z()?;
        Some(match self.blocks {
            None => normal_upper_tail(z),
            Some(b) => student_upper_tail(z, b - 1),
        })
    }
}

/// The fewest blocks of time a standard error is drawn from: with fewer, a test part holds too
/// few stretches that move apart from each other to tell skill from chance. (Without skill, the
/// t tail over 5 to 8 blocks calls skill at 5 % about as often as over 10 or more: 6–9 % of the
/// time, in the test below.)
pub const MIN_BLOCKS: usize = 5;

/// Resamples of the block bootstrap: 1,000, down to 200 for test parts of more than 200,000
/// samples (each resample visits every sample; 200 resamples still give the error within
/// about 5 %).
fn rounds(samples: usize) -> usize {
    (200_000_000 / samples.max(1)).clamp(200, 1000)
}

/// The samples of a test part laid out in time, for the block bootstrap.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    /// The samples (indices) of each distinct time, in time order.
    pub steps: Vec<Vec<usize>>,
    /// Consecutive steps per block.
    pub block: usize,
}

impl Timeline {
    /// Lays out samples by their bar times and instruments (in any order), for targets `horizon`
    /// bars ahead. A block spans at least twice the horizon, so that most pairs of targets that
    /// share returns fall in one block (blocks as long as the horizon understate the error), and
    /// at least the cube root of the bars per instrument (the usual rate for a block
    /// bootstrap), in bars of the instruments' average spacing: where the
    /// instruments' bars end at the same times (time bars) a step is a bar; where they do not
    /// (volume bars) a block holds as many steps as there are in that many bars.
    pub fn new(times: &[Timestamp], instruments: &[&str], horizon: usize) -> Self {
        let mut order: Vec<usize> = (0..times.len()).collect();
        order.sort_by_key(|&i| times[i]);
        let mut steps: Vec<Vec<usize>> = Vec::new();
        let mut last = None;
        for i in order {
            if last != Some(times[i]) {
                steps.push(Vec::new());
                last = Some(times[i]);
            }
            steps.last_mut().expect("pushed").push(i);
        }
        let names = instruments.iter().collect::<HashSet<_>>().len().max(1);
        let bars = (times.len() as f64 / names as f64).max(1.0);
        let steps_per_bar = (steps.len() as f64 / bars).max(1.0);
        let block_bars = (2 * horizon).max(bars.cbrt().ceil() as usize);
        let block =
            ((block_bars as f64 * steps_per_bar).ceil() as usize).clamp(1, steps.len().max(1));
        Self { steps, block }
    }

    /// Whole blocks in the timeline.
    pub fn blocks(&self) -> usize {
        self.steps.len() / self.block
    }
}

/// The standard deviation of the AUC of `p` against `up` over [`rounds`] circular block
/// bootstrap resamples of `time` (seeded: the same samples give the same error). `None` with
/// fewer than [`MIN_BLOCKS`] blocks, or where most resamples hold one direction only.
pub fn auc_block_se(p: &[f64], up: &[bool], time: &Timeline) -> Option<f64> {
    block_se(p, up, time, rounds(p.len()))
}

fn block_se(p: &[f64], up: &[bool], time: &Timeline, rounds: usize) -> Option<f64> {
    let steps = time.steps.len();
    if time.blocks() < MIN_BLOCKS {
        return None;
    }
    let order = score_order(p);
    let mut rng = Rng::new(0xB10C);
    let mut weight = vec![0u32; p.len()];
    let mut aucs = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        weight.fill(0);
        for _ in 0..steps.div_ceil(time.block) {
            let start = (rng.next_u64() % steps as u64) as usize;
            for j in 0..time.block {
                for &i in &time.steps[(start + j) % steps] {
                    weight[i] += 1;
                }
            }
        }
        aucs.extend(weighted_auc(&order, p, up, &weight));
    }
    if aucs.len() * 2 < rounds {
        return None;
    }
    let mean = aucs.iter().sum::<f64>() / aucs.len() as f64;
    let var = aucs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (aucs.len() - 1) as f64;
    Some(var.sqrt())
}

/// The AUC with each sample counted `weight` times; `order` sorts the samples by score. `None`
/// where one direction has no weight.
fn weighted_auc(order: &[usize], p: &[f64], up: &[bool], weight: &[u32]) -> Option<f64> {
    let (mut down_below, mut pairs, mut ups) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let (mut up_w, mut down_w) = (0.0, 0.0);
        // The samples tied with sample `i` (a NaN ties with nothing).
        let mut j = i;
        loop {
            let w = f64::from(weight[order[j]]);
            if up[order[j]] {
                up_w += w;
            } else {
                down_w += w;
            }
            j += 1;
            if j == order.len() || p[order[j]] != p[order[i]] {
                break;
            }
        }
        // Ties count half.
        pairs += up_w * (down_below + 0.5 * down_w);
        down_below += down_w;
        ups += up_w;
        i = j;
    }
    (ups > 0.0 && down_below > 0.0).then(|| pairs / (ups * down_below))
}

/// [`scores`], with the AUC's standard error from a block bootstrap over `time`.
pub fn scores_over(p: &[f64], up: &[bool], time: &Timeline) -> Scores {
    Scores {
        blocks: Some(time.blocks()),
        auc_se: auc_block_se(p, up, time),
        ..scores(p, up)
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

/// P(T > t) for Student's t with `dof` ≥ 1 degrees of freedom, from the finite series of
/// P(|T| < t) in θ = atan(t / √dof) (Abramowitz and Stegun 26.7.3 and 26.7.4); to within
/// rounding of f64, in absolute terms.
pub fn student_upper_tail(t: f64, dof: usize) -> f64 {
    let theta = (t.abs() / (dof as f64).sqrt()).atan();
    let (sin, cos2) = (theta.sin(), theta.cos().powi(2));
    // The series' terms: products of (k − 1) / k over odd k for odd dof, even k for even.
    let series = |first: usize| {
        let (mut term, mut sum, mut k) = (1.0, 1.0, first);
        while k + 2 <= dof {
            term *= cos2 * (k - 1) as f64 / k as f64;
            sum += term;
            k += 2;
        }
        sum
    };
    let inside = if dof % 2 == 1 {
        let sum = if dof == 1 { 0.0 } else { series(3) };
        (2.0 / std::f64::consts::PI) * (theta + sin * theta.cos() * sum)
    } else {
        sin * series(2)
    };
    let inside = inside.clamp(0.0, 1.0);
    if t >= 0.0 {
        (1.0 - inside) / 2.0
    } else {
        (1.0 + inside) / 2.0
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
        blocks: None,
        auc_se: None,
    }
}

/// Area under the ROC curve (the Mann–Whitney statistic, ties counted half); 0.5 when one class
/// is absent.
pub fn auc(score: &[f64], up: &[bool]) -> f64 {
    weighted_auc(&score_order(score), score, up, &vec![1; score.len()]).unwrap_or(0.5)
}

/// The samples' indices sorted by score.
fn score_order(score: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    order
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
    /// Out-of-sample R² of the expected return against the training part's mean return:
    /// `1 − Σ(r − r̂)² / Σ(r − r̄_train)²` over the test part; below 0 where the forecast's
    /// errors are larger than those of the mean. Absent in reports saved before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_r2: Option<f64>,
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
    let both_ways = s.up.is_some_and(|u| u > 0 && u < s.n);
    let Some(z) = s.auc_z() else {
        return match s.blocks {
            Some(b) if both_ways && b < MIN_BLOCKS => Some(format!(
                "not told from chance: the test part spans {b} block{} of time, fewer than the \
                 {MIN_BLOCKS} a standard error needs (more days of data, or a shorter horizon, \
                 give more)",
                if b == 1 { "" } else { "s" }
            )),
            _ => None,
        };
    };
    let p = s.auc_p()?;
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
    let basis = s.blocks.map_or(String::new(), |b| {
        format!("; error from {b} blocks of time")
    });
    Some(format!(
        "{z:+.2} standard errors from no skill (one-sided p {p}{basis}): {verdict}"
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
        if let Some(r2) = self.return_r2 {
            writeln!(
                f,
                "  expected return out-of-sample R² {r2:.4} (against the training mean return)"
            )?;
        }
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

/// Out-of-sample R² of `forecast` for `realized` against the constant forecast `mean`; `None`
/// without samples or where every realized value is the mean.
pub fn r_squared(forecast: &[f64], realized: &[f64], mean: f64) -> Option<f64> {
    let base: f64 = realized.iter().map(|r| (r - mean).powi(2)).sum();
    let err: f64 = forecast
        .iter()
        .zip(realized)
        .map(|(f, r)| (r - f).powi(2))
        .sum();
    (base > 0.0).then(|| 1.0 - err / base)
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
            return_r2: None,
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
        // Over blocks of time: the bootstrap's error, never less than the formula's, and Student's
        // tail with one degree of freedom fewer than the blocks.
        let independent = (21.0f64 / 1200.0).sqrt();
        let blocked = Scores {
            blocks: Some(25),
            auc_se: Some(0.25),
            ..s
        };
        assert!((blocked.auc_z().unwrap() - 2.0).abs() < 1e-12);
        // t with 24 degrees of freedom: P(T > 2) = 0.028470 (the normal tail: 0.02275).
        assert!((blocked.auc_p().unwrap() - 0.028_469_925).abs() < 1e-8);
        let narrow = Scores {
            auc_se: Some(0.01),
            ..blocked
        };
        assert!((narrow.auc_z().unwrap() - 0.5 / independent).abs() < 1e-12);
        // Too few blocks, or no error drawn: not told, and the report says why.
        let few = Scores {
            blocks: Some(MIN_BLOCKS - 1),
            ..blocked
        };
        assert_eq!((few.auc_z(), few.auc_p()), (None, None));
        assert_eq!(
            skill(&few).unwrap(),
            "not told from chance: the test part spans 4 blocks of time, fewer than the 5 a standard error needs (more days of data, or a shorter horizon, give more)"
        );
        let one = Scores {
            blocks: Some(1),
            ..blocked
        };
        assert!(skill(&one).unwrap().contains(" spans 1 block of time, "));
        assert_eq!(
            Scores {
                auc_se: None,
                ..blocked
            }
            .auc_z(),
            None
        );
        assert!(
            skill(&blocked)
                .unwrap()
                .ends_with("(one-sided p = 0.028; error from 25 blocks of time): skill at the 5 % level, not at 1 %"),
            "{:?}",
            skill(&blocked)
        );
        // Saved and read back.
        let back: Scores = serde_json::from_str(&serde_json::to_string(&blocked).unwrap()).unwrap();
        assert_eq!(back, blocked);
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
    fn the_bootstrap_auc_counts_each_sample_as_often_as_it_was_drawn() {
        let mut rng = Rng::new(3);
        // Scores on a coarse grid (ties) and one NaN.
        let mut p: Vec<f64> = (0..200)
            .map(|_| (rng.uniform() * 20.0).floor() / 20.0)
            .collect();
        p[17] = f64::NAN;
        let up: Vec<bool> = (0..200).map(|_| rng.uniform() < 0.45).collect();
        // The AUC by counting every pair of an up and a down sample, ties half (a NaN above
        // every number, as it sorts).
        let by_pairs = |p: &[f64], up: &[bool]| {
            let (mut pairs, mut n) = (0.0, 0.0);
            for i in (0..p.len()).filter(|&i| up[i]) {
                for j in (0..p.len()).filter(|&j| !up[j]) {
                    n += 1.0;
                    pairs += if p[i] == p[j] {
                        0.5
                    } else if p[i].total_cmp(&p[j]).is_gt() {
                        1.0
                    } else {
                        0.0
                    };
                }
            }
            pairs / n
        };
        let order = score_order(&p);
        let w = weighted_auc(&order, &p, &up, &[1; 200]).unwrap();
        assert!(
            (w - by_pairs(&p, &up)).abs() < 1e-12,
            "{w} vs {}",
            by_pairs(&p, &up)
        );
        assert_eq!(auc(&p, &up), w);
        // Weights are repeats: samples drawn twice, and ones not drawn at all.
        let weight: Vec<u32> = (0..200).map(|i| (i % 3) as u32).collect();
        let (mut rp, mut rup) = (Vec::new(), Vec::new());
        for i in 0..200 {
            for _ in 0..weight[i] {
                rp.push(p[i]);
                rup.push(up[i]);
            }
        }
        let w = weighted_auc(&order, &p, &up, &weight).unwrap();
        assert!((w - by_pairs(&rp, &rup)).abs() < 1e-12);
        // One direction drawn only.
        let downs: Vec<u32> = up.iter().map(|u| u32::from(!u)).collect();
        assert_eq!(weighted_auc(&order, &p, &up, &downs), None);
    }

    #[test]
    fn a_timeline_blocks_bars_of_every_instrument_together_twice_the_horizon_long() {
        let t = |s: i64| Timestamp(s * 30_000_000_000);
        // 4 instruments, 125 bars each, ending at the same times: a step per bar; blocks of
        // 5 bars (the cube root of 125), or of twice the horizon where that is longer.
        let times: Vec<Timestamp> = (0..500).map(|i| t(i / 4)).collect();
        let names: Vec<&str> = (0..500).map(|i| ["a", "b", "c", "d"][i % 4]).collect();
        let line = Timeline::new(&times, &names, 1);
        assert_eq!(line.steps.len(), 125);
        assert_eq!(line.steps[3], vec![12, 13, 14, 15]);
        assert_eq!((line.block, line.blocks()), (5, 25));
        assert_eq!(Timeline::new(&times, &names, 2).block, 5);
        assert_eq!(Timeline::new(&times, &names, 3).block, 6);
        assert_eq!(Timeline::new(&times, &names, 10).blocks(), 6);
        // Bars at times of their own (volume bars): as many steps as bars in 5 bars.
        let times: Vec<Timestamp> = (0..500).map(|i| t(i as i64)).collect();
        let line = Timeline::new(&times, &names, 1);
        assert_eq!((line.steps.len(), line.block, line.blocks()), (500, 20, 25));
        // Samples in any order; a block never longer than the timeline.
        let line = Timeline::new(&[t(2), t(1), t(2)], &["a", "a", "b"], 50);
        assert_eq!(line.steps, vec![vec![1], vec![0, 2]]);
        assert_eq!((line.block, line.blocks()), (2, 1));
        assert_eq!(Timeline::new(&[], &[], 1).blocks(), 0);
    }

    /// A standard normal variate (Box–Muller).
    fn normal(rng: &mut Rng) -> f64 {
        let u = 1.0 - rng.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * rng.uniform()).cos()
    }

    /// Predictions without skill over a market whose instruments move together: how often the
    /// model is called skilled at 5 % (one-sided), by the formula for independent samples and by
    /// the block bootstrap, out of `runs` of `bars` bars.
    fn false_skill(horizon: usize, bars: usize, runs: usize) -> (usize, usize) {
        let names = 12;
        let mut rng = Rng::new(horizon as u64);
        let (mut independent, mut blocked) = (0, 0);
        for _ in 0..runs {
            // Returns with a common factor; predictions that change slowly, with a common part
            // of their own, and know nothing of the returns.
            let mut returns = vec![vec![0.0; names]; bars + horizon];
            for row in &mut returns {
                let market = normal(&mut rng);
                for r in row.iter_mut() {
                    *r = 0.7 * market + 0.7 * normal(&mut rng);
                }
            }
            let mut state = vec![0.0; names];
            let (mut p, mut up, mut times, mut who) = (vec![], vec![], vec![], vec![]);
            for (t, _) in returns.iter().enumerate().take(bars) {
                let common = normal(&mut rng);
                for (i, s) in state.iter_mut().enumerate() {
                    *s = 0.9 * *s + 0.3 * common + 0.3 * normal(&mut rng);
                    let ahead: f64 = returns[t + 1..=t + horizon].iter().map(|r| r[i]).sum();
                    p.push(1.0 / (1.0 + (-*s).exp()));
                    up.push(ahead > 0.0);
                    times.push(Timestamp(t as i64));
                    who.push(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"][i]);
                }
            }
            let time = Timeline::new(&times, &who, horizon);
            let mut s = scores(&p, &up);
            independent += usize::from(s.auc_p().unwrap() < 0.05);
            s.blocks = Some(time.blocks());
            s.auc_se = block_se(&p, &up, &time, 200);
            blocked += usize::from(s.auc_p().unwrap() < 0.05);
        }
        (independent, blocked)
    }

    #[test]
    fn without_skill_the_block_bootstrap_calls_skill_at_5_percent_about_as_often_as_it_should() {
        // Over 200 bars: 33 and 10 blocks; over 100 bars at a horizon of 10: 5 blocks.
        for (horizon, bars) in [(1, 200), (10, 200), (10, 100)] {
            let runs = 400;
            let (independent, blocked) = false_skill(horizon, bars, runs);
            println!(
                "horizon {horizon}, {bars} bars: called skilled at 5 % in {independent} of {runs} runs taking the samples as independent, {blocked} by the block bootstrap"
            );
            assert!(independent * 100 >= 15 * runs, "{horizon}: {independent}");
            assert!(blocked * 10 <= runs, "{horizon}: {blocked}");
        }
    }

    #[test]
    fn large_test_parts_take_fewer_resamples() {
        assert_eq!(rounds(2_400), 1000);
        assert_eq!(rounds(200_000), 1000);
        assert_eq!(rounds(400_000), 500);
        assert_eq!(rounds(50_000_000), 200);
    }

    #[test]
    fn the_student_tail_at_known_points() {
        // (t, degrees of freedom, P(T > t)), the tails integrated numerically.
        for (t, dof, tail) in [
            (1.0, 1, 0.25),
            (2.0, 2, 0.091_751_709_5),
            (0.5, 4, 0.321_664_981_6),
            (2.015, 5, 0.050_003_086_2),
            (2.447, 6, 0.024_997_007_2),
            (3.0, 9, 0.007_478_182_0),
            (2.0, 24, 0.028_469_925_0),
            (1.96, 1000, 0.025_136_592_5),
            (0.0, 7, 0.5),
            (-2.0, 24, 1.0 - 0.028_469_925_0),
        ] {
            let got = student_upper_tail(t, dof);
            assert!((got - tail).abs() < 1e-9, "t {t}, {dof}: {got} vs {tail}");
        }
        // Far out, where an approximation through the normal tail would say 5e-4.
        let far = student_upper_tail(24.48, 6);
        assert!((far / 1.527_729_7e-7 - 1.0).abs() < 1e-4, "{far}");
    }

    #[test]
    fn accuracy_and_log_loss() {
        let s = scores(&[0.9, 0.2, 0.6], &[true, false, false]);
        assert!((s.accuracy - 2.0 / 3.0).abs() < 1e-12);
        let ll = -(0.9f64.ln() + 0.8f64.ln() + 0.4f64.ln()) / 3.0;
        assert!((s.log_loss - ll).abs() < 1e-12);
        assert!((correlation(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-12);
        // R² against a mean: perfect, the mean itself, worse than the mean.
        let realized = [1.0, -1.0, 2.0, 0.0];
        assert_eq!(r_squared(&realized, &realized, 0.5), Some(1.0));
        assert_eq!(r_squared(&[0.5; 4], &realized, 0.5), Some(0.0));
        // Perfectly correlated but twice too large: correlation 1, R² below 0.
        let doubled: Vec<f64> = realized.iter().map(|r| 2.0 * r).collect();
        assert!((correlation(&doubled, &realized) - 1.0).abs() < 1e-12);
        let r2 = r_squared(&doubled, &realized, 0.0).unwrap();
        assert!((r2 - (1.0 - 6.0 / 6.0)).abs() < 1e-12, "{r2}");
        let tripled: Vec<f64> = realized.iter().map(|r| 3.0 * r).collect();
        assert!((r_squared(&tripled, &realized, 0.0).unwrap() + 3.0).abs() < 1e-12);
        assert_eq!(r_squared(&[], &[], 0.0), None);
        assert_eq!(r_squared(&[1.0], &[2.0], 2.0), None);
    }
}
