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
use crate::operator::{Emitter, Operator, decode_state, encode_state};

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
