//! Training on the CPU, deterministic for a seed.
//!
//! The data is split on time ([`Dataset::split`]); the feature spec and the target's scale are
//! fitted on the training part only. Weights are initialized from the seed (LeCun uniform,
//! biases zero) and mini-batches are drawn in a seeded order, so the same data and seed give the
//! same weights bit for bit. The loss is the binary cross-entropy of the direction (computed
//! from the logit, stable for large logits) plus half the squared error of the standardized
//! return. AdamW; after each epoch the validation loss decides early stopping, and the weights
//! of the best epoch are kept.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};

use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::metrics::{Evaluation, Timeline, correlation, r_squared, scores, scores_over};
use crate::net::{Architecture, ModelKind, Net};
use crate::rng::Rng;
use crate::spec::{CLIP, FeatureSpec};
use crate::store::{DataRange, FORMAT, ModelMeta, Predictor, Training};

/// Training settings.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Model kind.
    pub kind: ModelKind,
    /// Hidden widths (MLP layers, or the GRU state size).
    pub hidden: Vec<usize>,
    /// Vectors per input for sequence models.
    pub window: usize,
    /// Seed.
    pub seed: u64,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Mini-batch size.
    pub batch: usize,
    /// Most epochs.
    pub max_epochs: usize,
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    /// Share of samples (by time) for training.
    pub train_fraction: f64,
    /// Share of samples for validation; the rest is the test part.
    pub val_fraction: f64,
}

impl TrainConfig {
    /// Defaults for a kind.
    pub fn new(kind: ModelKind) -> Self {
        let (hidden, window, learning_rate) = match kind {
            ModelKind::Linear => (vec![], 1, 1e-2),
            ModelKind::Mlp => (vec![32, 16], 1, 3e-3),
            ModelKind::Gru => (vec![16], 8, 5e-3),
        };
        Self {
            kind,
            hidden,
            window,
            seed: 7,
            learning_rate,
            weight_decay: 1e-4,
            batch: 256,
            max_epochs: 60,
            patience: 6,
            train_fraction: 0.6,
            val_fraction: 0.2,
        }
    }

    /// Checks what can be checked before any data is read: the shape of the kind (its number of
    /// features is the data's; one is taken here, the least any data gives), the batch, the
    /// epochs and the split fractions.
    pub fn validate(&self) -> Result<()> {
        if self.batch == 0 || self.max_epochs == 0 {
            return Err(Error::Config("batch and epochs must be at least 1".into()));
        }
        crate::data::check_fractions(self.train_fraction, self.val_fraction)?;
        self.architecture(1).validate()
    }

    /// The shape of a model of this configuration over `features` features. A window or
    /// hidden widths the kind does not have are kept, so that [`Architecture::validate`]
    /// refuses them rather than a model being trained without what was asked for.
    fn architecture(&self, features: usize) -> Architecture {
        Architecture {
            kind: self.kind,
            features,
            window: self.window,
            hidden: self.hidden.clone(),
        }
    }
}

/// A trained model with its evaluation.
pub struct Trained {
    /// The model (metadata with the evaluation, and the network, on the CPU).
    pub predictor: Predictor,
    /// Its weights, for saving.
    pub weights: VarMap,
    /// The split it was trained and evaluated on.
    pub split: Split,
    /// Training and validation loss per epoch.
    pub losses: Vec<(f64, f64)>,
}

/// Inputs and targets of one part.
struct Part {
    x: Tensor,
    y: Tensor,
    up: Vec<bool>,
    returns: Vec<f64>,
}

fn part(
    data: &Dataset,
    spec: &FeatureSpec,
    arch: &Architecture,
    samples: &[usize],
    target: (f64, f64),
) -> Result<Part> {
    let n = samples.len();
    let mut x = Vec::with_capacity(n * arch.input_len());
    let mut y = Vec::with_capacity(n * 2);
    let mut up = Vec::with_capacity(n);
    let mut returns = Vec::with_capacity(n);
    for &k in samples {
        let s = &data.samples[k];
        data.window_into(spec, s.row, arch.window, &mut x);
        let is_up = s.forward_return > 0.0;
        y.push(if is_up { 1.0f32 } else { 0.0 });
        y.push((((s.forward_return - target.0) / target.1) as f32).clamp(-CLIP, CLIP));
        up.push(is_up);
        returns.push(s.forward_return);
    }
    let x = if arch.kind.is_sequence() {
        Tensor::from_vec(x, (n, arch.window, arch.features), &Device::Cpu)?
    } else {
        Tensor::from_vec(x, (n, arch.features), &Device::Cpu)?
    };
    Ok(Part {
        x,
        y: Tensor::from_vec(y, (n, 2), &Device::Cpu)?,
        up,
        returns,
    })
}

/// Cross-entropy of the direction plus half the squared error of the standardized return.
fn loss(out: &Tensor, y: &Tensor) -> Result<Tensor> {
    let logit = out.narrow(1, 0, 1)?;
    let dir = y.narrow(1, 0, 1)?;
    // max(x, 0) − x·y + ln(1 + e^−|x|)
    let bce = ((logit.relu()? - (&logit * &dir)?)? + (logit.abs()?.neg()?.exp()? + 1.0)?.log()?)?
        .mean_all()?;
    let mse = (out.narrow(1, 1, 1)? - y.narrow(1, 1, 1)?)?
        .sqr()?
        .mean_all()?;
    Ok((bce + (mse * 0.5)?)?)
}

fn init_weights(map: &VarMap, seed: u64) -> Result<()> {
    let data = map.data().lock().expect("var map lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = Rng::new(seed);
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let count: usize = dims.iter().product();
        let values: Vec<f32> = if dims.len() >= 2 {
            let fan_in: usize = dims[1..].iter().product();
            let bound = (3.0 / fan_in as f64).sqrt();
            (0..count)
                .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
                .collect()
        } else {
            vec![0.0; count]
        };
        var.set(&Tensor::from_vec(values, dims, &Device::Cpu)?)?;
    }
    Ok(())
}

fn batch_loss(net: &Net, p: &Part, batch: usize) -> Result<f64> {
    let n = p.up.len();
    let (mut total, mut start) = (0.0, 0);
    while start < n {
        let len = batch.min(n - start);
        let l = loss(
            &net.forward(&p.x.narrow(0, start, len)?)?,
            &p.y.narrow(0, start, len)?,
        )?;
        total += f64::from(l.to_scalar::<f32>()?) * len as f64;
        start += len;
    }
    Ok(total / n.max(1) as f64)
}

/// Trains a model on `data` and evaluates it on the held-out parts. `source` says where the data
/// came from, for the metadata.
pub fn train(data: &Dataset, cfg: &TrainConfig, source: &str) -> Result<Trained> {
    cfg.validate()?;
    let split = data.split(cfg.train_fraction, cfg.val_fraction)?;
    if split.train.len() < 10 || split.val.is_empty() || split.test.is_empty() {
        return Err(Error::Data(format!(
            "after purging, {} training, {} validation and {} test samples: too few",
            split.train.len(),
            split.val.len(),
            split.test.len()
        )));
    }
    let spec = FeatureSpec::fit(
        &data.columns,
        split
            .train
            .iter()
            .map(|&k| data.rows[data.samples[k].row].values.as_slice()),
    );
    let train_returns: Vec<f64> = split
        .train
        .iter()
        .map(|&k| data.samples[k].forward_return)
        .collect();
    let tm = train_returns.iter().sum::<f64>() / train_returns.len() as f64;
    let ts = (train_returns
        .iter()
        .map(|r| (r - tm) * (r - tm))
        .sum::<f64>()
        / (train_returns.len() - 1) as f64)
        .sqrt();
    let ts = if ts > 0.0 { ts } else { 1.0 };
    let arch = cfg.architecture(spec.len());
    arch.validate()?;
    let tr = part(data, &spec, &arch, &split.train, (tm, ts))?;
    let va = part(data, &spec, &arch, &split.val, (tm, ts))?;
    let te = part(data, &spec, &arch, &split.test, (tm, ts))?;

    let weights = VarMap::new();
    let net = Net::build(
        &arch,
        VarBuilder::from_varmap(&weights, DType::F32, &Device::Cpu),
    )?;
    init_weights(&weights, cfg.seed)?;
    let vars: Vec<Var> = {
        let data = weights.data().lock().expect("var map lock");
        let mut named: Vec<(&String, &Var)> = data.iter().collect();
        named.sort_by(|a, b| a.0.cmp(b.0));
        named.into_iter().map(|(_, v)| v.clone()).collect()
    };
    let mut opt = AdamW::new(
        vars.clone(),
        ParamsAdamW {
            lr: cfg.learning_rate,
            weight_decay: cfg.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    let mut rng = Rng::new(cfg.seed.wrapping_add(1));
    let mut order: Vec<u32> = (0..tr.up.len() as u32).collect();
    let mut best = (f64::INFINITY, 0usize, Vec::new());
    let mut losses = Vec::new();
    let mut since_best = 0;
    for epoch in 1..=cfg.max_epochs {
        rng.shuffle(&mut order);
        let (mut sum, mut count) = (0.0, 0usize);
        for chunk in order.chunks(cfg.batch) {
            let idx = Tensor::from_slice(chunk, chunk.len(), &Device::Cpu)?;
            let out = net.forward(&tr.x.index_select(&idx, 0)?)?;
            let l = loss(&out, &tr.y.index_select(&idx, 0)?)?;
            opt.backward_step(&l)?;
            sum += f64::from(l.to_scalar::<f32>()?) * chunk.len() as f64;
            count += chunk.len();
        }
        let val_loss = batch_loss(&net, &va, 4096)?;
        losses.push((sum / count as f64, val_loss));
        if !val_loss.is_finite() {
            return Err(Error::Data(format!(
                "validation loss is {val_loss} at epoch {epoch}"
            )));
        }
        if val_loss < best.0 - 1e-6 {
            let snapshot = vars
                .iter()
                .map(|v| v.as_tensor().copy())
                .collect::<Result<Vec<_>, _>>()?;
            best = (val_loss, epoch, snapshot);
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= cfg.patience {
                break;
            }
        }
    }
    for (v, t) in vars.iter().zip(&best.2) {
        v.set(t)?;
    }
    let time = |k: usize| data.rows[data.samples[k].row].time;
    let meta = ModelMeta {
        format: FORMAT,
        version: format!("{}-unsaved", arch.kind.as_str()),
        architecture: arch,
        horizon: data.horizon,
        bars: None,
        spec,
        target_mean: tm,
        target_std: ts,
        training: Training {
            seed: cfg.seed,
            learning_rate: cfg.learning_rate,
            weight_decay: cfg.weight_decay,
            batch: cfg.batch,
            epochs: losses.len(),
            best_epoch: best.1,
            best_val_loss: best.0,
        },
        data: DataRange {
            source: source.to_owned(),
            first: time(0).to_string(),
            last: data
                .rows
                .last()
                .map(|r| r.time.to_string())
                .unwrap_or_default(),
            val_start: split.val_start.to_string(),
            test_start: split.test_start.to_string(),
            rows: data.rows.len(),
            train: split.train.len(),
            val: split.val.len(),
            test: split.test.len(),
            purged: split.purged,
        },
        evaluation: None,
    };
    let mut predictor = Predictor::from_parts(meta, net);
    predictor.meta_mut().evaluation = Some(evaluate(&predictor, data, &split, &tr, &va, &te)?);
    Ok(Trained {
        predictor,
        weights,
        split,
        losses,
    })
}

fn evaluate(
    predictor: &Predictor,
    data: &Dataset,
    split: &Split,
    tr: &Part,
    va: &Part,
    te: &Part,
) -> Result<Evaluation> {
    let model_outputs = |p: &Part| -> Result<(Vec<f64>, Vec<f64>)> {
        let out = predictor.outputs(&p.x)?;
        let probs: Vec<f64> = out.iter().map(|o| o.p_up).collect();
        let expected: Vec<f64> = out.iter().map(|o| o.expected_return).collect();
        Ok((probs, expected))
    };
    let (probs, expected) = model_outputs(te)?;
    // The test samples lie in time: the model's AUC is told from chance with that in mind.
    let timeline = |samples: &[usize]| {
        let rows = samples.iter().map(|&k| &data.rows[data.samples[k].row]);
        let times: Vec<_> = rows.clone().map(|r| r.time).collect();
        let names: Vec<&str> = rows.map(|r| r.instrument.as_str()).collect();
        Timeline::new(&times, &names, data.horizon)
    };
    let model = scores_over(&probs, &te.up, &timeline(&split.test));
    let validation = scores(&model_outputs(va)?.0, &va.up);
    // The test samples whose targets run from one quote midpoint to another.
    let mid: Vec<usize> = (0..split.test.len())
        .filter(|&i| data.samples[split.test[i]].mid_target)
        .collect();
    let model_on_mid = (!mid.is_empty() && mid.len() < probs.len()).then(|| {
        let p: Vec<f64> = mid.iter().map(|&i| probs[i]).collect();
        let up: Vec<bool> = mid.iter().map(|&i| te.up[i]).collect();
        let samples: Vec<usize> = mid.iter().map(|&i| split.test[i]).collect();
        scores_over(&p, &up, &timeline(&samples))
    });
    let up_rate = tr.up.iter().filter(|u| **u).count() as f64 / tr.up.len() as f64;
    let constant = vec![up_rate; te.up.len()];
    let majority = scores(&constant, &te.up);
    // Sign of the last return, with its training hit rate as the probability.
    let last = |k: usize| data.samples[k].last_return.filter(|r| *r != 0.0);
    let (mut hits, mut calls) = (0usize, 0usize);
    for (i, &k) in split.train.iter().enumerate() {
        if let Some(r) = last(k) {
            calls += 1;
            hits += usize::from((r > 0.0) == tr.up[i]);
        }
    }
    let a = if calls > 0 {
        hits as f64 / calls as f64
    } else {
        0.5
    };
    let p_last: Vec<f64> = split
        .test
        .iter()
        .map(|&k| match last(k) {
            Some(r) if r > 0.0 => a,
            Some(_) => 1.0 - a,
            None => up_rate,
        })
        .collect();
    let last_sign = scores(&p_last, &te.up);
    Ok(Evaluation {
        model,
        majority,
        last_sign,
        train_up_rate: up_rate,
        return_correlation: correlation(&expected, &te.returns),
        return_r2: r_squared(&expected, &te.returns, predictor.meta().target_mean),
        validation,
        mid_targets: Some(mid.len()),
        model_on_mid,
        strategy: None,
    })
}
