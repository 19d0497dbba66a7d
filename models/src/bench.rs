//! Inference latency and device agreement, for `tickflow model bench` and `tickflow model check`.
//!
//! Both use real model directories: a model of each kind is trained for one epoch on seeded
//! random data (the weights' values do not change the cost of a forward pass), saved, and loaded
//! on the device under test, so what is timed is exactly what the predict operator runs: the
//! batch copied into a tensor on the device, the forward pass, the outputs copied back.

use std::path::Path;
use std::time::Instant;

use tickflow_core::Timestamp;

use crate::data::{Dataset, Row};
use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::net::ModelKind;
use crate::rng::Rng;
use crate::store::{self, Predictor};
use crate::train::{TrainConfig, train};

/// Features of the benchmark models (the default pipeline's feature count).
pub const FEATURES: usize = 14;

/// Writes a model of `kind` over [`FEATURES`] random columns into `dir`.
pub fn make_model(kind: ModelKind, dir: &Path) -> Result<()> {
    let mut rng = Rng::new(99);
    let columns: Vec<String> = (0..FEATURES).map(|i| format!("f{i}")).collect();
    let mut rows = Vec::new();
    for k in 0..4 {
        let mut price = 100.0;
        for t in 0..200 {
            price *= 1.0 + 0.01 * (rng.uniform() - 0.5);
            rows.push(Row {
                instrument: format!("I{k}"),
                time: Timestamp(t * 60_000_000_000),
                close: price,
                mid: true,
                values: (0..FEATURES).map(|_| Some(rng.uniform())).collect(),
            });
        }
    }
    let data = Dataset::new(columns, rows, 1)?;
    let mut cfg = TrainConfig::new(kind);
    cfg.max_epochs = 1;
    let t = train(&data, &cfg, "benchmark (random data)")?;
    let mut meta = t.predictor.meta().clone();
    store::save(dir, &mut meta, &t.weights)
}

/// A batch of `rows` random inputs for `p`.
fn batch(p: &Predictor, rows: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..rows * p.window() * p.features())
        .map(|_| (rng.uniform() * 4.0 - 2.0) as f32)
        .collect()
}

/// Latency of one batch size.
#[derive(Clone, Debug)]
pub struct Latency {
    /// Model kind.
    pub kind: ModelKind,
    /// Rows per batch.
    pub batch: usize,
    /// Median and 99th percentile per batch, in microseconds.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Predictions per second at the median.
    pub predictions_per_s: f64,
}

/// Times `iters` batches of each size on `device`, after a warm-up (the first CUDA kernel use
/// compiles PTX).
pub fn latency(
    kinds: &[ModelKind],
    batches: &[usize],
    device: DeviceChoice,
    iters: usize,
) -> Result<Vec<Latency>> {
    let dir = tempfile::tempdir().map_err(|e| Error::io(Path::new("temp"), e))?;
    let mut out = Vec::new();
    for &kind in kinds {
        let d = dir.path().join(kind.as_str());
        make_model(kind, &d)?;
        let mut p = Predictor::load(&d, device)?;
        p.bind(&p.meta().spec.columns.clone())?;
        for &b in batches {
            let input = batch(&p, b, b as u64);
            for _ in 0..iters.clamp(5, 50) {
                p.predict(&input, b)?;
            }
            let mut times = Vec::with_capacity(iters);
            for _ in 0..iters.max(1) {
                let t = Instant::now();
                let o = p.predict(&input, b)?;
                times.push(t.elapsed().as_secs_f64() * 1e6);
                std::hint::black_box(o);
            }
            times.sort_by(f64::total_cmp);
            let q = |f: f64| times[((times.len() - 1) as f64 * f).round() as usize];
            out.push(Latency {
                kind,
                batch: b,
                p50_us: q(0.5),
                p99_us: q(0.99),
                predictions_per_s: b as f64 / (q(0.5) / 1e6),
            });
        }
    }
    Ok(out)
}

/// Largest absolute difference between the CPU's and `device`'s outputs (p_up and expected
/// return) for each kind, on the same model and batch.
pub fn agreement(
    kinds: &[ModelKind],
    device: DeviceChoice,
    rows: usize,
) -> Result<Vec<(ModelKind, f64)>> {
    let dir = tempfile::tempdir().map_err(|e| Error::io(Path::new("temp"), e))?;
    let mut out = Vec::new();
    for &kind in kinds {
        let d = dir.path().join(kind.as_str());
        make_model(kind, &d)?;
        let cpu = Predictor::load(&d, DeviceChoice::Cpu)?;
        let other = Predictor::load(&d, device)?;
        let input = batch(&cpu, rows, 5);
        let (a, b) = (cpu.predict(&input, rows)?, other.predict(&input, rows)?);
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| {
                (x.p_up - y.p_up)
                    .abs()
                    .max((x.expected_return - y.expected_return).abs())
            })
            .fold(0.0, f64::max);
        out.push((kind, worst));
    }
    Ok(out)
}
