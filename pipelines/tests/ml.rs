//! Training on the pipeline's own features: a planted signal is learned, no signal shows no
//! skill; the predict operator in a running pipeline; bad models refused at start.

use std::path::Path;

use tickflow_core::Timestamp;
use tickflow_models::metrics::MIN_BLOCKS;
use tickflow_models::train::TrainConfig;
use tickflow_models::{DeviceChoice, ModelKind, Predictor};
use tickflow_pipelines::train::{TrainJob, collect_dataset, report_text, train};
use tickflow_pipelines::{Pipeline, RunOptions, run};

/// A synthetic market with a planted signal of the given strength, rolled into 30-second bars.
fn market_text(signal: f64, seed: u64, horizons: &str) -> String {
    format!(
        r#"
[pipeline]
name = "ml-test"
[[source]]
kind = "synthetic"
instruments = 16
seed = {seed}
duration = "6h30m"
events_per_second = 120
signal = {signal}
[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "30s"
[[operator]]
name = "indicators"
kind = "indicators"
input = "bars"
[[operator]]
name = "features"
kind = "features"
input = "indicators"
quotes = "quotes"
horizons = {horizons}
"#
    )
}

fn market(signal: f64, seed: u64) -> Pipeline {
    Pipeline::parse(&market_text(signal, seed, "[1, 5]"), "ml-test.toml").unwrap()
}

/// The market of `seed` with a predict operator on `model` (`extra` lines added to it) and
/// signal rules on its predictions, both written as JSON Lines.
fn with_model(seed: u64, horizons: &str, model: &Path, extra: &str) -> Pipeline {
    let text = format!(
        r#"{}
[[operator]]
name = "predictions"
kind = "predict"
input = "features"
model = "{}"
{extra}
[[operator]]
name = "signals"
kind = "signals"
input = "predictions"
buy = "p_up > 0.55"
sell = "p_up < 0.45"
[[sink]]
kind = "jsonl"
streams = ["predictions", "signals"]
"#,
        market_text(1.0, seed, horizons),
        model.display()
    );
    Pipeline::parse(&text, "ml-predict.toml").unwrap()
}

fn job(pipeline: Pipeline, kind: ModelKind, out: &Path) -> TrainJob {
    TrainJob {
        pipeline,
        features: None,
        horizon: 1,
        config: TrainConfig::new(kind),
        out: out.to_path_buf(),
        workers: 2,
        source: "synthetic".into(),
        strategy: false,
    }
}

/// Trains an MLP on recorded `files` (paths under the recorded data, copied into a directory
/// of their own) through the features of [`market_text`], trading its predictions over the test
/// part when `strategy` is set; `None` without the recorded data.
fn train_on_recorded(
    files: &[&str],
    strategy: bool,
) -> Option<tickflow_models::metrics::Evaluation> {
    let data = tickflow_sources::sample_data()?;
    let day = tempfile::tempdir().unwrap();
    for f in files {
        let name = Path::new(f).file_name().unwrap();
        std::fs::copy(data.join(f), day.path().join(name)).unwrap();
    }
    let synthetic = market_text(0.0, 1, "[1, 5]");
    let (start, end) = (
        synthetic.find("kind = \"synthetic\"").unwrap(),
        synthetic.find("signal = 0").unwrap() + "signal = 0".len(),
    );
    let text = format!(
        "{}kind = \"replay\"\npath = {:?}{}",
        &synthetic[..start],
        day.path(),
        &synthetic[end..]
    );
    let out = tempfile::tempdir().unwrap();
    let mut j = job(
        Pipeline::parse(&text, "ml-recorded.toml").unwrap(),
        ModelKind::Mlp,
        &out.path().join("m"),
    );
    j.source = day.path().display().to_string();
    j.strategy = strategy;
    let outcome = train(&j).unwrap();
    let e = outcome.meta.evaluation.expect("an evaluation");
    eprintln!("{e}");
    Some(e)
}

#[test]
fn trained_on_recorded_equities_the_report_tells_mid_to_mid_targets_apart() {
    // One day of IBM (trades and quotes) and of AIG (trades only): IBM's targets run from one
    // quote midpoint to another, AIG's from trade price to trade price, with bid-ask bounce.
    let Some(e) = train_on_recorded(
        &[
            "us-equities/tick/ibm_20131008_trade.zip",
            "us-equities/tick/ibm_20131008_quote.zip",
            "us-equities/tick/aig_20131008_trade.zip",
        ],
        false,
    ) else {
        return;
    };
    let m = e.mid_targets.unwrap();
    assert!(m > e.model.n / 4 && m < e.model.n * 3 / 4, "{e}");
    let on_mid = e.model_on_mid.as_ref().unwrap();
    assert_eq!(on_mid.n, m);
    let text = e.to_string();
    assert!(text.contains("model on mid-to-mid only"), "{text}");
    assert!(
        text.contains("from or to a trade price, with bid-ask bounce"),
        "{text}"
    );
}

#[test]
fn trained_on_lobster_messages_the_targets_and_the_strategy_use_their_orderbook_quotes() {
    // LOBSTER's quotes come from the orderbook file beside the messages: every target runs from
    // one quote midpoint to another, and the strategy's orders meet the top of book.
    let Some(e) = train_on_recorded(
        &[
            "lobster/AMZN_2012-06-21_34200000_57600000_message_1.csv",
            "lobster/AMZN_2012-06-21_34200000_57600000_orderbook_1.csv",
        ],
        true,
    ) else {
        return;
    };
    assert!(e.model.n > 50, "{e}");
    assert_eq!(e.mid_targets, Some(e.model.n), "{e}");
    let s = e.strategy.as_ref().expect("a strategy run");
    assert!(s.orders > 0 && s.fills == s.orders, "{s:?}");
}

#[test]
fn every_model_kind_learns_a_planted_signal_and_beats_the_baselines() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [ModelKind::Linear, ModelKind::Mlp, ModelKind::Gru] {
        let mut j = job(market(1.0, 11), kind, &dir.path().join(kind.as_str()));
        // The mlp also trades its predictions over the test part.
        j.strategy = kind == ModelKind::Mlp;
        let outcome = train(&j).unwrap();
        let e = outcome.meta.evaluation.as_ref().unwrap();
        println!("{kind:?}\n{}", report_text(&outcome.meta));
        let best_baseline = e.majority.accuracy.max(e.last_sign.accuracy);
        assert!(e.model.accuracy > best_baseline + 0.04, "{kind:?}: {e}");
        assert!(e.model.auc > 0.6, "{kind:?}: {e}");
        // The size of the return is learned too: better than the training mean out of sample.
        assert!(e.return_r2.unwrap() > 0.05, "{kind:?}: {e}");
        assert!(
            e.to_string().contains("skill at the 1 % level"),
            "{kind:?}: {e}"
        );
        // The synthetic market quotes every instrument throughout: every target runs from one
        // quote midpoint to another.
        assert_eq!(e.mid_targets, Some(e.model.n), "{kind:?}: {e}");
        assert!(
            e.model.log_loss < e.majority.log_loss.min(e.last_sign.log_loss) - 0.01,
            "{kind:?}: {e}"
        );
        assert_eq!(e.strategy.is_some(), kind == ModelKind::Mlp);
        if let Some(s) = &e.strategy {
            assert_eq!(s.from, outcome.meta.data.test_start);
            assert!(s.signals > 0 && s.fills > 0 && s.fees > 0.0, "{s:?}");
        }
    }
}

#[test]
fn without_a_signal_the_evaluation_shows_no_skill() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = train(&job(market(0.0, 11), ModelKind::Mlp, dir.path())).unwrap();
    let e = outcome.meta.evaluation.as_ref().unwrap();
    println!("{}", report_text(&outcome.meta));
    assert!((e.model.auc - 0.5).abs() < 0.04, "{e}");
    assert!((e.model.accuracy - 0.5).abs() < 0.04, "{e}");
    assert!(e.model.log_loss > e.majority.log_loss - 0.01, "{e}");
    assert!(e.return_r2.unwrap() < 0.01, "{e}");
    // And says so: its AUC is not told apart from chance, over blocks of time enough to tell.
    assert!(e.model.blocks.unwrap() >= MIN_BLOCKS, "{e}");
    assert!(e.model.auc_p().unwrap() > 0.05, "{e}");
    assert!(
        e.to_string().contains("not told apart from chance at 5 %"),
        "{e}"
    );
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_predict_operator_batches_each_step_and_signals_trade_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("gru");
    let mut j = job(market(1.0, 11), ModelKind::Gru, &model);
    j.config.max_epochs = 3;
    let meta = train(&j).unwrap().meta;
    let from = "2024-01-02T15:00:00Z";
    let p = with_model(
        12,
        "[1, 5]",
        &model,
        &format!("from = \"{from}\"\ndevice = \"auto\""),
    );
    // The summary names the model and the device `auto` took, and why, where it is the CPU.
    let (_, device) = DeviceChoice::Auto.open_named().unwrap();
    let described = format!("{} (gru, horizon 1 bar) on {device}", meta.version);
    let mut outputs = Vec::new();
    for workers in [1, 3] {
        let out = dir.path().join(format!("out{workers}"));
        let summary = run(
            &p,
            &RunOptions {
                workers,
                output_dir: out.clone(),
                ..RunOptions::default()
            },
        )
        .unwrap();
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        assert_eq!(
            summary.models,
            vec![("predictions".to_string(), described.clone())]
        );
        assert!(
            summary
                .to_string()
                .contains(&format!("\nmodel           predictions: {described}\n")),
            "{summary}"
        );
        outputs.push((
            lines(&out.join("predictions.jsonl")),
            lines(&out.join("signals.jsonl")),
        ));
    }
    let (preds, signals) = &outputs[0];
    // Batches differ with the number of workers (each holds its own instruments), and a matrix
    // product of another height may round differently in the last bits of f32: equal within
    // 1e-6 relative.
    assert_eq!(outputs[1].0.len(), preds.len());
    for (a, b) in preds.iter().zip(&outputs[1].0) {
        assert_eq!(
            (&a["instrument"], &a["ts_event"]),
            (&b["instrument"], &b["ts_event"])
        );
        for k in ["p_up", "expected_return"] {
            let (x, y) = (a[k].as_f64().unwrap(), b[k].as_f64().unwrap());
            assert!((x - y).abs() <= 1e-6 * x.abs().max(1e-3), "{k}: {x} vs {y}");
        }
    }
    assert_eq!(
        outputs[1].1.len(),
        signals.len(),
        "signals on 1 and 3 workers"
    );
    // 16 instruments, one row per 30 s bar ending from 15:00 to 21:00, both included.
    assert_eq!(preds.len(), 16 * 721);
    for p in preds {
        assert!(p["ts_event"].as_str().unwrap() >= from);
        let p_up = p["p_up"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p_up));
        assert_eq!(p["model_version"].as_str().unwrap(), meta.version);
        assert_eq!(p["horizon"], 1);
    }
    assert!(!signals.is_empty());
    assert!(
        signals
            .iter()
            .all(|s| s["reason"].as_str().unwrap().contains("p_up"))
    );
}

#[test]
fn the_predict_operator_gives_what_training_evaluated_on_the_same_rows() {
    // No skew between training and serving: on another day, the predictions of the dataflow
    // (features computed beside the rest of the pipeline, windows kept per instrument, rows
    // batched per step on 3 workers) are the model's outputs on that day's feature rows as
    // training builds and evaluates them (its own feature run, windows from the dataset).
    let dir = tempfile::tempdir().unwrap();
    for kind in [ModelKind::Mlp, ModelKind::Gru] {
        let model = dir.path().join(kind.as_str());
        let mut j = job(market(1.0, 11), kind, &model);
        j.config.max_epochs = 2;
        train(&j).unwrap();
        let out = dir.path().join(format!("run-{}", kind.as_str()));
        let summary = run(
            &with_model(12, "[1, 5]", &model, ""),
            &RunOptions {
                workers: 3,
                output_dir: out.clone(),
                ..RunOptions::default()
            },
        )
        .unwrap();
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        let served = lines(&out.join("predictions.jsonl"));

        let data = collect_dataset(&market(1.0, 12), None, 1, 1).unwrap();
        let predictor = Predictor::load(&model, DeviceChoice::Cpu).unwrap();
        let mut x = Vec::new();
        for row in 0..data.rows.len() {
            data.window_into(&predictor.meta().spec, row, predictor.window(), &mut x);
        }
        let offline = predictor.predict(&x, data.rows.len()).unwrap();
        // Every feature row is predicted, the first of each instrument included (its missing
        // history is the training mean, as in training).
        assert_eq!(served.len(), data.rows.len(), "{kind:?}");
        let mut rows: Vec<(&str, Timestamp, usize)> = data
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.instrument.as_str(), r.time, i))
            .collect();
        rows.sort();
        let mut served: Vec<(String, Timestamp, f64, f64)> = served
            .iter()
            .map(|p| {
                (
                    p["instrument"].as_str().unwrap().to_string(),
                    Timestamp::parse_rfc3339(p["ts_event"].as_str().unwrap()).unwrap(),
                    p["p_up"].as_f64().unwrap(),
                    p["expected_return"].as_f64().unwrap(),
                )
            })
            .collect();
        served.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let mut largest = 0.0f64;
        for ((name, time, i), (s_name, s_time, p_up, expected)) in rows.iter().zip(&served) {
            assert_eq!((*name, *time), (s_name.as_str(), *s_time), "{kind:?}");
            let o = offline[*i];
            largest = largest.max((o.p_up - p_up).abs());
            assert!(
                (o.p_up - p_up).abs() <= 1e-6,
                "{kind:?} {name} {time}: {o:?} vs {p_up}"
            );
            // The standardized return's last bits of f32, in units of the returns' deviation.
            assert!(
                (o.expected_return - expected).abs() <= 1e-6 * predictor.meta().target_std,
                "{kind:?} {name} {time}: {o:?} vs {expected}"
            );
        }
        println!(
            "{kind:?}: {} predictions, p_up within {largest:e}",
            served.len()
        );
    }
}

#[test]
fn bad_training_settings_are_refused_before_the_data_is_read() {
    let dir = tempfile::tempdir().unwrap();
    // Data that cannot be read: a refusal naming it would mean the feature run came first.
    let missing = dir.path().join("no-such-day.csv");
    let text = market_text(1.0, 1, "[1, 5]").replace(
        "kind = \"synthetic\"\ninstruments = 16\nseed = 1\nduration = \"6h30m\"\nevents_per_second = 120\nsignal = 1\n",
        &format!("kind = \"replay\"\npath = \"{}\"\n", missing.display()),
    );
    assert!(text.contains("replay"), "{text}");
    let pipeline = Pipeline::parse(&text, "ml-missing.toml").unwrap();
    let refused = |edit: &dyn Fn(&mut TrainJob)| {
        let mut j = job(pipeline.clone(), ModelKind::Gru, &dir.path().join("model"));
        edit(&mut j);
        train(&j).err().expect("trained").to_string()
    };
    let e = refused(&|j| j.config.window = 100_000);
    assert!(
        e.contains("a window of 100000 vectors; at most 4096"),
        "{e}"
    );
    let e = refused(&|j| j.config.hidden = vec![1 << 40]);
    assert!(e.contains("at most 67108864 are loaded"), "{e}");
    let e = refused(&|j| j.horizon = 0);
    assert!(e.contains("horizon must be at least 1 bar"), "{e}");
    let e = refused(&|j| j.config.val_fraction = 0.5);
    assert!(e.contains("leave room for a test part"), "{e}");
    // And so is an output directory that cannot take the model.
    std::fs::write(dir.path().join("a-file"), "").unwrap();
    let e = refused(&|j| j.out = dir.path().join("a-file"));
    assert!(e.contains("a-file: exists and is not a directory"), "{e}");
    // With good settings, it is the data that is refused; the output directory made for the
    // run is removed again.
    let e = refused(&|j| j.out = dir.path().join("models/new/model"));
    assert!(e.contains("no-such-day.csv"), "{e}");
    assert!(!dir.path().join("models").exists());
    assert!(!dir.path().join("model").exists());
}

#[test]
fn bad_models_stop_the_pipeline_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("mlp");
    let mut j = job(market(1.0, 11), ModelKind::Mlp, &model);
    j.config.max_epochs = 1;
    let trained = train(&j).unwrap();
    assert_eq!(
        trained.meta.bars.as_deref(),
        Some("time bars of 30s over trades")
    );
    assert!(
        report_text(&trained.meta).contains("(14 features of time bars of 30s over trades, "),
        "{}",
        report_text(&trained.meta)
    );
    let start = |p: &Pipeline| {
        let opts = RunOptions {
            output_dir: dir.path().join("out"),
            ..RunOptions::default()
        };
        match run(p, &opts) {
            Ok(_) => panic!("the pipeline started"),
            Err(e) => e.to_string(),
        }
    };
    // The model reads ret_5; this pipeline's features have no 5-bar return.
    let e = start(&with_model(12, "[1, 15]", &model, ""));
    assert!(e.contains("ret_5") && e.contains("does not fit"), "{e}");
    let e = start(&with_model(12, "[1, 5]", &dir.path().join("missing"), ""));
    assert!(
        e.contains("missing") && e.contains("no such model directory"),
        "{e}"
    );
    // The same features over other bars: another interval, or mid-price bars of the quotes.
    let mut minute = with_model(12, "[1, 5]", &model, "");
    for op in &mut minute.operators {
        if let tickflow_pipelines::config::OperatorKind::TimeBars { interval } = &mut op.kind {
            *interval = tickflow_core::Duration::from_secs(60);
        }
    }
    let e = start(&minute);
    assert!(
        e.contains(
            "it was trained on features of time bars of 30s over trades; operator \
             `predictions` reads features of time bars of 1m over trades"
        ),
        "{e}"
    );
    let mut mid = with_model(12, "[1, 5]", &model, "");
    assert_eq!(mid.mid_bars(), ["bars"]);
    let e = start(&mid);
    assert!(
        e.contains("reads features of time bars of 30s over quotes (mid prices)")
            && !e.contains("--mid-bars"),
        "{e}"
    );
    // A model of mid-price bars (quotes-only data) run on trade bars is told how to build them.
    let mut quotes_only = market(1.0, 11);
    quotes_only.mid_bars();
    let mut j = job(quotes_only, ModelKind::Linear, &dir.path().join("fx"));
    j.config.max_epochs = 1;
    train(&j).unwrap();
    let e = start(&with_model(12, "[1, 5]", &dir.path().join("fx"), ""));
    assert!(
        e.contains("trained on features of time bars of 30s over quotes (mid prices)")
            && e.contains("`tickflow run --mid-bars` builds the time bars from quotes"),
        "{e}"
    );
    // A device this build cannot open.
    if DeviceChoice::Cuda(0).open().is_err() {
        let e = start(&with_model(12, "[1, 5]", &model, "device = \"cuda:0\""));
        assert!(e.contains("cuda:0"), "{e}");
    }
    std::fs::write(model.join("model.safetensors"), b"not weights").unwrap();
    let e = start(&with_model(12, "[1, 5]", &model, ""));
    assert!(e.contains("model.safetensors"), "{e}");
    let err = Pipeline::parse(
        &format!("{}\n[[operator]]\nname = \"p\"\nkind = \"predict\"\ninput = \"features\"\nmodel = \"m\"\ndevice = \"tpu\"\n", market_text(1.0, 1, "[1]")),
        "bad.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("bad.toml:") && err.contains("`tpu`"), "{err}");
}
