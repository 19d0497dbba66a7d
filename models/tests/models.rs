//! Training without look-ahead, determinism, saving and loading, and refusal of bad model files.

use std::path::Path;

use tickflow_core::Timestamp;
use tickflow_models::data::{Dataset, Row};
use tickflow_models::store::{self, META, WEIGHTS};
use tickflow_models::train::{TrainConfig, train};
use tickflow_models::{DeviceChoice, ModelKind, Predictor};

/// Eight instruments on a one-minute grid; feature `x` leads the next return, `noise` does not.
fn dataset(bars: usize, perturb_from: Option<i64>) -> Dataset {
    let mut rows = Vec::new();
    let mut state = 12345u64;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    for k in 0..8 {
        let mut price = 100.0;
        let mut x = 0.0;
        for t in 0..bars {
            let time = Timestamp(1_700_000_000_000_000_000 + t as i64 * 60_000_000_000);
            price *= (0.002 * x + 0.004 * uniform()).exp();
            x = uniform();
            rows.push(Row {
                instrument: format!("I{k}"),
                time,
                close: price,
                mid: true,
                values: vec![Some(x), Some(uniform())],
            });
        }
    }
    if let Some(from) = perturb_from {
        // Scramble everything the test part holds, features and prices.
        let mut n = 0u32;
        for r in rows.iter_mut().filter(|r| r.time.nanos() >= from) {
            n += 1;
            r.values = vec![Some(f64::from(n % 7) - 3.0), None];
            r.close = 50.0 + f64::from(n % 101);
        }
    }
    Dataset::new(vec!["x".into(), "noise".into()], rows, 1).unwrap()
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join(WEIGHTS)).unwrap()
}

#[test]
fn training_never_sees_the_test_part_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [ModelKind::Linear, ModelKind::Mlp, ModelKind::Gru] {
        let mut cfg = TrainConfig::new(kind);
        cfg.max_epochs = 8;
        let clean = dataset(400, None);
        let split = clean.split(cfg.train_fraction, cfg.val_fraction).unwrap();
        let a = train(&clean, &cfg, "test").unwrap();
        let b = train(&clean, &cfg, "test").unwrap();
        // Everything the test part holds, features and prices, replaced.
        let scrambled = dataset(400, Some(split.test_start.nanos()));
        let c = train(&scrambled, &cfg, "test").unwrap();
        let save = |t: &tickflow_models::train::Trained, name: &str| {
            let mut meta = t.predictor.meta().clone();
            let d = dir.path().join(format!("{}-{name}", kind.as_str()));
            store::save(&d, &mut meta, &t.weights).unwrap();
            (d, meta)
        };
        let ((da, ma), (db, _), (dc, mc)) = (save(&a, "a"), save(&b, "b"), save(&c, "c"));
        assert_eq!(
            weights(&da),
            weights(&db),
            "{kind:?}: same data and seed, same weights"
        );
        assert_eq!(
            weights(&da),
            weights(&dc),
            "{kind:?}: the test part changed the weights"
        );
        assert_eq!(
            ma.spec, mc.spec,
            "{kind:?}: normalization fitted on training rows only"
        );
        assert_eq!(a.split, c.split);
        // ... while the evaluation does read the test part.
        assert_ne!(ma.evaluation, mc.evaluation);
        let e = ma.evaluation.unwrap();
        assert!(e.model.accuracy > 0.56, "{kind:?}: {e}");
    }
}

#[test]
fn a_saved_model_loads_and_predicts_what_it_predicted_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TrainConfig::new(ModelKind::Gru);
    cfg.max_epochs = 3;
    let data = dataset(200, None);
    let t = train(&data, &cfg, "test").unwrap();
    let mut meta = t.predictor.meta().clone();
    store::save(dir.path(), &mut meta, &t.weights).unwrap();
    assert!(meta.version.starts_with("gru-"));
    let mut p = Predictor::load(dir.path(), DeviceChoice::Cpu).unwrap();
    // Bind to a stream with the columns in another order and one more.
    p.bind(&["extra".into(), "noise".into(), "x".into()])
        .unwrap();
    let rows = [
        [None, Some(0.1), Some(0.3)],
        [Some(1.0), Some(-0.2), Some(-0.4)],
    ];
    let mut input = Vec::new();
    for r in rows {
        for _ in 0..p.window() {
            p.vector_into(&r, &mut input);
        }
    }
    let loaded = p.predict(&input, 2).unwrap();
    let mut mem = t.predictor;
    mem.bind(&["extra".into(), "noise".into(), "x".into()])
        .unwrap();
    assert_eq!(mem.predict(&input, 2).unwrap(), loaded);
    assert!(
        loaded
            .iter()
            .all(|o| (0.0..=1.0).contains(&o.p_up) && o.expected_return.is_finite())
    );
    let e = p.predict(&input[1..], 2).unwrap_err().to_string();
    assert!(e.contains("expected"), "{e}");

    // Saved again over itself, the directory holds the two files and nothing left from the
    // writing; other files in it stay.
    std::fs::write(dir.path().join("notes.txt"), "kept").unwrap();
    store::prepare_dir(dir.path()).unwrap();
    store::save(dir.path(), &mut meta.clone(), &t.weights).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["model.json", "model.safetensors", "notes.txt"]);
    Predictor::load(dir.path(), DeviceChoice::Cpu).unwrap();
    // A directory that cannot take a model is refused before training.
    let file = dir.path().join("notes.txt");
    let e = store::prepare_dir(&file).unwrap_err().to_string();
    assert!(
        e.contains("notes.txt") && e.contains("exists and is not a directory"),
        "{e}"
    );
    let e = store::prepare_dir(&file.join("sub"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("notes.txt/sub"), "{e}");
}

#[test]
fn bad_model_files_are_refused_with_what_does_not_match() {
    let dir = tempfile::tempdir().unwrap();
    let load = |d: &Path| {
        Predictor::load(d, DeviceChoice::Cpu)
            .err()
            .unwrap()
            .to_string()
    };
    assert!(load(&dir.path().join("nope")).contains("no such model directory"));

    let mut cfg = TrainConfig::new(ModelKind::Mlp);
    cfg.max_epochs = 2;
    let t = train(&dataset(200, None), &cfg, "test").unwrap();
    let good = dir.path().join("good");
    let mut meta = t.predictor.meta().clone();
    store::save(&good, &mut meta, &t.weights).unwrap();

    // Feature spec that does not match the pipeline's features.
    let mut p = Predictor::load(&good, DeviceChoice::Cpu).unwrap();
    let e = p
        .bind(&["x".into(), "volume".into()])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("noise") && e.contains("it has: x, volume"),
        "{e}"
    );

    let copy = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in [META, WEIGHTS] {
            std::fs::copy(good.join(f), d.join(f)).unwrap();
        }
        d
    };
    // Weights missing.
    let d = copy("no-weights");
    std::fs::remove_file(d.join(WEIGHTS)).unwrap();
    assert!(load(&d).contains("no model.safetensors"), "{}", load(&d));
    // Metadata that is not JSON.
    let d = copy("bad-json");
    std::fs::write(d.join(META), "{ not json").unwrap();
    assert!(load(&d).contains("model.json"), "{}", load(&d));
    // Wrong shapes: the metadata says 32 → 8 hidden units, the weights have 32 → 16.
    let d = copy("wrong-shape");
    let mut m = meta.clone();
    m.architecture.hidden = vec![32, 8];
    store::write_meta(&d, &m).unwrap();
    let e = load(&d);
    assert!(e.contains("hidden1.weight") && e.contains("[8, 32]"), "{e}");
    // Spec with a column but no statistics for it.
    let d = copy("short-spec");
    let mut m = meta.clone();
    m.spec.mean.pop();
    store::write_meta(&d, &m).unwrap();
    assert!(load(&d).contains("means"), "{}", load(&d));
    // Spec naming one column twice (edited by hand): the model would read it in two places.
    let d = copy("column-twice");
    let mut m = meta.clone();
    m.spec.columns[1] = m.spec.columns[0].clone();
    store::write_meta(&d, &m).unwrap();
    let e = load(&d);
    assert!(
        e.contains(&format!(
            "the feature spec lists column `{}` twice (positions 1 and 2)",
            m.spec.columns[0]
        )),
        "{e}"
    );
    // A horizon of 0 bars forecasts nothing.
    let d = copy("horizon-0");
    let mut m = meta.clone();
    m.horizon = 0;
    store::write_meta(&d, &m).unwrap();
    let e = load(&d);
    assert!(e.contains("horizon 0"), "{e}");
    // A weights file that is not safetensors.
    let d = copy("garbage");
    std::fs::write(d.join(WEIGHTS), b"garbage").unwrap();
    assert!(load(&d).contains("model.safetensors"), "{}", load(&d));
    // Weights with a NaN and an infinity, which every prediction through them would carry.
    let d = copy("not-finite");
    let mut w = candle_core::safetensors::load(d.join(WEIGHTS), &candle_core::Device::Cpu).unwrap();
    let t = &w["hidden1.weight"];
    let mut values = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    values[3] = f32::NAN;
    values[40] = f32::NEG_INFINITY;
    let t = candle_core::Tensor::from_vec(values, t.dims(), &candle_core::Device::Cpu).unwrap();
    w.insert("hidden1.weight".into(), t);
    candle_core::safetensors::save(&w, d.join(WEIGHTS)).unwrap();
    let e = load(&d);
    assert!(
        e.contains("weight `hidden1.weight` holds 2 of 512 values that are NaN or infinite"),
        "{e}"
    );
    // Stamping them as the model's own is refused for the same reason, and writes nothing.
    let before = std::fs::read(d.join(META)).unwrap();
    let e = store::stamp(&d).unwrap_err().to_string();
    assert!(e.contains("NaN or infinite"), "{e}");
    assert_eq!(std::fs::read(d.join(META)).unwrap(), before);
    // Weights of the right shapes and finite, but not the ones the model was saved with: one
    // value changed by hand, or the weights of another training of the same shape beside this
    // model.json (a save over this model cut short between its two files).
    let d = copy("changed");
    let mut w = candle_core::safetensors::load(d.join(WEIGHTS), &candle_core::Device::Cpu).unwrap();
    let t = &w["out.bias"];
    let bumped = (t + 0.25).unwrap();
    w.insert("out.bias".into(), bumped);
    candle_core::safetensors::save(&w, d.join(WEIGHTS)).unwrap();
    let e = load(&d);
    assert!(
        e.contains(&format!(
            "model.safetensors is not the weights file model.json was saved with: model.json \
             names version `{}`",
            meta.version
        )) && e.contains(&format!("tickflow model stamp {}", d.display())),
        "{e}"
    );
    let mut other_cfg = cfg.clone();
    other_cfg.seed += 1;
    let other = train(&dataset(200, None), &other_cfg, "test").unwrap();
    let d2 = dir.path().join("half-saved");
    let mut other_meta = other.predictor.meta().clone();
    store::save(&d2, &mut other_meta, &other.weights).unwrap();
    assert_ne!(other_meta.version, meta.version);
    std::fs::copy(good.join(META), d2.join(META)).unwrap();
    assert!(
        load(&d2).contains("is not the weights file"),
        "{}",
        load(&d2)
    );
    // Stamped, the changed weights are the model's own: a new version, and it loads.
    let (before, after) = store::stamp(&d).unwrap();
    assert_eq!(before, meta.version);
    assert!(after.starts_with("mlp-") && after != before, "{after}");
    let stamped = Predictor::load(&d, DeviceChoice::Cpu).unwrap();
    assert_eq!(stamped.meta().version, after);
    // Metadata asking for a model too large to be meant (a damaged width): refused before
    // anything of that size is made.
    let d = copy("too-large");
    let mut m = meta.clone();
    m.architecture.hidden = vec![1 << 40, 16];
    store::write_meta(&d, &m).unwrap();
    let e = load(&d);
    assert!(e.contains("at most 67108864 are loaded"), "{e}");
}

/// Runs where this build has CUDA and a GPU is present; elsewhere it says so and passes
/// (`tickflow model check --device cuda:0` is the same check for a carried binary).
#[test]
fn cpu_and_gpu_agree_where_a_gpu_exists() {
    if DeviceChoice::Cuda(0).open().is_err() {
        eprintln!("no usable CUDA device in this build or on this machine: nothing to compare");
        return;
    }
    let kinds = [ModelKind::Linear, ModelKind::Mlp, ModelKind::Gru];
    for (kind, diff) in
        tickflow_models::bench::agreement(&kinds, DeviceChoice::Cuda(0), 512).unwrap()
    {
        assert!(diff < 1e-4, "{kind:?}: CPU and GPU differ by {diff}");
    }
}
