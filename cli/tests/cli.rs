//! The `tickflow` binary as a user runs it: exit codes, messages, summary, files.

use std::process::Command;

mod common;

fn tickflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tickflow"))
}

#[test]
fn validate_accepts_the_default_pipeline() {
    let out = tickflow().arg("validate").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("pipelines/daytrade.toml: ok"));
}

#[test]
fn a_bad_pipeline_exits_non_zero_listing_every_problem_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[[source]]\nkind = \"synthetic\"\ninstrumnets = 3\n\n[[sink]]\nkind = \"csv\"\nstreams = [\"bars\"]\n").unwrap();
    let out = tickflow().arg("run").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:3:1: unknown key `instrumnets`"),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:6:8: unknown sink kind `csv`"),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:7:12: sink writes unknown stream `bars`"),
        "{err}"
    );
}

#[test]
fn run_replays_a_file_and_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("trades.csv");
    std::fs::write(
        &data,
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n\
         binance-futures,BTCUSDT,1582329602111000,1582329602418379,1,buy,9682,0.132\n\
         binance-futures,BTCUSDT,1582329662116000,1582329662418420,2,sell,9681,0.5\n\
         this row is garbage\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = tickflow()
        .args(["run", "-q", "--workers", "2", "--output"])
        .arg(&out_dir)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("records read                 3"),
        "{stdout}"
    );
    assert!(stdout.contains("malformed"), "{stdout}");
    assert!(stdout.contains("every record accounted for"), "{stdout}");
    let bars = std::fs::read_to_string(out_dir.join("bars.jsonl")).unwrap();
    assert_eq!(bars.lines().count(), 2, "two one-minute bars: {bars}");
    assert!(out_dir.join("bars.parquet").exists());
}

/// What a reader of the replay source gives for a file: its records and its rejects' details.
fn read_replay(path: &std::path::Path) -> (usize, Vec<String>) {
    use tickflow_sources::{ReplayFormat, SourceConfig, SourceItem, plan};
    let planned = plan(&[SourceConfig::Replay {
        path: path.to_path_buf(),
        format: ReplayFormat::Auto,
        quote_size: None,
    }])
    .unwrap();
    let mut reader = planned.parts[0].open(&planned.registry).unwrap();
    let (mut records, mut rejects) = (0, Vec::new());
    while let Some(item) = reader.next_item() {
        match item {
            SourceItem::Event(_) => records += 1,
            SourceItem::Bad(r) => rejects.push(r.detail),
        }
    }
    (records, rejects)
}

#[test]
fn a_parquet_file_its_decoder_panics_on_is_a_reject_and_the_run_goes_on_quietly() {
    use tickflow_core::{
        ArrowRecord, InstrumentRegistry, InstrumentSpec, Price, Quantity, SeqNo, Side, Timestamp,
        Trade,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut reg = InstrumentRegistry::new();
    let abc = reg.register(InstrumentSpec {
        symbol: "ABC".into(),
        venue: "XNAS".into(),
        tick_size: Price::from_raw(10_000_000),
        lot_size: Quantity::from_raw(1_000_000_000),
        currency: "USD".into(),
    });
    let trades: Vec<Trade> = (0..20u64)
        .map(|i| Trade {
            instrument: abc,
            ts_event: Timestamp(1_700_000_000_000_000_000 + i as i64 * 1_000_000_000),
            ts_recv: Timestamp(1_700_000_000_000_000_000 + i as i64 * 1_000_000_000),
            price: Price::from_raw(100_000_000_000 + (i as i64 % 3) * 10_000_000),
            size: Quantity::from_raw(1_000_000_000),
            aggressor: Side::Buy,
            trade_id: Some(i + 1),
            suspicious: false,
            seq: SeqNo::new(0, i),
        })
        .collect();
    let batch = Trade::to_record_batch(&trades, &reg).unwrap();
    let mut whole = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut whole, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    // The parquet crate panics on some damaged pages instead of returning an error. Find a
    // byte that, set to 0 or 1, makes it do so: the reader gives that as the file's error.
    let probe = dir.path().join("probe.parquet");
    std::fs::write(&probe, &whole).unwrap();
    assert_eq!(read_replay(&probe), (20, vec![]));
    let failed = "the Parquet decoder failed on damaged data";
    let damaged = (0..whole.len())
        .flat_map(|at| [0u8, 1].map(|v| (at, v)))
        .find_map(|(at, v)| {
            let mut bytes = whole.clone();
            bytes[at] = v;
            std::fs::write(&probe, &bytes).unwrap();
            let (_, rejects) = read_replay(&probe);
            rejects.iter().any(|r| r.contains(failed)).then_some(bytes)
        })
        .expect("no one-byte damage makes the parquet crate panic any more: its guard may go");

    // A run over that file and a good one: the file is a reject, the other file's trades go
    // through, and no panic is printed.
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("trades.parquet"), damaged).unwrap();
    std::fs::write(
        data.join("trades.csv"),
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n\
         binance-futures,BTCUSDT,1582329602111000,1582329602418379,1,buy,9682,0.132\n\
         binance-futures,BTCUSDT,1582329662116000,1582329662418420,2,sell,9681,0.5\n",
    )
    .unwrap();
    let out = tickflow()
        .args(["run", "-q", "--output"])
        .arg(dir.path().join("out"))
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let reject = stdout
        .lines()
        .find(|l| l.contains(failed))
        .unwrap_or_else(|| panic!("no reject names the damage: {stdout}"));
    assert!(
        reject.starts_with("reject ") && reject.contains("trades.parquet:"),
        "{reject}"
    );
    assert!(
        stdout.contains("accepted                     2"),
        "{stdout}"
    );
}

#[test]
fn mid_bars_carry_fx_quotes_through_the_default_chain() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("EURUSD-2024-01.csv");
    // TrueFX quotes of 30 minutes, three a minute, the bid rising 0.0001 a minute; a bad row.
    let mut text = String::new();
    for m in 0..30 {
        for (s, ask_pips) in [(5, 1), (25, 3), (45, 2)] {
            let bid = 10_000 + m * 10;
            text.push_str(&format!(
                "EUR/USD,20240102 14:{:02}:{s:02}.000,1.{bid},1.{}\n",
                30 + m,
                bid + ask_pips
            ));
        }
        if m == 7 {
            text.push_str("EUR/USD,20240102 14:37:50.000,1.10070,NaN\n");
        }
    }
    std::fs::write(&data, text).unwrap();
    let run = |mid: bool| {
        let out_dir = dir.path().join(if mid { "mid" } else { "trades" });
        let mut cmd = tickflow();
        cmd.args(["run", "-q", "--quote-size", "1000000", "--output"])
            .arg(&out_dir)
            .arg("--data")
            .arg(&data);
        if mid {
            cmd.arg("--mid-bars");
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stdout}\n{stderr}");
        let read = |name: &str| std::fs::read_to_string(out_dir.join(name)).unwrap_or_default();
        (stdout, stderr, read("bars.jsonl"), read("indicators.jsonl"))
    };

    let (stdout, _, bars, _) = run(false);
    assert!(
        stdout.contains("records read                91"),
        "{stdout}"
    );
    assert_eq!(bars, "", "quotes alone make no trade bars");

    let (stdout, stderr, bars, indicators) = run(true);
    assert!(
        stderr.contains("tickflow: bars of quote mid prices in bars (no traded volume)"),
        "{stderr}"
    );
    assert!(stdout.contains("every record accounted for"), "{stdout}");
    let bars: Vec<serde_json::Value> = bars
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(bars.len(), 30, "one bar a minute");
    let eighth = &bars[7];
    assert_eq!(eighth["bar_type"], "mid:1m");
    assert_eq!(eighth["start"], "2024-01-02T14:37:00Z");
    // Mids 1.100705, 1.100715, 1.10071: the NaN row is rejected, not averaged.
    assert_eq!(eighth["open"].as_f64(), Some(1.100705));
    assert_eq!(eighth["high"].as_f64(), Some(1.100715));
    assert_eq!(eighth["close"].as_f64(), Some(1.10071));
    assert_eq!(eighth["volume"].as_f64(), Some(0.0));
    assert_eq!(eighth["trade_count"], 3);
    assert_eq!(eighth["vwap"].as_f64(), Some(1.10071));
    assert_eq!(
        indicators.lines().count(),
        30,
        "indicators on every mid bar"
    );

    // A pipeline without trade bars has nothing to change.
    let plain = dir.path().join("plain.toml");
    std::fs::write(&plain, "[[source]]\nkind = \"synthetic\"\n\n[[sink]]\nkind = \"discard\"\nstreams = [\"quotes\"]\n").unwrap();
    let out = tickflow()
        .args(["run", "-q", "--mid-bars"])
        .arg(&plain)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--mid-bars: ")
            && err.contains("plain.toml has no time_bars operator reading the trades stream"),
        "{err}"
    );
}

#[test]
fn seed_without_a_synthetic_source_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("trades.csv");
    std::fs::write(
        &data,
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n",
    )
    .unwrap();
    let out = tickflow()
        .args(["run", "--seed", "3", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--seed sets the seed of the synthetic market")
    );
}

#[test]
fn a_missing_data_path_is_named() {
    let out = tickflow()
        .args(["run", "--data", "/no/such/place"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/place"));
}

#[test]
fn workers_out_of_range_is_a_usage_error() {
    let out = tickflow().args(["run", "--workers", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers"));
}

#[test]
fn hft_bench_refuses_a_run_it_cannot_hold() {
    for n in ["0", "100000000000"] {
        let out = tickflow()
            .args(["hft", "bench", "--mode", "fused", "--messages", n])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{n}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{n} messages: a run has 1 to 100000000")),
            "{err}"
        );
    }
}

#[test]
fn publish_refuses_a_partition_count_before_it_reaches_a_broker() {
    for n in ["0", "200000"] {
        let out = tickflow()
            .args(["publish", "--data", ".", "--topic", "t", "--partitions", n])
            .args(["--brokers", "127.0.0.1:1"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{n}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--partitions") && err.contains("1..=100000"),
            "{err}"
        );
    }
}

#[test]
fn model_tools_refuse_batches_they_cannot_mean() {
    for (args, says) in [
        (
            &["bench", "--batches", "1,0"][..],
            "0 rows: a batch has 1 to 65536",
        ),
        (
            &["bench", "--batches", "100000000"],
            "100000000 rows: a batch has 1 to 65536",
        ),
        (&["bench", "--iters", "0"], "--iters"),
        (&["check", "--device", "cpu", "--rows", "0"], "0 rows"),
        (
            &["check", "--device", "cpu", "--tolerance", "NaN"],
            "a tolerance is finite",
        ),
        (
            &["check", "--device", "cpu", "--tolerance=-1"],
            "a tolerance is finite",
        ),
    ] {
        let out = tickflow().arg("model").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn hft_replay_of_lobster_prints_orders_fills_and_pnl() {
    let Some(data) = tickflow_sources::sample_data() else {
        return;
    };
    let file = data.join("lobster/AMZN_2012-06-21_34200000_57600000_message_1.csv");
    let out = tickflow()
        .args([
            "hft",
            "replay",
            "--strategy",
            "market-maker",
            "--show",
            "5",
            "--data",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("feed: AMZN (57515 messages)"), "{text}");
    assert!(text.contains("first 5 orders and reports"), "{text}");
    assert!(text.contains("PnL"), "{text}");
}

#[test]
fn hft_bench_prints_percentiles_for_both_modes() {
    let out = tickflow()
        .args([
            "hft",
            "bench",
            "--messages",
            "50000",
            "--rate",
            "100000",
            "--no-pin",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "fused, unpaced",
        "fused, paced 100000/s",
        "split, paced 100000/s",
        "tick-to-order",
        "ring hop",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
}

#[test]
fn hft_replay_names_a_file_it_cannot_read() {
    let out = tickflow()
        .args(["hft", "replay", "--data", "/no/such/file_message_1.csv"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/no/such/file_message_1.csv"), "{err}");
    // An order size that would send no order is refused, not run as a replay without trades.
    for q in ["--qty=0", "--qty=-1"] {
        let out = tickflow()
            .args(["hft", "replay", "--data", "/no/such/file_message_1.csv", q])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is not a positive order size"), "{q}: {err}");
    }
}

#[test]
fn train_writes_a_model_that_the_ml_pipeline_trades_on() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines/ml.toml");
    let out = tickflow()
        .current_dir(dir.path())
        .args([
            "train",
            pipeline,
            "--synthetic",
            "--model",
            "linear",
            "--out",
            "models/mlp",
        ])
        .args(["--epochs", "5", "--no-strategy"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "model linear-",
        "majority class",
        "sign of last return",
        "saved to models/mlp",
    ] {
        assert!(stdout.contains(want), "{want}: {stdout}");
    }
    for f in ["model.safetensors", "model.json", "report.txt"] {
        assert!(dir.path().join("models/mlp").join(f).is_file(), "{f}");
    }
    // Validating the pipeline loads the model and says where it would run.
    let out = tickflow()
        .current_dir(dir.path())
        .args(["validate", pipeline])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let version = stdout
        .split("  model predictions: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(version.starts_with("linear-"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "  model predictions: {version} (linear, horizon 1 bar) on cpu\n"
        )),
        "{stdout}"
    );
    // pipelines/ml.toml reads models/mlp, relative to where it runs; another day of the market.
    let out = tickflow()
        .current_dir(dir.path())
        .args(["run", pipeline, "--seed", "43", "-q", "-o", "out"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let preds = std::fs::read_to_string(dir.path().join("out/predictions.jsonl")).unwrap();
    assert_eq!(preds.lines().count(), 16 * 780);
    assert!(
        preds
            .lines()
            .next()
            .unwrap()
            .contains("\"model_version\":\"linear-")
    );

    // Weights changed after training are not run under the version model.json names; stamped
    // as the model's own, they run under a new one.
    let weights = dir.path().join("models/mlp/model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last_weight = bytes.len() - 4; // little-endian f32: its lowest mantissa bit
    bytes[last_weight] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    let out = tickflow()
        .current_dir(dir.path())
        .args(["run", pipeline, "-q", "-o", "out2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not the weights file model.json was saved with")
            && err.contains("tickflow model stamp models/mlp"),
        "{err}"
    );
    assert!(!dir.path().join("out2/predictions.jsonl").exists());
    let out = tickflow()
        .current_dir(dir.path())
        .args(["model", "stamp", "models/mlp"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let first = preds.split("\"model_version\":\"").nth(1).unwrap();
    let was = &first[..first.find('"').unwrap()];
    assert!(
        stdout.contains(&format!("(was {was}); it loads")),
        "{stdout}"
    );
    let stamped = std::fs::read_to_string(dir.path().join("models/mlp/model.json")).unwrap();
    assert!(!stamped.contains(was), "{stamped}");

    // Bad requests are named.
    let out = tickflow()
        .args(["train", "--model", "transformer", "--out"])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("model kind `transformer`"));
    // A shape the kind does not have is refused, not dropped from the model trained.
    for (args, says) in [
        (
            ["--model", "linear", "--hidden", "8"],
            "--hidden: a linear model has no hidden layers",
        ),
        (
            ["--model", "mlp", "--window", "4"],
            "--window: a mlp model reads one feature vector",
        ),
    ] {
        let out = tickflow()
            .arg("train")
            .args(args)
            .arg("--out")
            .arg(dir.path().join("x"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
        assert!(!dir.path().join("x").exists());
    }
    let out = tickflow()
        .current_dir(dir.path().join("out"))
        .args(["run", pipeline, "-q"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("models/mlp") && err.contains("no such model directory"),
        "{err}"
    );
}

#[test]
fn a_run_stopped_by_sigterm_writes_what_it_read_and_says_it_stopped() {
    // A paced replay of the synthetic day (about four minutes at 100x) stopped part-way, as
    // Kubernetes stops a pod: every record read is processed and written, files are whole,
    // and the summary says the run was stopped.
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let mut child = tickflow()
        .args(["run", "--speed", "100", "--output"])
        .arg(&out_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first progress line (every 2 s), so records are flowing.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut log = common::read_until(
        &mut stderr,
        |line| line.contains("records read"),
        "it reported progress",
    );
    let started = std::time::Instant::now();
    common::sigterm(&child);
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    std::io::Read::read_to_string(&mut stderr, &mut log).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {stdout}{log}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "the stop took {:?}",
        started.elapsed()
    );
    assert!(log.contains("tickflow: stopping"), "{log}");
    assert!(stdout.contains("stopped         on request"), "{stdout}");
    assert!(stdout.contains("every record accounted for"), "{stdout}");
    let read: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("records read"))
        .map(|n| n.trim().replace(',', "").parse().unwrap())
        .unwrap();
    assert!(
        read > 0 && read < 2_000_000,
        "stopped part-way through the day's 2.3 M records: {read}"
    );
    // Every file whole: JSON Lines parse line by line, Parquet files have their footers, and
    // both hold the rows the summary says were written.
    let written = |sink: &str| -> u64 {
        stdout
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(&format!("wrote {}", out_dir.join(sink).display()))
            })
            .and_then(|rest| rest.split_whitespace().next())
            .map(|n| n.replace(',', "").parse().unwrap())
            .unwrap_or_else(|| panic!("no row count for {sink}: {stdout}"))
    };
    let bars = written("bars.jsonl");
    assert!(bars > 0, "{stdout}");
    let text = std::fs::read_to_string(out_dir.join("bars.jsonl")).unwrap();
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    assert_eq!(text.lines().count() as u64, bars);
    let file = std::fs::File::open(out_dir.join("bars.parquet")).unwrap();
    let rows: usize = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(rows as u64, written("bars.parquet"));
    assert_eq!(rows as u64, bars);
}
