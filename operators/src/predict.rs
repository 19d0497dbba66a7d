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
//! count); the pipeline goes on. So is a prediction that is not finite (weights are checked to
//! be finite at load, but a forward pass can still overflow f32): it is left out, never sent on.
//!
//! The histories are normalized by the model they were kept for, so a checkpoint records the
//! model's version with them. A job resumed with another model (retrained into the same
//! directory) drops them and builds them again from the coming bars, as a fresh start would,
//! and says so; histories of vectors of another length are dropped too, and longer histories are
//! cut to the model's window.
//!
//! A `Predict` is cloned for each worker: the clones share the loaded weights.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
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
    /// Predictions left out for not being finite.
    not_finite: u64,
}

/// Per instrument, its history.
type Histories = BTreeMap<u32, VecDeque<Vec<f32>>>;

/// A snapshot of the histories, as written.
#[derive(Serialize)]
struct Snapshot<'a> {
    /// Version of the model that normalized them.
    model: &'a str,
    history: BTreeMap<&'a u32, &'a VecDeque<Vec<f32>>>,
}

/// A snapshot of the histories, as read: with the model's version, or as builds before it was
/// recorded wrote it (the histories alone, keyed by instrument).
enum Kept {
    Versioned { model: String, history: Histories },
    Unversioned(Histories),
}

impl<'de> Deserialize<'de> for Kept {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        #[derive(Deserialize)]
        struct Versioned {
            model: String,
            history: Histories,
        }
        // Not `#[serde(untagged)]`: through its buffer, instrument keys ("7") no longer read as
        // numbers.
        let value = serde_json::Value::deserialize(d)?;
        if value.get("model").is_some() {
            let Versioned { model, history } =
                serde_json::from_value(value).map_err(D::Error::custom)?;
            Ok(Self::Versioned { model, history })
        } else {
            serde_json::from_value(value)
                .map(Self::Unversioned)
                .map_err(D::Error::custom)
        }
    }
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
            not_finite: 0,
        })
    }

    /// The loaded model.
    pub fn predictor(&self) -> &Predictor {
        &self.predictor
    }

    /// The histories of a snapshot this predictor can go on with: none if another model kept
    /// them; otherwise those whose vectors have the model's length, cut to its window.
    fn usable(&self, kept: Kept) -> Histories {
        let history = match kept {
            Kept::Versioned { model, history } if model != *self.version => {
                if !history.is_empty() {
                    eprintln!(
                        "predict: the checkpoint's histories of {} instruments were kept for \
                         model {model}, this pipeline loads {}: they are dropped and built again \
                         from the coming bars",
                        history.len(),
                        self.version
                    );
                }
                return Histories::new();
            }
            Kept::Versioned { history, .. } | Kept::Unversioned(history) => history,
        };
        let (features, window) = (self.predictor.features(), self.predictor.window());
        let mut dropped = 0;
        let usable = history
            .into_iter()
            .filter_map(|(instrument, mut h)| {
                if h.iter().any(|v| v.len() != features) {
                    dropped += 1;
                    return None;
                }
                while h.len() > window {
                    h.pop_front();
                }
                Some((instrument, h))
            })
            .collect();
        if dropped > 0 {
            eprintln!(
                "predict: the checkpoint's histories of {dropped} instruments hold vectors of \
                 another length than model {}'s {features}: they are built again from the coming \
                 bars",
                self.version
            );
        }
        usable
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
            while h.len() >= window {
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
                    if !(o.p_up.is_finite() && o.expected_return.is_finite()) {
                        self.not_finite += 1;
                        if self.not_finite % 1000 == 1 {
                            eprintln!(
                                "predict: model {}: the prediction for instrument {} at {end} is \
                                 not finite (p_up {}, expected return {}); left out ({} so far)",
                                self.version,
                                instrument.0,
                                o.p_up,
                                o.expected_return,
                                self.not_finite
                            );
                        }
                        continue;
                    }
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
        encode_state(
            "predict",
            &Snapshot {
                model: &self.version,
                history: self.history.iter().collect(),
            },
        )
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<()> {
        let kept = decode_state("predict", snapshot)?;
        self.history = self.usable(kept).into_iter().collect();
        Ok(())
    }
    fn restore_parts(&mut self, parts: &[Vec<u8>], mine: &dyn Fn(u64) -> bool) -> Result<()> {
        let parts: Vec<Kept> = decode_parts("predict", parts)?;
        let parts: Vec<Histories> = parts.into_iter().map(|k| self.usable(k)).collect();
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
        let make = || open(dir.path()).unwrap();
        // Five instruments, each with a history of its own length.
        let mut whole = make();
        let mut out = Emitter::default();
        for m in 1..12i64 {
            let mut rows = rows(m, 5, |i, f| {
                (m * 7 + f as i64 * 3 + i64::from(i)) as f64 / 10.0
            });
            rows.retain(|r| m > i64::from(r.instrument.0) * 2);
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

    fn columns() -> Vec<String> {
        (0..FEATURES).map(|i| format!("f{i}")).collect()
    }

    fn open(dir: &std::path::Path) -> Result<Predict> {
        Predict::new(
            PredictConfig {
                model: dir.to_path_buf(),
                device: DeviceChoice::Cpu,
                from: None,
            },
            &columns(),
        )
    }

    /// Rows of minute `m` for instruments `0..n`, their values given by `value(instrument,
    /// feature)`.
    fn rows(m: i64, n: u32, value: impl Fn(u32, usize) -> f64) -> Vec<IndicatorRow> {
        let names: Arc<[String]> = columns().into();
        (0..n)
            .map(|i| IndicatorRow {
                instrument: InstrumentId(i),
                end: Timestamp(m * 60),
                names: names.clone(),
                values: (0..FEATURES).map(|f| Some(value(i, f))).collect(),
            })
            .collect()
    }

    #[test]
    fn histories_kept_for_another_model_are_built_again_and_odd_ones_are_mended() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        make_model(ModelKind::Gru, &a).unwrap();
        let mut first = open(&a).unwrap();
        let window = first.predictor.window();
        let mut out = Emitter::default();
        for m in 1..=(window as i64 + 3) {
            let mut batch = rows(m, 3, |i, f| (m + i64::from(i) + f as i64) as f64 / 10.0);
            first.on_batch(Timestamp(m * 60), &mut batch, &mut out);
        }
        assert!(first.history.values().all(|h| h.len() == window));
        let snapshot = first.snapshot().unwrap();
        let text = String::from_utf8(snapshot.clone()).unwrap();
        assert!(
            text.starts_with(&format!("{{\"model\":\"{}\"", first.version)),
            "{text}"
        );

        // The same model takes them back as they were; a model retrained into the same
        // directory (another version) starts its histories again.
        let mut same = open(&a).unwrap();
        same.restore(&snapshot).unwrap();
        assert_eq!(same.snapshot().unwrap(), snapshot);
        std::fs::create_dir(&b).unwrap();
        for f in [
            tickflow_models::store::META,
            tickflow_models::store::WEIGHTS,
        ] {
            std::fs::copy(a.join(f), b.join(f)).unwrap();
        }
        // Other weights of the same shapes, recorded as the model's own.
        let wpath = b.join(tickflow_models::store::WEIGHTS);
        let mut weights =
            candle_core::safetensors::load(&wpath, &candle_core::Device::Cpu).unwrap();
        let bias = (&weights["out.bias"] + 0.5).unwrap();
        weights.insert("out.bias".into(), bias);
        candle_core::safetensors::save(&weights, &wpath).unwrap();
        let (_, retrained) = tickflow_models::store::stamp(&b).unwrap();
        assert_ne!(retrained, first.version.to_string());
        let mut other = open(&b).unwrap();
        other.restore(&snapshot).unwrap();
        assert!(other.history.is_empty());
        other
            .restore_parts(std::slice::from_ref(&snapshot), &|_| true)
            .unwrap();
        assert!(other.history.is_empty());

        // A snapshot written before versions were recorded is taken back; a history longer than
        // the window is cut to its newest vectors, and one of vectors of another length is
        // dropped.
        let v = |x: f32| vec![x; FEATURES];
        let mut old = BTreeMap::new();
        old.insert(
            0u32,
            (0..window + 4)
                .map(|k| v(k as f32))
                .collect::<VecDeque<_>>(),
        );
        old.insert(1u32, VecDeque::from([v(1.0), vec![1.0; FEATURES + 1]]));
        old.insert(2u32, VecDeque::from([v(2.0)]));
        let mut taken = open(&a).unwrap();
        taken.restore(&serde_json::to_vec(&old).unwrap()).unwrap();
        let mut kept: Vec<_> = taken.history.iter().map(|(k, h)| (*k, h.clone())).collect();
        kept.sort_by_key(|(k, _)| *k);
        assert_eq!(
            kept,
            [
                (0, (4..window + 4).map(|k| v(k as f32)).collect()),
                (2, VecDeque::from([v(2.0)]))
            ]
        );
        // It predicts from them at once.
        let mut out = Emitter::default();
        let mut batch = rows(100, 3, |_, _| 0.5);
        taken.on_batch(Timestamp(6000), &mut batch, &mut out);
        assert_eq!(out.items().len(), 3);
        assert!(taken.history.values().all(|h| h.len() <= window));
    }

    #[test]
    fn a_prediction_that_overflows_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        make_model(ModelKind::Linear, dir.path()).unwrap();
        // Finite weights, so the model loads, but large enough that ten standard deviations
        // above the mean of every feature overflow f32.
        let path = dir.path().join(tickflow_models::store::WEIGHTS);
        let mut weights = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
        for (name, t) in weights.iter_mut() {
            *t = if name == "out.weight" {
                (t.ones_like().unwrap() * 3e38).unwrap()
            } else {
                t.zeros_like().unwrap()
            };
        }
        candle_core::safetensors::save(&weights, &path).unwrap();
        tickflow_models::store::stamp(dir.path()).unwrap();
        let mut p = open(dir.path()).unwrap();
        let spec = p.predictor.meta().spec.clone();
        let mut batch = rows(1, 2, |i, f| {
            spec.mean[f] + f64::from(i) * 10.0 * spec.std[f]
        });
        let mut out = Emitter::default();
        p.on_batch(Timestamp(60), &mut batch, &mut out);
        // Instrument 0 is at the mean: its outputs are the bias, zero.
        let got: Vec<(u32, f64)> = out
            .items()
            .iter()
            .map(|(_, p)| (p.instrument.0, p.p_up))
            .collect();
        assert_eq!(got, [(0, 0.5)]);
        assert_eq!(p.not_finite, 1);
    }

    /// The files of a model of each kind, made once.
    fn model_files() -> &'static [(Vec<u8>, Vec<u8>); 3] {
        static FILES: std::sync::OnceLock<[(Vec<u8>, Vec<u8>); 3]> = std::sync::OnceLock::new();
        FILES.get_or_init(|| {
            [ModelKind::Linear, ModelKind::Mlp, ModelKind::Gru].map(|kind| {
                let dir = tempfile::tempdir().unwrap();
                make_model(kind, dir.path()).unwrap();
                let read = |f| std::fs::read(dir.path().join(f)).unwrap();
                (
                    read(tickflow_models::store::META),
                    read(tickflow_models::store::WEIGHTS),
                )
            })
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// A model whose files are damaged anywhere (bytes set to anything, or to the high byte
        /// of a NaN or an infinity) is refused when the operator is made, or it predicts: never
        /// a NaN or an infinity, and a probability within [0, 1]. Damaged weights are refused
        /// by their version alone; in half the cases the damage is stamped as the model's own
        /// (where stamping takes it), so that what comes after that check meets it too.
        #[test]
        fn a_damaged_model_is_refused_or_predicts_finite_values(
            kind in 0..3usize,
            stamped in proptest::prelude::any::<bool>(),
            edits in proptest::collection::vec(
                (
                    proptest::prelude::any::<bool>(),
                    proptest::prelude::any::<proptest::sample::Index>(),
                    proptest::prop_oneof![
                        proptest::prelude::any::<u8>(),
                        proptest::strategy::Just(0x7f_u8),
                        proptest::strategy::Just(0xff_u8),
                    ],
                ),
                1..4,
            ),
        ) {
            let (meta, weights) = &model_files()[kind];
            let (mut meta, mut weights) = (meta.clone(), weights.clone());
            for (in_meta, at, value) in &edits {
                let file = if *in_meta { &mut meta } else { &mut weights };
                let at = at.index(file.len());
                file[at] = *value;
            }
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(tickflow_models::store::META), &meta).unwrap();
            std::fs::write(dir.path().join(tickflow_models::store::WEIGHTS), &weights).unwrap();
            let weights_changed = weights != model_files()[kind].1;
            if stamped {
                // Refused, writing nothing, where the model would be refused for another
                // reason (model.json unreadable, a shape, a NaN).
                let _ = tickflow_models::store::stamp(dir.path());
            } else if weights_changed {
                proptest::prop_assert!(open(dir.path()).is_err());
            }
            if let Ok(mut p) = open(dir.path()) {
                let mut out = Emitter::default();
                for m in 1..4 {
                    let mut batch =
                        rows(m, 4, |i, f| (m * 3 + i64::from(i) - f as i64) as f64 * 0.7);
                    p.on_batch(Timestamp(m * 60), &mut batch, &mut out);
                }
                for (_, pred) in out.items() {
                    proptest::prop_assert!(
                        (0.0..=1.0).contains(&pred.p_up) && pred.expected_return.is_finite(),
                        "{pred:?}"
                    );
                }
            }
        }
    }
}
