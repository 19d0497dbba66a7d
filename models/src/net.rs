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

use candle_core::{D, IndexOp, Module, Tensor};
use candle_nn::{Init, Linear, VarBuilder, linear};
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

/// The most weights a model may have: 2^26, 256 MiB of f32. A model meant to answer a batch of
/// instruments within a watermark step is orders of magnitude smaller; the bound keeps a
/// damaged or mistaken `model.json` from asking for more memory than the machine has.
pub const MAX_PARAMETERS: usize = 1 << 26;

/// The longest window of a sequence model: each instrument keeps this many past vectors.
pub const MAX_WINDOW: usize = 4096;

impl Architecture {
    /// Checks the shape makes sense for the kind, and that it is not beyond
    /// [`MAX_PARAMETERS`] and [`MAX_WINDOW`].
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.features == 0 {
            return bad("a model needs at least one feature".into());
        }
        if self.window > MAX_WINDOW {
            return bad(format!(
                "a window of {} vectors; at most {MAX_WINDOW} are kept",
                self.window
            ));
        }
        match self.kind {
            ModelKind::Linear | ModelKind::Mlp if self.window != 1 => bad(format!(
                "a {} model reads one vector, not a window of {}",
                self.kind.as_str(),
                self.window
            )),
            ModelKind::Linear if !self.hidden.is_empty() => bad(format!(
                "a linear model has no hidden layers, got hidden widths {:?}",
                self.hidden
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
            // The kind's shape holds together: now its size.
            _ => match self.parameters() {
                Some(n) if n <= MAX_PARAMETERS => Ok(()),
                n => bad(format!(
                    "a {} model of {} features and hidden widths {:?} has {} weights; at most \
                     {MAX_PARAMETERS} are loaded",
                    self.kind.as_str(),
                    self.features,
                    self.hidden,
                    n.map_or("more than 2^64".to_string(), |n| n.to_string())
                )),
            },
        }
    }

    /// How many weights (scalars) [`Net::build`] makes for this shape; `None` past `usize`.
    pub fn parameters(&self) -> Option<usize> {
        // A linear layer of `i` inputs and `o` outputs: its matrix and its bias.
        let layer = |i: usize, o: usize| i.checked_mul(o)?.checked_add(o);
        let out = |i: usize| layer(i, 2);
        match self.kind {
            ModelKind::Linear => out(self.features),
            ModelKind::Mlp => {
                let mut total = 0usize;
                let mut width = self.features;
                for &h in &self.hidden {
                    total = total.checked_add(layer(width, h)?)?;
                    width = h;
                }
                total.checked_add(out(width)?)
            }
            ModelKind::Gru => {
                let h = *self.hidden.first()?;
                let gates = h.checked_mul(3)?;
                // Input and hidden matrices, each with its bias.
                layer(self.features, gates)?
                    .checked_add(layer(h, gates)?)?
                    .checked_add(out(h)?)
            }
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
    Gru(Gru, Linear),
}

/// A GRU layer with candle's (and PyTorch's) weights, names and equations:
///
/// ```text
/// r = σ(W_ir x + b_ir + W_hr h + b_hr)
/// z = σ(W_iz x + b_iz + W_hz h + b_hz)
/// n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
/// h' = (1 − z) ⊙ n + z ⊙ h
/// ```
///
/// Two things differ from `candle_nn::rnn::GRU`, neither in what it computes beyond the last
/// bits of f32: the input projections of every step come from one matrix product before the
/// loop, and on the CPU tanh is taken as 2σ(2x) − 1 (candle's is the C library's scalar
/// `tanhf`, which was two thirds of a GRU batch's time; σ costs one `expf`). Each step is ten
/// tensor operations (twelve on the CPU): r and z come from one sum and one σ.
#[derive(Clone, Debug)]
pub struct Gru {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
    hidden: usize,
}

impl Gru {
    /// Takes (or creates) `weight_ih_l0` `[3·hidden, features]`, `weight_hh_l0`
    /// `[3·hidden, hidden]`, `bias_ih_l0` and `bias_hh_l0` `[3·hidden]` through `vb`.
    pub fn new(features: usize, hidden: usize, vb: VarBuilder<'_>) -> Result<Self> {
        let w = |rows, cols, name| {
            vb.get_with_hints((rows, cols), name, candle_nn::init::DEFAULT_KAIMING_UNIFORM)
        };
        let b = |name| vb.get_with_hints(3 * hidden, name, Init::Const(0.0));
        Ok(Self {
            w_ih: w(3 * hidden, features, "weight_ih_l0")?,
            w_hh: w(3 * hidden, hidden, "weight_hh_l0")?,
            b_ih: b("bias_ih_l0")?,
            b_hh: b("bias_hh_l0")?,
            hidden,
        })
    }

    /// The hidden state after the last step of `x` (`[batch, window, features]`, oldest first),
    /// starting from zero: `[batch, hidden]`.
    pub fn last_state(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, window, features) = x.dims3()?;
        let h3 = self.hidden;
        let gates_x = x
            .reshape((batch * window, features))?
            .matmul(&self.w_ih.t()?)?
            .broadcast_add(&self.b_ih)?
            .reshape((batch, window, 3 * h3))?;
        let w_hh = self.w_hh.t()?;
        let mut h = Tensor::zeros((batch, h3), x.dtype(), x.device())?;
        for t in 0..window {
            let gx = gates_x.i((.., t, ..))?;
            let gh = h.matmul(&w_hh)?.broadcast_add(&self.b_hh)?;
            // r and z in one sum and one σ; h' = (1 − z) ⊙ n + z ⊙ h as n + z ⊙ (h − n).
            let rz = candle_nn::ops::sigmoid(
                &(gx.narrow(D::Minus1, 0, 2 * h3)? + gh.narrow(D::Minus1, 0, 2 * h3)?)?,
            )?;
            let (r, z) = (rz.narrow(D::Minus1, 0, h3)?, rz.narrow(D::Minus1, h3, h3)?);
            let gate_n = |g: &Tensor| g.narrow(D::Minus1, 2 * h3, h3);
            let n = tanh(&(gate_n(&gx)? + (r * gate_n(&gh)?)?)?)?;
            h = (&n + (z * (&h - &n)?)?)?;
        }
        Ok(h)
    }
}

/// tanh. On the CPU as 2σ(2x) − 1, within 2.4e-7 of the C library's `tanhf` over the whole
/// line; elsewhere the device's own tanh, one kernel instead of three (a GPU's time goes by
/// the operation, not by the arithmetic).
fn tanh(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() {
        candle_nn::ops::sigmoid(&x.affine(2.0, 0.0)?)?.affine(2.0, -1.0)
    } else {
        x.tanh()
    }
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
                let gru = Gru::new(arch.features, h, vb.pp("gru"))?;
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
            Net::Gru(gru, out) => out.forward(&gru.last_state(x)?)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::VarMap;
    use candle_nn::rnn::{GRUConfig, RNN};

    use super::*;
    use crate::rng::Rng;

    fn random(rng: &mut Rng, dims: &[usize], scale: f64) -> Tensor {
        let n = dims.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| ((rng.uniform() * 2.0 - 1.0) * scale) as f32)
            .collect();
        Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
    }

    #[test]
    fn the_gru_computes_what_candles_gru_computes_on_the_same_weights() {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let ours = Gru::new(5, 7, vb.pp("gru")).unwrap();
        // The same variables, by name.
        let theirs = candle_nn::rnn::gru(5, 7, GRUConfig::default(), vb.pp("gru")).unwrap();
        assert_eq!(map.all_vars().len(), 4);
        let mut rng = Rng::new(3);
        for var in map.data().lock().unwrap().values() {
            // Biases too, so that every term of the equations is exercised.
            var.set(&random(&mut rng, var.dims(), 0.8)).unwrap();
        }
        // Inputs up to ±4 reach the gates' saturated ends as well as their middle.
        let x = random(&mut rng, &[33, 6, 5], 4.0);
        let a = ours.last_state(&x).unwrap();
        let b = theirs.seq(&x).unwrap().last().unwrap().h().clone();
        assert_eq!(a.dims(), &[33, 7]);
        let scalar = |t: Tensor| t.to_scalar::<f32>().unwrap();
        // The states are not trivially alike: they spread over most of (−1, 1).
        let spread = scalar(b.max_all().unwrap()) - scalar(b.min_all().unwrap());
        assert!(spread > 1.0, "states span {spread}");
        let diff = scalar((a - b).unwrap().abs().unwrap().max_all().unwrap());
        assert!(diff < 1e-6, "largest difference {diff}");
    }

    #[test]
    fn the_parameter_count_is_what_a_built_model_holds_and_is_bounded() {
        let arch = |kind, features, window, hidden: &[usize]| Architecture {
            kind,
            features,
            window,
            hidden: hidden.to_vec(),
        };
        for a in [
            arch(ModelKind::Linear, 7, 1, &[]),
            arch(ModelKind::Mlp, 7, 1, &[32, 16]),
            arch(ModelKind::Mlp, 3, 1, &[5]),
            arch(ModelKind::Gru, 7, 12, &[16]),
        ] {
            let map = VarMap::new();
            Net::build(&a, VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu)).unwrap();
            let held: usize = map.all_vars().iter().map(|v| v.elem_count()).sum();
            assert_eq!(a.parameters(), Some(held), "{a:?}");
        }
        // Refused before anything is built: too many weights, a product past usize, too long
        // a window.
        let e = arch(ModelKind::Mlp, 40, 1, &[1 << 20, 64])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("hidden widths [1048576, 64] has 110100674 weights; at most 67108864"),
            "{e}"
        );
        let e = arch(ModelKind::Gru, 40, 8, &[1 << 62])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 2^64"), "{e}");
        let e = arch(ModelKind::Gru, 40, 5000, &[16])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("window of 5000 vectors; at most 4096"), "{e}");
        // A shape that does not hold together is told as such, not as a size.
        let e = arch(ModelKind::Gru, 40, 8, &[])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("gru needs one state size"), "{e}");
        // What the kind does not have is refused, not dropped.
        let e = arch(ModelKind::Linear, 7, 1, &[8])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("a linear model has no hidden layers"), "{e}");
        let e = arch(ModelKind::Mlp, 7, 4, &[32])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a mlp model reads one vector, not a window of 4"),
            "{e}"
        );
        assert!(arch(ModelKind::Gru, 40, 4096, &[1024]).validate().is_ok());
    }

    #[test]
    fn tanh_through_the_sigmoid_is_the_c_librarys_within_rounding() {
        let xs: Vec<f32> = (-40_000..=40_000).map(|i| i as f32 * 5e-4).collect();
        let t = Tensor::from_vec(xs.clone(), xs.len(), &Device::Cpu).unwrap();
        let ours: Vec<f32> = tanh(&t).unwrap().to_vec1().unwrap();
        let worst = xs
            .iter()
            .zip(&ours)
            .map(|(x, y)| (x.tanh() - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 2.4e-7, "largest difference {worst}");
        assert_eq!(ours[0], -1.0);
        assert_eq!(ours[xs.len() - 1], 1.0);
        assert_eq!(ours[40_000], 0.0);
    }
}
