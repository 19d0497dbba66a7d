//! Training a model on a pipeline's own features.
//!
//! The features a model learns from are computed by the very operators that will feed it at run
//! time: [`collect_dataset`] runs the part of the pipeline that produces its features stream
//! (sources, normalize, bars, indicators, features) and reads back the features and the bars
//! they were computed on; [`train`] trains and evaluates a model on them and writes the model
//! directory, with the evaluation report beside it (`report.txt`, and in `model.json`).
//!
//! The report ends with the PnL of a simple strategy trading on the predictions through the
//! simulated exchange, over the test part only ([`strategy_pnl`]): the same pipeline with a
//! predict operator (`from` the test part's start), signal rules `buy = "p_up > 0.55"`,
//! `sell = "p_up < 0.45"`, risk (long and short, the pipeline's own limits if it has a risk
//! operator), the pipeline's exchange settings (else 2 ms latency, 1 bp slippage, 0.5 bp fees)
//! and a portfolio.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tickflow_models::data::Dataset;
use tickflow_models::store::{self, ModelMeta};
use tickflow_models::train::TrainConfig;

use tickflow_core::{Duration, Price, Timestamp};
use tickflow_models::metrics::StrategyResult;
use tickflow_operators::exchange::ExchangeConfig;
use tickflow_operators::predict::PredictConfig;
use tickflow_operators::risk::RiskConfig;
use tickflow_operators::signals::StrategyConfig;

use crate::config::{OperatorDef, OperatorKind, Pipeline, SinkDef, SinkKind, StreamType};
use crate::runtime::{RunError, RunOptions, run};

/// A training run.
#[derive(Clone, Debug)]
pub struct TrainJob {
    /// The pipeline whose features the model learns (its sources are the training data).
    pub pipeline: Pipeline,
    /// The features operator to learn from; `None` for the pipeline's first one.
    pub features: Option<String>,
    /// Forecast horizon in bars.
    pub horizon: usize,
    /// Model kind and training settings.
    pub config: TrainConfig,
    /// Model directory to write.
    pub out: PathBuf,
    /// Worker threads of the feature run.
    pub workers: usize,
    /// Where the data comes from, for the metadata.
    pub source: String,
    /// Also trade the predictions over the test part and report the PnL.
    pub strategy: bool,
}

/// What a training run produced.
pub struct TrainOutcome {
    /// The saved model's metadata (with its evaluation).
    pub meta: ModelMeta,
    /// Training and validation loss per epoch.
    pub losses: Vec<(f64, f64)>,
}

/// The pipeline cut down to what its features stream needs, writing that stream and its bars
/// as JSON Lines; returns it with the names of the features and bars streams.
pub fn features_pipeline(
    pipeline: &Pipeline,
    features: Option<&str>,
) -> Result<(Pipeline, String, String), RunError> {
    let op = pipeline
        .operators
        .iter()
        .find(|o| {
            matches!(o.kind, OperatorKind::Features { .. })
                && features.is_none_or(|name| o.name == name)
        })
        .ok_or_else(|| {
            RunError::Options(match features {
                Some(name) => format!(
                    "pipeline {} has no features operator `{name}`",
                    pipeline.name
                ),
                None => format!(
                    "pipeline {} has no features operator to learn from (kind = \"features\")",
                    pipeline.name
                ),
            })
        })?;
    // The bars the features' indicator input was computed on.
    let bars = pipeline
        .bars_of(op)
        .filter(|b| pipeline.stream_type(b) == Some(StreamType::Bars))
        .ok_or_else(|| {
            RunError::Options(format!(
                "features `{}` must read an indicators operator over bars",
                op.name
            ))
        })?;
    let mut needed = BTreeSet::new();
    let mut todo = vec![op.name.clone()];
    while let Some(name) = todo.pop() {
        if !needed.insert(name.clone()) {
            continue;
        }
        if let Some(o) = pipeline.operators.iter().find(|o| o.name == name) {
            todo.push(o.input.clone());
            todo.extend(o.kind.extra_inputs().into_iter().map(|(s, _)| s.to_owned()));
        }
    }
    let mut cut = pipeline.clone();
    cut.operators.retain(|o| needed.contains(&o.name));
    cut.sinks = vec![SinkDef {
        kind: SinkKind::Jsonl,
        streams: vec![op.name.clone(), bars.clone()],
        dir: None,
        roll: crate::config::DEFAULT_ROLL,
    }];
    Ok((cut, op.name.clone(), bars))
}

/// Runs the pipeline's feature part over its sources and returns the dataset.
pub fn collect_dataset(
    pipeline: &Pipeline,
    features: Option<&str>,
    horizon: usize,
    workers: usize,
) -> Result<Dataset, RunError> {
    let (cut, feats, bars) = features_pipeline(pipeline, features)?;
    let dir = tempfile::tempdir()
        .map_err(|e| RunError::Options(format!("cannot create a temporary directory: {e}")))?;
    let summary = run(
        &cut,
        &RunOptions {
            workers,
            output_dir: dir.path().to_path_buf(),
            ..RunOptions::default()
        },
    )?;
    if let Some(e) = summary.errors.first() {
        return Err(RunError::Runtime(format!("feature run failed: {e}")));
    }
    Ok(Dataset::load_jsonl(
        &dir.path().join(format!("{feats}.jsonl")),
        &dir.path().join(format!("{bars}.jsonl")),
        horizon,
    )?)
}

/// Trains, evaluates and saves a model.
pub fn train(job: &TrainJob) -> Result<TrainOutcome, RunError> {
    // Refuse a bad setting before the features of a recorded day are computed, not after.
    if job.horizon == 0 {
        return Err(tickflow_models::Error::Config("horizon must be at least 1 bar".into()).into());
    }
    job.config.validate()?;
    // And an output directory that cannot take the model; one made for a run that fails is
    // removed again.
    let created = store::prepare_dir(&job.out)?;
    let outcome = train_into(job);
    if let (Err(_), Some(top)) = (&outcome, &created) {
        store::remove_created(&job.out, top);
    }
    outcome
}

/// [`train`], its settings and output directory checked.
fn train_into(job: &TrainJob) -> Result<TrainOutcome, RunError> {
    let data = collect_dataset(
        &job.pipeline,
        job.features.as_deref(),
        job.horizon,
        job.workers,
    )?;
    let trained = tickflow_models::train::train(&data, &job.config, &job.source)?;
    let mut meta = trained.predictor.meta().clone();
    let (_, features, _) = features_pipeline(&job.pipeline, job.features.as_deref())?;
    meta.bars = job.pipeline.bar_basis(&features);
    store::save(&job.out, &mut meta, &trained.weights)?;
    if job.strategy {
        let result = strategy_pnl(
            &job.pipeline,
            job.features.as_deref(),
            &job.out,
            trained.split.test_start,
            job.workers,
        )?;
        if let Some(e) = meta.evaluation.as_mut() {
            e.strategy = Some(result);
        }
        store::write_meta(&job.out, &meta)?;
    }
    write_report(&job.out, &meta)?;
    Ok(TrainOutcome {
        meta,
        losses: trained.losses,
    })
}

/// Probability thresholds of the evaluation strategy.
pub const STRATEGY_RULES: (&str, &str) = ("p_up > 0.55", "p_up < 0.45");

/// Runs the evaluation strategy: the model in `model_dir` trading from `from` on the pipeline's
/// data, through risk and the simulated exchange.
pub fn strategy_pnl(
    pipeline: &Pipeline,
    features: Option<&str>,
    model_dir: &Path,
    from: Timestamp,
    workers: usize,
) -> Result<StrategyResult, RunError> {
    let (mut p, feats, bars) = features_pipeline(pipeline, features)?;
    let risk = pipeline.operators.iter().find_map(|o| match &o.kind {
        OperatorKind::Risk { config, .. } => Some(config.clone()),
        _ => None,
    });
    let exchange = pipeline.operators.iter().find_map(|o| match &o.kind {
        OperatorKind::Exchange { config, .. } => Some(config.clone()),
        _ => None,
    });
    let op = |name: &str, input: &str, kind| OperatorDef {
        name: name.into(),
        input: input.into(),
        kind,
    };
    p.operators.extend([
        op(
            "model_predictions",
            &feats,
            OperatorKind::Predict {
                config: PredictConfig {
                    model: model_dir.to_path_buf(),
                    device: tickflow_models::DeviceChoice::Cpu,
                    from: Some(from),
                },
            },
        ),
        op(
            "model_signals",
            "model_predictions",
            OperatorKind::Signals {
                strategy: StrategyConfig {
                    name: "model".into(),
                    buy: STRATEGY_RULES.0.into(),
                    sell: STRATEGY_RULES.1.into(),
                    min_holding: Duration::ZERO,
                    cooldown: Duration::ZERO,
                },
            },
        ),
        op(
            "model_orders",
            "model_signals",
            OperatorKind::Risk {
                config: RiskConfig {
                    allow_short: true,
                    kill_switch: false,
                    kill_at: None,
                    ..risk.unwrap_or_default()
                },
                prices: bars.clone(),
                fills: "model_fills".into(),
                rejects: "model_risk_rejects".into(),
            },
        ),
        op(
            "model_fills",
            "model_orders",
            OperatorKind::Exchange {
                config: ExchangeConfig {
                    kill_at: None,
                    ..exchange.unwrap_or(ExchangeConfig {
                        latency: Duration::from_millis(2),
                        slippage_bps: 1.0,
                        fee_bps: 0.5,
                        ..ExchangeConfig::default()
                    })
                },
                quotes: "quotes".into(),
                trades: "trades".into(),
            },
        ),
        op(
            "model_positions",
            "model_fills",
            OperatorKind::Portfolio {
                prices: bars,
                totals: "model_portfolio".into(),
                capital: Price::from_raw(1_000_000 * tickflow_core::FIXED_SCALE),
            },
        ),
    ]);
    p.sinks.clear();
    let summary = run(
        &p,
        &RunOptions {
            workers,
            output_dir: std::env::temp_dir(),
            ..RunOptions::default()
        },
    )?;
    if let Some(e) = summary.errors.first() {
        return Err(RunError::Runtime(format!("strategy run failed: {e}")));
    }
    let count = |name: &str| {
        summary
            .streams
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, c)| *c)
    };
    let t = summary
        .trading
        .as_ref()
        .ok_or_else(|| RunError::Runtime("the strategy run has no trading report".into()))?;
    Ok(StrategyResult {
        rule: format!(
            "buy when {}, sell when {}",
            STRATEGY_RULES.0, STRATEGY_RULES.1
        ),
        from: from.to_string(),
        signals: count("model_signals"),
        orders: t.orders,
        fills: t.executions,
        fees: t.fees.to_f64(),
        pnl: t.final_value.as_ref().map_or(0.0, |v| v.total_pnl.to_f64()),
        total_return: t.total_return,
        max_drawdown: t.max_drawdown,
    })
}

/// The evaluation report as text.
pub fn report_text(meta: &ModelMeta) -> String {
    let d = &meta.data;
    let bars = meta
        .bars
        .as_ref()
        .map(|b| format!(" of {b}"))
        .unwrap_or_default();
    let mut s = format!(
        "model {} ({} features{bars}, horizon {} bar{}), trained on {}\n\
         data {} .. {}: {} rows; {} train, {} validation (from {}), {} test (from {}), {} purged\n\
         training: seed {}, {} epochs, best epoch {} (validation loss {:.5})\n",
        meta.version,
        meta.spec.len(),
        meta.horizon,
        if meta.horizon == 1 { "" } else { "s" },
        d.source,
        d.first,
        d.last,
        d.rows,
        d.train,
        d.val,
        d.val_start,
        d.test,
        d.test_start,
        d.purged,
        meta.training.seed,
        meta.training.epochs,
        meta.training.best_epoch,
        meta.training.best_val_loss,
    );
    if let Some(e) = &meta.evaluation {
        s.push_str(&e.to_string());
    }
    s
}

fn write_report(dir: &Path, meta: &ModelMeta) -> Result<(), RunError> {
    let path = dir.join("report.txt");
    std::fs::write(&path, report_text(meta))
        .map_err(|e| RunError::Options(format!("{}: {e}", path.display())))
}
