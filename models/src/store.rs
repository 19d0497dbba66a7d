//! A model directory, and running a model on batches.
//!
//! A model directory holds `model.safetensors` (the weights) and `model.json` ([`ModelMeta`]:
//! the architecture, the feature spec, the target's scale, the horizon, the data range, the
//! training settings and seed, and the evaluation). Loading checks everything against
//! everything: a missing file, unparsable metadata, a spec without statistics, a weight missing
//! or of the wrong shape, weights that are not the ones the metadata's version names, is
//! refused with what does not match.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::metrics::Evaluation;
use crate::net::{Architecture, ModelKind, Net};
use crate::spec::FeatureSpec;

/// Version of the metadata layout.
pub const FORMAT: u32 = 1;
/// Weights file in a model directory.
pub const WEIGHTS: &str = "model.safetensors";
/// Metadata file in a model directory.
pub const META: &str = "model.json";

/// What a model was trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataRange {
    /// Where the data came from (a path, or the synthetic market and its seed).
    pub source: String,
    /// First and last bar end, validation and test starts (RFC 3339).
    pub first: String,
    /// Last bar end.
    pub last: String,
    /// Start of the validation part.
    pub val_start: String,
    /// Start of the test part.
    pub test_start: String,
    /// Feature rows, and samples in each part.
    pub rows: usize,
    /// Training samples.
    pub train: usize,
    /// Validation samples.
    pub val: usize,
    /// Test samples.
    pub test: usize,
    /// Samples purged at the part boundaries.
    pub purged: usize,
}

/// How a model was trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Training {
    /// Seed of initialization and batch order.
    pub seed: u64,
    /// Learning rate of AdamW.
    pub learning_rate: f64,
    /// Weight decay of AdamW.
    pub weight_decay: f64,
    /// Mini-batch size.
    pub batch: usize,
    /// Epochs run.
    pub epochs: usize,
    /// The epoch whose weights were kept (lowest validation loss).
    pub best_epoch: usize,
    /// Validation loss of that epoch.
    pub best_val_loss: f64,
}

/// The contents of `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Metadata layout version.
    pub format: u32,
    /// Model version: kind and a hash of the weights.
    pub version: String,
    /// Shape of the model.
    pub architecture: Architecture,
    /// Forecast horizon, in bars.
    pub horizon: usize,
    /// The bars the features were computed over ("time bars of 30s over trades"): a pipeline
    /// whose features are of other bars is refused, since the same columns and horizon mean
    /// other things there. Absent in models saved before it was recorded, and in models not
    /// trained on a pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bars: Option<String>,
    /// Features and their normalization.
    pub spec: FeatureSpec,
    /// Mean of the training targets (forward log returns).
    pub target_mean: f64,
    /// Standard deviation of the training targets.
    pub target_std: f64,
    /// Training settings.
    pub training: Training,
    /// Data range.
    pub data: DataRange,
    /// Evaluation on the held-out parts.
    pub evaluation: Option<Evaluation>,
}

/// FNV-1a, for the weights' content hash.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The version of a model of `kind` whose weights file holds `weights`: the kind and a hash of
/// the file's bytes. `model.json` records it; loading checks the weights against it.
pub fn version_of(kind: ModelKind, weights: &[u8]) -> String {
    format!("{}-{:016x}", kind.as_str(), fnv1a(weights))
}

/// Makes `dir` ready to take a model (created if missing), so that a training run whose output
/// cannot be written is refused before it starts, not after. Returns the topmost directory it
/// created, if any, for [`remove_created`] when the run fails.
pub fn prepare_dir(dir: &Path) -> Result<Option<PathBuf>> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::Model {
            path: dir.display().to_string(),
            reason: "exists and is not a directory".into(),
        });
    }
    let top = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .last();
    let top = top.map(Path::to_path_buf);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let probe = dir.join(format!(".{WEIGHTS}.tmp"));
    let writable = std::fs::write(&probe, b"").and_then(|()| std::fs::remove_file(&probe));
    if let Err(e) = writable {
        if let Some(top) = &top {
            remove_created(dir, top);
        }
        return Err(Error::io(&probe, e));
    }
    Ok(top)
}

/// Removes the directories [`prepare_dir`] created for `dir`, up to `top`, where they are still
/// empty.
pub fn remove_created(dir: &Path, top: &Path) {
    for d in dir.ancestors() {
        if std::fs::remove_dir(d).is_err() || d == top {
            break;
        }
    }
}

/// Puts the finished temporary file `tmp` in place as `dir/name`: synced, then renamed over the
/// file it replaces. A crash leaves the previous file or the new one, never part of one.
fn commit(dir: &Path, tmp: &Path, name: &str) -> Result<()> {
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(tmp, e))?;
    let path = dir.join(name);
    std::fs::rename(tmp, &path).map_err(|e| Error::io(&path, e))?;
    // The rename itself, durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes the weights and the metadata into `dir` (created if missing); fills in the version.
///
/// Each file is replaced whole, the weights first. A model saved over another one, cut short
/// between the two, leaves new weights beside the old `model.json`, which loading refuses (the
/// version does not match), never a model that runs on weights it does not describe.
pub fn save(dir: &Path, meta: &mut ModelMeta, weights: &VarMap) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = dir.join(format!(".{WEIGHTS}.tmp"));
    weights.save(&tmp).map_err(|e| Error::Model {
        path: tmp.display().to_string(),
        reason: e.to_string(),
    })?;
    let bytes = std::fs::read(&tmp).map_err(|e| Error::io(&tmp, e))?;
    commit(dir, &tmp, WEIGHTS)?;
    meta.version = version_of(meta.architecture.kind, &bytes);
    write_meta(dir, meta)
}

/// Rewrites `model.json` (after the evaluation is known), whole.
pub fn write_meta(dir: &Path, meta: &ModelMeta) -> Result<()> {
    let text = serde_json::to_string_pretty(meta).map_err(|e| Error::Model {
        path: dir.join(META).display().to_string(),
        reason: e.to_string(),
    })?;
    let tmp = dir.join(format!(".{META}.tmp"));
    std::fs::write(&tmp, text + "\n").map_err(|e| Error::io(&tmp, e))?;
    commit(dir, &tmp, META)
}

/// Records the weights now in `dir` as the model's own: sets the version in `model.json` to
/// theirs. For weights changed on purpose after training (made or edited by hand); loading
/// refuses weights that do not match the version otherwise. Weights that would be refused for
/// anything else (a shape, a NaN) are refused here too, and nothing is written. Returns the
/// versions before and after.
pub fn stamp(dir: &Path) -> Result<(String, String)> {
    let before = std::fs::read_to_string(dir.join(META))
        .ok()
        .and_then(|t| serde_json::from_str::<ModelMeta>(&t).ok())
        .map(|m| m.version)
        .unwrap_or_default();
    let model = Predictor::open(dir, DeviceChoice::Cpu, true)?;
    write_meta(dir, model.meta())?;
    Ok((before, model.meta().version.clone()))
}

/// The names and shapes of the weights a model of `arch` has.
fn expected_weights(arch: &Architecture) -> Result<Vec<(String, Vec<usize>)>> {
    let map = VarMap::new();
    Net::build(
        arch,
        VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu),
    )?;
    let mut out: Vec<(String, Vec<usize>)> = map
        .data()
        .lock()
        .expect("var map lock")
        .iter()
        .map(|(k, v)| (k.clone(), v.dims().to_vec()))
        .collect();
    out.sort();
    Ok(out)
}

/// A loaded model on its device. Clones share the weights.
#[derive(Clone)]
pub struct Predictor {
    path: String,
    meta: ModelMeta,
    net: Net,
    device: Device,
    /// The device's name, as [`DeviceChoice::open_named`] gives it.
    device_name: String,
    /// Positions of the spec's columns in the input rows, once bound.
    index: Option<Vec<usize>>,
}

/// One prediction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Output {
    /// Probability that the forward return is positive.
    pub p_up: f64,
    /// Expected forward log return.
    pub expected_return: f64,
}

impl Predictor {
    /// Loads and checks a model directory, and puts the weights on `device`.
    pub fn load(dir: &Path, device: DeviceChoice) -> Result<Self> {
        Self::open(dir, device, false)
    }

    /// [`Predictor::load`]; with `take_weights`, weights that pass every other check are taken
    /// as the model's own (the version becomes theirs) instead of refused for not being the
    /// ones the version names.
    fn open(dir: &Path, device: DeviceChoice, take_weights: bool) -> Result<Self> {
        let path = dir.display().to_string();
        let bad = |reason: String| Error::Model {
            path: path.clone(),
            reason,
        };
        if !dir.is_dir() {
            return Err(bad("no such model directory".into()));
        }
        let mpath = dir.join(META);
        let text =
            std::fs::read_to_string(&mpath).map_err(|e| bad(format!("cannot read {META}: {e}")))?;
        let mut meta: ModelMeta =
            serde_json::from_str(&text).map_err(|e| bad(format!("{META}: {e}")))?;
        if meta.format != FORMAT {
            return Err(bad(format!(
                "{META} has format {}, this build reads format {FORMAT}",
                meta.format
            )));
        }
        meta.spec.validate(&path)?;
        meta.architecture
            .validate()
            .map_err(|e| bad(format!("{META}: {e}")))?;
        if meta.architecture.features != meta.spec.len() {
            return Err(bad(format!(
                "the architecture reads {} features but the feature spec lists {}",
                meta.architecture.features,
                meta.spec.len()
            )));
        }
        if meta.horizon == 0 {
            return Err(bad(format!(
                "{META} gives horizon 0; a model forecasts at least 1 bar ahead"
            )));
        }
        if !(meta.target_std.is_finite() && meta.target_std > 0.0 && meta.target_mean.is_finite()) {
            return Err(bad(format!(
                "target scale mean {} std {} is not usable",
                meta.target_mean, meta.target_std
            )));
        }
        let (device, device_name) = device.open_named()?;
        let wpath: PathBuf = dir.join(WEIGHTS);
        if !wpath.is_file() {
            return Err(bad(format!("no {WEIGHTS}")));
        }
        // Read on the CPU, where every value is checked, then put on the device.
        let bytes =
            std::fs::read(&wpath).map_err(|e| bad(format!("cannot read {WEIGHTS}: {e}")))?;
        let weights: HashMap<String, Tensor> =
            candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
                .map_err(|e| bad(format!("{WEIGHTS}: {e}")))?;
        let mut problems = Vec::new();
        let expected = expected_weights(&meta.architecture)?;
        for (name, shape) in &expected {
            match weights.get(name) {
                None => problems.push(format!("weight `{name}` {shape:?} is missing")),
                Some(t) if t.dims() != shape.as_slice() => problems.push(format!(
                    "weight `{name}` has shape {:?} in the file, the model needs {shape:?}",
                    t.dims()
                )),
                Some(t) if t.dtype() != DType::F32 => problems.push(format!(
                    "weight `{name}` is {:?}, the model needs f32",
                    t.dtype()
                )),
                Some(t) => {
                    // A NaN or an infinity in a weight makes every prediction through it one.
                    let values = t.flatten_all()?.to_vec1::<f32>()?;
                    let bad_values = values.iter().filter(|v| !v.is_finite()).count();
                    if bad_values > 0 {
                        problems.push(format!(
                            "weight `{name}` holds {bad_values} of {} values that are NaN or \
                             infinite",
                            values.len()
                        ));
                    }
                }
            }
        }
        let mut extra: Vec<&String> = weights
            .keys()
            .filter(|k| !expected.iter().any(|(n, _)| n == *k))
            .collect();
        extra.sort();
        for name in extra {
            problems.push(format!(
                "weight `{name}` is not part of a {} model",
                meta.architecture.kind.as_str()
            ));
        }
        if !problems.is_empty() {
            return Err(bad(format!(
                "{WEIGHTS} does not match {META}: {}",
                problems.join("; ")
            )));
        }
        // Weights of the right shapes that are not the ones the model was saved with: changed
        // by hand, damaged, or from another training (one cut short while saving over this
        // one). Predictions would carry a version that does not name the weights behind them.
        let found = version_of(meta.architecture.kind, &bytes);
        if take_weights {
            meta.version = found;
        } else if found != meta.version {
            return Err(bad(format!(
                "{WEIGHTS} is not the weights file {META} was saved with: {META} names version \
                 `{}`, the file's content is version `{found}` (damaged, changed, or written by \
                 another training; if it was changed on purpose, `tickflow model stamp {path}` \
                 records it)",
                meta.version
            )));
        }
        let weights = weights
            .into_iter()
            .map(|(name, t)| Ok((name, t.to_device(&device)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        let net = Net::build(
            &meta.architecture,
            VarBuilder::from_tensors(weights, DType::F32, &device),
        )?;
        Ok(Self {
            path,
            meta,
            net,
            device,
            device_name,
            index: None,
        })
    }

    /// A predictor of an in-memory model (after training), on the CPU.
    pub fn from_parts(meta: ModelMeta, net: Net) -> Self {
        Self {
            path: "(in memory)".into(),
            meta,
            net,
            device: Device::Cpu,
            device_name: "cpu".into(),
            index: None,
        }
    }

    /// Binds the model to the columns of a features stream: every column the model reads must
    /// be there.
    pub fn bind(&mut self, columns: &[String]) -> Result<()> {
        self.index = Some(self.meta.spec.bind(columns, &self.path)?);
        Ok(())
    }

    /// The metadata.
    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// The model, its kind and horizon, and where it runs (`cpu`, `cuda:N`, or what `auto` took
    /// and, where it is the CPU, why), in a line.
    pub fn describe(&self) -> String {
        let h = self.meta.horizon;
        format!(
            "{} ({}, horizon {h} bar{}) on {}",
            self.meta.version,
            self.meta.architecture.kind.as_str(),
            if h == 1 { "" } else { "s" },
            self.device_name
        )
    }

    /// The metadata, to add the evaluation once it is known.
    pub(crate) fn meta_mut(&mut self) -> &mut ModelMeta {
        &mut self.meta
    }

    /// Vectors per input.
    pub fn window(&self) -> usize {
        self.meta.architecture.window
    }

    /// Features per vector.
    pub fn features(&self) -> usize {
        self.meta.architecture.features
    }

    /// Appends the normalized vector of one row of the bound stream's columns to `out`.
    /// Panics if [`Predictor::bind`] was not called.
    pub fn vector_into(&self, row: &[Option<f64>], out: &mut Vec<f32>) {
        let index = self
            .index
            .as_ref()
            .expect("Predictor::bind before vector_into");
        for (i, &at) in index.iter().enumerate() {
            out.push(
                self.meta
                    .spec
                    .normalize_one(i, row.get(at).copied().flatten()),
            );
        }
    }

    /// Runs a batch of `rows` inputs (`rows * window * features` values, row-major, each row's
    /// vectors oldest first).
    pub fn predict(&self, input: &[f32], rows: usize) -> Result<Vec<Output>> {
        let arch = &self.meta.architecture;
        if input.len() != rows * arch.input_len() {
            return Err(Error::Config(format!(
                "batch of {rows} rows has {} values, expected {}",
                input.len(),
                rows * arch.input_len()
            )));
        }
        if rows == 0 {
            return Ok(Vec::new());
        }
        let x = if arch.kind.is_sequence() {
            Tensor::from_slice(input, (rows, arch.window, arch.features), &self.device)?
        } else {
            Tensor::from_slice(input, (rows, arch.features), &self.device)?
        };
        self.outputs(&x)
    }

    /// Runs an input tensor already on the device.
    pub fn outputs(&self, x: &Tensor) -> Result<Vec<Output>> {
        let out = self
            .net
            .forward(x)?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?;
        let (m, s) = (self.meta.target_mean, self.meta.target_std);
        Ok(out
            .into_iter()
            .map(|o| Output {
                p_up: 1.0 / (1.0 + (-f64::from(o[0])).exp()),
                expected_return: m + s * f64::from(o[1]),
            })
            .collect())
    }
}
