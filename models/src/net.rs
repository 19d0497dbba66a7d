//! The model kinds and their forward pass.
//!
//! Every model maps an input batch to two outputs per row: the logit of an up move over the
//! horizon, and the forward return standardized by the training targets' mean and deviation.
//!
//! | kind | input | layers |
//! | --- | --- | --- |
//! | `linear` | `[batch, features]` | one linear layer (logistic regression for the direction, linear regression for the return) |
//! | `mlp` | `[batch, features]` | linear → ReLU → linear → ReLU → linear, widths from `hidden` |
//! | `gru` | `[batch, window, features]`, oldest first | a GRU over the window; its last hidden state → linear |

use candle_core::{Module, Tensor};
use candle_nn::rnn::{GRU, GRUConfig, RNN};
use candle_nn::{Linear, VarBuilder, linear};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The kinds of model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Logistic / linear regression on the current feature vector.
    Linear,
    /// A multi-layer perceptron on the current feature vector.
    Mlp,
    /// A GRU over the last `window` feature vectors of the instrument.
    Gru,
}

impl ModelKind {
    /// Every kind's name.
    pub const NAMES: [&'static str; 3] = ["linear", "mlp", "gru"];

    /// Parses a kind name.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "linear" | "logistic" => Ok(Self::Linear),
            "mlp" => Ok(Self::Mlp),
            "gru" | "sequence" => Ok(Self::Gru),
            _ => Err(Error::Config(format!(
                "model kind `{name}`: expected one of {}",
                Self::NAMES.join(", ")
            ))),
        }
    }

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Mlp => "mlp",
            Self::Gru => "gru",
        }
    }

    /// True for kinds that read a window of past vectors.
    pub fn is_sequence(self) -> bool {
        self == Self::Gru
    }
}

/// Shape of a model: what [`Net::build`] needs besides the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// The kind.
    pub kind: ModelKind,
    /// Features per vector.
    pub features: usize,
    /// Vectors per input (1 unless the kind is a sequence model).
    pub window: usize,
    /// Hidden widths (MLP: one per hidden layer; GRU: the state size).
    pub hidden: Vec<usize>,
}

impl Architecture {
    /// Checks the shape makes sense for the kind.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.features == 0 {
            return bad("a model needs at least one feature".into());
        }
        match self.kind {
            ModelKind::Linear | ModelKind::Mlp if self.window != 1 => bad(format!(
                "a {} model reads one vector, not a window of {}",
                self.kind.as_str(),
                self.window
            )),
            ModelKind::Mlp if self.hidden.is_empty() || self.hidden.contains(&0) => bad(format!(
                "mlp hidden widths {:?}: at least one layer, none empty",
                self.hidden
            )),
            ModelKind::Gru if self.hidden.len() != 1 || self.hidden[0] == 0 || self.window == 0 => {
                bad(format!(
                    "gru needs one state size and a window ≥ 1, got hidden {:?}, window {}",
                    self.hidden, self.window
                ))
            }
            _ => Ok(()),
        }
    }

    /// Input values per row.
    pub fn input_len(&self) -> usize {
        self.features * self.window
    }
}

/// A built model.
#[derive(Clone)]
pub enum Net {
    /// One linear layer.
    Linear(Linear),
    /// Hidden layers then the output layer.
    Mlp(Vec<Linear>, Linear),
    /// The GRU, then the output layer.
    Gru(GRU, Linear),
}

impl Net {
    /// Builds the layers, taking (or creating) weights through `vb`.
    pub fn build(arch: &Architecture, vb: VarBuilder<'_>) -> Result<Self> {
        arch.validate()?;
        Ok(match arch.kind {
            ModelKind::Linear => Net::Linear(linear(arch.features, 2, vb.pp("out"))?),
            ModelKind::Mlp => {
                let mut layers = Vec::new();
                let mut width = arch.features;
                for (i, &h) in arch.hidden.iter().enumerate() {
                    layers.push(linear(width, h, vb.pp(format!("hidden{i}")))?);
                    width = h;
                }
                Net::Mlp(layers, linear(width, 2, vb.pp("out"))?)
            }
            ModelKind::Gru => {
                let h = arch.hidden[0];
                let gru =
                    candle_nn::rnn::gru(arch.features, h, GRUConfig::default(), vb.pp("gru"))?;
                Net::Gru(gru, linear(h, 2, vb.pp("out"))?)
            }
        })
    }

    /// `[batch, 2]` outputs of a batch (`[batch, features]`, or `[batch, window, features]`
    /// for a GRU).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Net::Linear(l) => l.forward(x)?,
            Net::Mlp(layers, out) => {
                let mut h = x.clone();
                for l in layers {
                    h = l.forward(&h)?.relu()?;
                }
                out.forward(&h)?
            }
            Net::Gru(gru, out) => {
                let states = gru.seq(x)?;
                let last = states
                    .last()
                    .ok_or_else(|| Error::Config("empty window".into()))?;
                out.forward(last.h())?
            }
        })
    }
}
