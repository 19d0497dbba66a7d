//! ML price prediction with candle.
//!
//! In: feature rows (one vector per instrument and bar, the `features` stream of a pipeline) and
//! the bars' closes. Out: trained models (a directory of safetensors weights and a metadata file
//! holding the feature spec, metrics, data range and seed) and, at run time, batched predictions
//! of the next-horizon return: the probability it is positive and its expected size.
//!
//! - [`spec`]: which features a model reads and how they are normalized; saved with every model,
//!   checked against a pipeline's features when the model is loaded.
//! - [`data`]: feature rows joined with forward returns; the time-ordered, purged
//!   train / validation / test split.
//! - [`net`]: three model kinds: a linear/logistic baseline, an MLP, and a GRU over the last K
//!   feature vectors of an instrument. Each has two outputs: the logit of an up move and the
//!   standardized forward return.
//! - [`train`]: deterministic training on the CPU (seeded initialization and batch order), AdamW,
//!   early stopping on the validation loss.
//! - [`metrics`]: accuracy, AUC and log-loss beside naive baselines; how far the AUC lies from
//!   chance, its standard error drawn from blocks of time.
//! - [`store`]: saving and loading a model directory; [`Predictor`] runs batches on a device.
//! - [`bench`]: inference latency per batch size, and CPU-vs-device agreement.

pub mod bench;
pub mod data;
pub mod device;
mod error;
pub mod metrics;
pub mod net;
mod rng;
pub mod spec;
pub mod store;
pub mod train;

pub use crate::device::DeviceChoice;
pub use crate::error::{Error, Result};
pub use crate::net::ModelKind;
pub use crate::spec::FeatureSpec;
pub use crate::store::{ModelMeta, Predictor};
