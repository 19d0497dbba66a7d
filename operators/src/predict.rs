//! Predict: a model over the features stream.
//!
//! In: feature rows ([`IndicatorRow`]s of a features operator). Out: [`Prediction`]s. The model
//! (a directory written by `tickflow train`) is loaded when the pipeline starts, on the device
//! the pipeline file names, and bound to the features' columns: a missing or malformed model, or
//! one that reads a column the stream does not have, stops the pipeline before it starts.
//!
//! Per instrument the operator keeps the last `window` normalized vectors (sequence models read
//! them oldest first). All rows of one event-time step — every instrument's bar that ends then —
//! go to the model as one batch: one tensor, one forward pass. Rows before `from` only feed the
//! history. A failed forward pass (it should not happen: shapes are checked at load) skips that
//! step's predictions and is reported on stderr (the first, then every thousandth with the
//! count); the pipeline goes on.
//!
//! A `Predict` is cloned for each worker: the clones share the loaded weights.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use tickflow_core::{IndicatorRow, Prediction, Timestamp};
use tickflow_models::{DeviceChoice, Predictor};

use crate::error::{Error, Result};
use crate::operator::{Emitter, Operator, decode_parts, decode_state, encode_state, regroup};

/// Columns of a prediction as a row stream (what signal rules over predictions can name).
pub const PREDICTION_COLUMNS: [&str; 2] = ["p_up", "expected_return"];

/// Where the model is and where it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictConfig {
    /// Model directory.
    pub model: PathBuf,
    /// Device.
    pub device: DeviceChoice,
    /// No predictions for rows before this time (they still fill the history).
    pub from: Option<Timestamp>,
}

/// The predict operator.
#[derive(Clone)]
pub struct Predict {
    config: PredictConfig,
    predictor: Predictor,
    version: Arc<str>,
    horizon: u32,
    /// Per instrument, the last `window` normalized vectors.
    history: FxHashMap<u32, VecDeque<Vec<f32>>>,
    input: Vec<f32>,
    failures: u64,
}

impl Predict {
    /// Loads the model and binds it to the columns of the features stream.
    pub fn new(config: PredictConfig, input_columns: &[String]) -> Result<Self> {
        let bad = |e: tickflow_models::Error| Error::Config {
            operator: "predict",
            reason: e.to_string(),
        };
        let mut predictor = Predictor::load(&config.model, config.device).map_err(bad)?;
        predictor.bind(input_columns).map_err(bad)?;
        let meta = predictor.meta();
        Ok(Self {
            version: meta.version.as_str().into(),
            horizon: u32::try_from(meta.horizon).unwrap_or(u32::MAX),
            config,
            predictor,
            history: FxHashMap::default(),
            input: Vec::new(),
            failures: 0,
        })
    }
}

impl Operator for Predict {
    type In = IndicatorRow;
    type Out = Prediction;
    fn name(&self) -> &'static str {
        "predict"
    }
    fn on_batch(
        &mut self,
        _t: Timestamp,
        input: &mut Vec<IndicatorRow>,
        out: &mut Emitter<Prediction>,
    ) {
        let window = self.predictor.window();
        let mut rows = Vec::with_capacity(input.len());
        self.input.clear();
        for row in input.drain(..) {
            let mut v = Vec::with_capacity(self.predictor.features());
            self.predictor.vector_into(&row.values, &mut v);
            let h = self.history.entry(row.instrument.0).or_default();
            if h.len() == window {
                h.pop_front();
            }
            h.push_back(v);
            if self.config.from.is_some_and(|from| row.end < from) {
                continue;
            }
            // Missing history (an instrument's first bars) is zeros: the training mean.
            for _ in h.len()..window {
                self.input
                    .extend(std::iter::repeat_n(0.0, self.predictor.features()));
            }
            for v in h.iter() {
                self.input.extend_from_slice(v);
            }
            rows.push((row.instrument, row.end));
        }
        if rows.is_empty() {
            return;
        }
        match self.predictor.predict(&self.input, rows.len()) {
            Ok(outputs) => {
                for ((instrument, end), o) in rows.into_iter().zip(outputs) {
                    out.push(Prediction {
                        instrument,
                        ts_event: end,
                        horizon: self.horizon,
                        p_up: o.p_up,
                        expected_return: o.expected_return,
                        model_version: self.version.clone(),
                    });
                }
            }
            Err(e) => {
                self.failures += 1;
                if self.failures % 1000 == 1 {
                    eprintln!(
                        "predict: model {}: {e}; predictions of this step skipped ({} so far)",
                        self.version, self.failures
                    );
                }
            }
        }
    }
    fn on_watermark(&mut self, _w: Timestamp, _out: &mut Emitter<Prediction>) {}
    fn next_emit(&self) -> Option<Timestamp> {
        None
    }
    fn snapshot(&self) -> Result<Vec<u8>> {
        let sorted: BTreeMap<_, _> = self.history.iter().collect();
        encode_state("predict", &sorted)
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<()> {
        self.history = decode_state("predict", snapshot)?;
        Ok(())
    }
    fn restore_parts(&mut self, parts: &[Vec<u8>], mine: &dyn Fn(u64) -> bool) -> Result<()> {
        let parts: Vec<FxHashMap<u32, VecDeque<Vec<f32>>>> = decode_parts("predict", parts)?;
        self.history = regroup("predict", parts, |i| u64::from(*i), mine)?
            .into_iter()
            .collect();
        Ok(())
    }
}

/// A prediction as a row of [`PREDICTION_COLUMNS`], for signal rules.
pub fn as_row(p: &Prediction, names: &Arc<[String]>) -> IndicatorRow {
    IndicatorRow {
        instrument: p.instrument,
        end: p.ts_event,
        names: names.clone(),
        values: vec![Some(p.p_up), Some(p.expected_return)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickflow_core::InstrumentId;
    use tickflow_models::ModelKind;
    use tickflow_models::bench::{FEATURES, make_model};

    #[test]
    fn histories_spread_over_another_number_of_workers_are_the_ones_of_one() {
        let dir = tempfile::tempdir().unwrap();
        make_model(ModelKind::Gru, dir.path()).unwrap();
        let columns: Vec<String> = (0..FEATURES).map(|i| format!("f{i}")).collect();
        let names: Arc<[String]> = columns.clone().into();
        let make = || {
            Predict::new(
                PredictConfig {
                    model: dir.path().to_path_buf(),
                    device: DeviceChoice::Cpu,
                    from: None,
                },
                &columns,
            )
            .unwrap()
        };
        // Five instruments, each with a history of its own length.
        let mut whole = make();
        let mut out = Emitter::default();
        for m in 1..12i64 {
            let mut rows: Vec<IndicatorRow> = (0..5u32)
                .filter(|i| m > i64::from(*i) * 2)
                .map(|i| IndicatorRow {
                    instrument: InstrumentId(i),
                    end: Timestamp(m * 60),
                    names: names.clone(),
                    values: (0..FEATURES)
                        .map(|f| Some((m * 7 + f as i64 * 3 + i64::from(i)) as f64 / 10.0))
                        .collect(),
                })
                .collect();
            whole.on_batch(Timestamp(m * 60), &mut rows, &mut out);
        }
        assert!(!out.items().is_empty());
        let snapshot = whole.snapshot().unwrap();
        // Spread over two workers by instrument, then gathered on one again: the same state.
        let mut halves = Vec::new();
        for w in 0..2 {
            let mut p = make();
            p.restore_parts(std::slice::from_ref(&snapshot), &|r| {
                crate::adapter::owner(r, 2) == w
            })
            .unwrap();
            let mut owned: Vec<u32> = p.history.keys().copied().collect();
            owned.sort_unstable();
            assert_eq!(
                owned,
                (0..5).filter(|i| i % 2 == w as u32).collect::<Vec<_>>()
            );
            halves.push(p.snapshot().unwrap());
        }
        let mut one = make();
        one.restore_parts(&halves, &|_| true).unwrap();
        assert_eq!(one.snapshot().unwrap(), snapshot);
        // A history in two workers' snapshots is refused.
        let e = make()
            .restore_parts(&[snapshot.clone(), snapshot], &|_| true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is in the snapshots of workers 0 and 1"), "{e}");
    }
}
