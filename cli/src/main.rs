//! The `tickflow` command: parses arguments, loads the pipeline, calls into the crates.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

mod kafka;
mod sql;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use tickflow_core::Quantity;
use tickflow_pipelines::config::{DEFAULT_PIPELINE_NAME, Pipeline};
use tickflow_pipelines::{
    Durable, LoadError, ProgressFn, Recovery, RunOptions, format_progress, run,
};
use tickflow_sources::{ReplayFormat, SourceConfig};

// mimalloc: the dataflow allocates and frees many short-lived batches; glibc's allocator
// returns large blocks to the OS and faults them back in on every run (measured in
// benches/RESULTS.md, "Trading chain").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// tickflow: a stream-processing system for day trading.
#[derive(Parser, Debug)]
#[command(name = "tickflow", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a pipeline: sources -> normalize -> operators -> sinks, then print a summary.
    Run(RunArgs),
    /// Check a pipeline file and report every problem with its line and column.
    Validate {
        /// Pipeline file (default: the built-in pipelines/daytrade.toml).
        pipeline: Option<PathBuf>,
    },
    /// The HFT fast path: order book, strategy, risk and simulated venue in one microsecond loop.
    #[command(subcommand)]
    Hft(HftCommand),
    /// Train a price-prediction model on a pipeline's features and print its evaluation.
    Train(TrainArgs),
    /// Model tools: inference latency per batch size, CPU-vs-device agreement, stamping edited
    /// weights.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Ask a running job a question in SQL over Arrow Flight SQL and print the answer.
    ///
    /// Snapshot queries read each stream's recent history (`trades`, `bars`, ...) and current
    /// state (`latest_quotes`, `latest_positions`, ...). With --continuous (or a statement that
    /// starts with CONTINUOUS) the query runs on the live streams and prints each result as its
    /// windows close, e.g. SELECT symbol, window_start, count(*) FROM tumble('trades',
    /// 'ts_event', INTERVAL '1 minute') GROUP BY symbol, window_start.
    Sql {
        /// The statement.
        statement: String,
        /// The job's Flight SQL address (`tickflow run --sql-listen`).
        #[arg(long, default_value = "127.0.0.1:8815", value_name = "HOST:PORT")]
        connect: String,
        /// Run as a continuous query until the job's streams end.
        #[arg(long)]
        continuous: bool,
    },
    /// Replay recorded market data into a Kafka topic (created if missing), keyed by symbol.
    Publish(kafka::PublishArgs),
    /// Signal topics on Kafka.
    #[command(subcommand)]
    Signals(SignalsCommand),
}

#[derive(Subcommand, Debug)]
enum SignalsCommand {
    /// Print a signal topic as it arrives, one line per signal.
    Tail(kafka::TailArgs),
}

#[derive(Subcommand, Debug)]
enum ModelCommand {
    /// Latency per batch and predictions/s of each model kind.
    Bench {
        /// cpu, cuda:N or auto.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Batch sizes (instruments per batch, 1 to 65536).
        #[arg(long, value_delimiter = ',', default_value = "1,64,1024", value_parser = batch_rows)]
        batches: Vec<usize>,
        /// Model kinds.
        #[arg(long, value_delimiter = ',', default_value = "linear,mlp,gru")]
        kinds: Vec<String>,
        /// Timed batches per size (1 to 1000000).
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        iters: u32,
    },
    /// Runs the same models and batch on the CPU and on a device; fails if they disagree.
    Check {
        /// The device to compare with the CPU.
        #[arg(long, default_value = "cuda:0")]
        device: String,
        /// Rows in the batch (1 to 65536).
        #[arg(long, default_value_t = 1024, value_parser = batch_rows)]
        rows: usize,
        /// Largest allowed absolute difference of an output (finite, not negative).
        #[arg(long, default_value_t = 1e-4, value_parser = tolerance)]
        tolerance: f64,
    },
    /// Records the weights now in a model directory as the model's own (its version in
    /// model.json), after they were changed on purpose; weights that would not load for another
    /// reason (a shape, a NaN) are refused and nothing is written.
    Stamp {
        /// The model directory.
        dir: PathBuf,
    },
}

fn model_command(cmd: ModelCommand) -> Result<bool> {
    use tickflow_models::{DeviceChoice, ModelKind, bench};
    let kinds_of = |names: &[String]| -> Result<Vec<ModelKind>> {
        names.iter().map(|n| Ok(ModelKind::parse(n)?)).collect()
    };
    match cmd {
        ModelCommand::Bench {
            device,
            batches,
            kinds,
            iters,
        } => {
            let choice = DeviceChoice::parse(&device)?;
            let rows = bench::latency(&kinds_of(&kinds)?, &batches, choice, iters as usize)?;
            println!(
                "device {device} ({} features per vector; gru window 8; RAYON_NUM_THREADS={})",
                bench::FEATURES,
                std::env::var("RAYON_NUM_THREADS").unwrap_or_default()
            );
            println!("| model | batch | p50 µs | p99 µs | predictions/s (p50) |");
            println!("|---|---:|---:|---:|---:|");
            for r in rows {
                println!(
                    "| {} | {} | {:.1} | {:.1} | {:.0} |",
                    r.kind.as_str(),
                    r.batch,
                    r.p50_us,
                    r.p99_us,
                    r.predictions_per_s
                );
            }
            Ok(true)
        }
        ModelCommand::Check {
            device,
            rows,
            tolerance,
        } => {
            let choice = DeviceChoice::parse(&device)?;
            let all = [ModelKind::Linear, ModelKind::Mlp, ModelKind::Gru];
            let mut ok = true;
            for (kind, diff) in bench::agreement(&all, choice, rows)? {
                let pass = diff <= tolerance;
                ok &= pass;
                println!(
                    "{:<6} cpu vs {device}: largest difference {diff:.3e} over {rows} rows ({})",
                    kind.as_str(),
                    if pass { "ok" } else { "TOO LARGE" }
                );
            }
            Ok(ok)
        }
        ModelCommand::Stamp { dir } => {
            let (before, after) = tickflow_models::store::stamp(&dir)?;
            println!(
                "{}: version {after} (was {before}); it loads",
                dir.display()
            );
            Ok(true)
        }
    }
}

#[derive(Args, Debug)]
struct TrainArgs {
    /// Pipeline whose features the model learns (default: the built-in pipelines/daytrade.toml).
    pipeline: Option<PathBuf>,
    /// Train on recorded data (a file or directory, as `run --data`) instead of the pipeline's
    /// sources.
    #[arg(long, conflicts_with = "synthetic")]
    data: Option<PathBuf>,
    /// The size given to each side of a quote from --data files that record none (TrueFX),
    /// which are not read without it.
    #[arg(long, value_name = "SIZE", value_parser = positive_quantity, requires = "data")]
    quote_size: Option<Quantity>,
    /// Build the pipeline's time bars over trades from quote mid prices instead (for data of
    /// quotes only).
    #[arg(long)]
    mid_bars: bool,
    /// Train on the pipeline's synthetic market (the default when --data is not given).
    #[arg(long)]
    synthetic: bool,
    /// Plant a learnable signal of this strength (0..1) in the synthetic market.
    #[arg(long)]
    signal: Option<f64>,
    /// Seed of the synthetic market.
    #[arg(long)]
    seed: Option<u64>,
    /// Model kind: linear, mlp or gru.
    #[arg(long, default_value = "mlp")]
    model: String,
    /// Forecast horizon, in bars.
    #[arg(long, default_value_t = 1)]
    horizon: usize,
    /// Model directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Seed of initialization and batch order.
    #[arg(long, default_value_t = 7)]
    train_seed: u64,
    /// Most epochs (early stopping usually ends sooner).
    #[arg(long)]
    epochs: Option<usize>,
    /// Hidden widths, comma-separated (mlp: one per layer; gru: the state size).
    #[arg(long, value_delimiter = ',')]
    hidden: Option<Vec<usize>>,
    /// Feature vectors a gru reads.
    #[arg(long)]
    window: Option<usize>,
    /// Features operator to learn from (default: the pipeline's first).
    #[arg(long)]
    features: Option<String>,
    /// Worker threads of the feature runs.
    #[arg(long, short = 'w', default_value_t = 1)]
    workers: usize,
    /// Skip the strategy run over the test part.
    #[arg(long)]
    no_strategy: bool,
}

fn train_command(args: TrainArgs) -> Result<bool> {
    use tickflow_models::ModelKind;
    use tickflow_models::train::TrainConfig;
    let (mut pipeline, origin) = load(args.pipeline.as_ref())?;
    let kind = ModelKind::parse(&args.model)?;
    let source = match &args.data {
        Some(data) => {
            replay_data(&mut pipeline, data, "auto", args.quote_size)?;
            data.display().to_string()
        }
        None => {
            let mut found = None;
            for s in &mut pipeline.sources {
                if let SourceConfig::Synthetic(c) = s {
                    if let Some(seed) = args.seed {
                        c.seed = seed;
                    }
                    if let Some(signal) = args.signal {
                        if !(0.0..=1.0).contains(&signal) {
                            bail!("--signal must be between 0 and 1, got {signal}");
                        }
                        c.signal = signal;
                    }
                    found = Some(format!(
                        "synthetic market of {origin} (seed {}, signal {})",
                        c.seed, c.signal
                    ));
                }
            }
            found.with_context(|| {
                format!(
                    "{origin} has no synthetic source; give --data PATH to train on recorded data"
                )
            })?
        }
    };
    if args.mid_bars {
        mid_bars(&mut pipeline, &origin)?;
    }
    let mut config = TrainConfig::new(kind);
    config.seed = args.train_seed;
    if let Some(e) = args.epochs {
        config.max_epochs = e;
    }
    if let Some(h) = args.hidden {
        if kind == ModelKind::Linear {
            bail!("--hidden: a linear model has no hidden layers (give --model mlp or gru)");
        }
        config.hidden = h;
    }
    if let Some(w) = args.window {
        if !kind.is_sequence() {
            bail!(
                "--window: a {} model reads one feature vector; only a gru reads a window",
                kind.as_str()
            );
        }
        config.window = w;
    }
    eprintln!("tickflow: training a {} model on {source}", kind.as_str());
    let outcome = tickflow_pipelines::train::train(&tickflow_pipelines::train::TrainJob {
        pipeline,
        features: args.features,
        horizon: args.horizon,
        config,
        out: args.out.clone(),
        workers: args.workers,
        source,
        strategy: !args.no_strategy,
    })?;
    println!("{}", tickflow_pipelines::train::report_text(&outcome.meta));
    println!("saved to {}", args.out.display());
    Ok(true)
}

/// Points the pipeline's sources at recorded data.
fn replay_data(
    pipeline: &mut Pipeline,
    data: &std::path::Path,
    format: &str,
    quote_size: Option<Quantity>,
) -> Result<()> {
    let format = ReplayFormat::from_name(format).context("unknown --format")?;
    if !data.exists() {
        bail!("--data {}: no such file or directory", data.display());
    }
    pipeline.sources = vec![SourceConfig::Replay {
        path: data.to_path_buf(),
        format,
        quote_size,
    }];
    Ok(())
}

/// `--mid-bars`: the pipeline's time bars over trades read the quotes' mid prices instead.
fn mid_bars(pipeline: &mut Pipeline, origin: &str) -> Result<()> {
    let changed = pipeline.mid_bars();
    if changed.is_empty() {
        bail!("--mid-bars: {origin} has no time_bars operator reading the trades stream");
    }
    eprintln!(
        "tickflow: bars of quote mid prices in {} (no traded volume)",
        changed.join(", ")
    );
    Ok(())
}

/// A `--quote-size`: a positive decimal.
/// A count of 1 to `max` `units` that one `whole` holds, for a clap value parser.
fn count_of(
    text: &str,
    max: usize,
    units: &str,
    whole: &str,
) -> std::result::Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        Ok(n) => Err(format!("{n} {units}: {whole} has 1 to {max}")),
        Err(e) => Err(format!("`{text}`: {e}")),
    }
}

/// Rows of one inference batch: instruments of one event-time step. The bound keeps a typo
/// (`--batches 10000000`) from allocating gigabytes of input before the first timing.
fn batch_rows(text: &str) -> std::result::Result<usize, String> {
    count_of(text, 65_536, "rows", "a batch")
}

/// Messages of one `hft bench` run: the feed is held in memory whole (40 bytes a message, and
/// a latency sample each), so the bound keeps a typo from asking for more than the machine has.
fn message_count(text: &str) -> std::result::Result<usize, String> {
    count_of(text, 100_000_000, "messages", "a run")
}

/// A tolerance of `model check`: a difference no output may exceed.
fn tolerance(text: &str) -> std::result::Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        Ok(t) => Err(format!("{t}: a tolerance is finite and not negative")),
        Err(e) => Err(format!("`{text}`: {e}")),
    }
}

fn positive_quantity(text: &str) -> std::result::Result<Quantity, String> {
    match Quantity::parse(text) {
        Ok(q) if q.raw() > 0 => Ok(q),
        Ok(_) => Err("must be positive".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Subcommand, Debug)]
enum HftCommand {
    /// Throughput and latency percentiles of the loop, fused and split over two threads.
    Bench {
        /// Offered rate in messages per second (paced; latency is measured from when each
        /// message was due). 0 runs unpaced only.
        #[arg(long, default_value_t = 1_000_000)]
        rate: u64,
        /// Recorded order-by-order data (DBN MBO, LOBSTER messages, Binance capture); default:
        /// the synthetic L3 feed.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Messages per run, 1 to 100000000 (a recorded feed is repeated, the book cleared in
        /// between).
        #[arg(long, default_value_t = 2_000_000, value_parser = message_count)]
        messages: usize,
        /// fused, split or both.
        #[arg(long, default_value = "both", value_parser = ["fused", "split", "both"])]
        mode: String,
        /// Strategy: market-maker or imbalance.
        #[arg(long, default_value = "market-maker")]
        strategy: String,
        /// Do not pin threads to cores 0 and 1.
        #[arg(long)]
        no_pin: bool,
        /// Also search for the highest rate the loop sustains.
        #[arg(long)]
        find_max: bool,
        /// How the split mode's decision thread waits: spin, or yield:N (spin N empty polls,
        /// then yield the core).
        #[arg(long, default_value = "spin")]
        backoff: String,
    },
    /// Runs a strategy over recorded data and prints its orders, fills and PnL.
    Replay {
        /// Recorded order-by-order data (DBN MBO, LOBSTER messages, Binance capture).
        #[arg(long)]
        data: PathBuf,
        /// Strategy: market-maker or imbalance.
        #[arg(long, default_value = "market-maker")]
        strategy: String,
        /// Order size (default: the median size of the feed's adds).
        #[arg(long)]
        qty: Option<String>,
        /// Latency of our orders to the venue, in microseconds of feed time.
        #[arg(long, default_value_t = 0)]
        latency_us: u64,
        /// Orders and fills to print.
        #[arg(long, default_value_t = 20)]
        show: usize,
    },
}

fn hft_command(cmd: HftCommand) -> Result<bool> {
    use tickflow_hft_fastpath::Mode;
    use tickflow_hft_fastpath::cmd::{BenchOptions, FeedSource, ReplayOptions, bench, replay};
    match cmd {
        HftCommand::Bench {
            rate,
            data,
            messages,
            mode,
            strategy,
            no_pin,
            find_max,
            backoff,
        } => {
            let modes = match mode.as_str() {
                "fused" => vec![Mode::Fused],
                "split" => vec![Mode::Split],
                _ => vec![Mode::Fused, Mode::Split],
            };
            let source = data.map_or(FeedSource::Synthetic(messages), FeedSource::File);
            let report = bench(&BenchOptions {
                source,
                messages,
                rate,
                modes,
                strategy,
                pin: !no_pin,
                find_max,
                backoff: tickflow_hft_fastpath::cmd::parse_backoff(&backoff)?,
            })?;
            println!("{report}");
        }
        HftCommand::Replay {
            data,
            strategy,
            qty,
            latency_us,
            show,
        } => {
            let qty = qty
                .map(|q| match Quantity::parse(&q) {
                    Ok(q) if q.raw() > 0 => Ok(q),
                    Ok(_) => Err(anyhow::anyhow!("--qty: {q:?} is not a positive order size")),
                    Err(e) => Err(anyhow::anyhow!("--qty: {e}")),
                })
                .transpose()?;
            let report = replay(&ReplayOptions {
                source: FeedSource::File(data),
                strategy,
                qty,
                latency_ns: latency_us.saturating_mul(1_000),
                show,
            })?;
            println!("{report}");
        }
    }
    Ok(true)
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Pipeline file (TOML). Default: the built-in pipelines/daytrade.toml (synthetic market).
    pipeline: Option<PathBuf>,
    /// Worker threads of the dataflow; output is identical for any number.
    #[arg(long, short = 'w', default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// Directory for file sinks (JSON Lines, Parquet), created if missing.
    #[arg(long, short = 'o', default_value = "tickflow-out")]
    output: PathBuf,
    /// Replay recorded data instead of the pipeline's sources: a file or a directory
    /// (Lean tick zips, Binance .gz captures and depth CSV, Tardis CSV, LOBSTER messages, DBN,
    /// TrueFX CSV, Parquet of trades, quotes or book events).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Format of --data files when it cannot be told from their names.
    #[arg(long, default_value = "auto", value_parser = ReplayFormat::NAMES)]
    format: String,
    /// The size given to each side of a quote from --data files that record none (TrueFX),
    /// which are not read without it.
    #[arg(long, value_name = "SIZE", value_parser = positive_quantity)]
    quote_size: Option<Quantity>,
    /// Build the pipeline's time bars over trades from quote mid prices instead: for data of
    /// quotes only (TrueFX), whose trade bars stay empty.
    #[arg(long)]
    mid_bars: bool,
    /// Seed of the synthetic market (overrides the pipeline file).
    #[arg(long)]
    seed: Option<u64>,
    /// Replay at X times real time (default: as fast as possible).
    #[arg(long, value_name = "X")]
    speed: Option<f64>,
    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Answer SQL over Arrow Flight SQL on this address while the job runs (`tickflow sql`).
    #[arg(long, value_name = "HOST:PORT")]
    sql_listen: Option<std::net::SocketAddr>,
    /// Event-time history each stream keeps for snapshot queries, in seconds.
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    sql_retention: u64,
    /// Keep answering SQL this many seconds after the run ends.
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    sql_linger: u64,
}

fn load(path: Option<&PathBuf>) -> Result<(Pipeline, String)> {
    match path {
        None => Ok((
            Pipeline::default_pipeline(),
            DEFAULT_PIPELINE_NAME.to_owned(),
        )),
        Some(p) => match Pipeline::load(p) {
            Ok(pipeline) => Ok((pipeline, p.display().to_string())),
            Err(LoadError::Invalid(errors)) => bail!("{errors}"),
            Err(e) => Err(e.into()),
        },
    }
}

fn run_command(args: RunArgs) -> Result<bool> {
    let (mut pipeline, origin) = load(args.pipeline.as_ref())?;
    if let Some(data) = &args.data {
        replay_data(&mut pipeline, data, &args.format, args.quote_size)?;
    }
    if args.mid_bars {
        mid_bars(&mut pipeline, &origin)?;
    }
    if let Some(seed) = args.seed {
        let mut found = false;
        for s in &mut pipeline.sources {
            if let SourceConfig::Synthetic(c) = s {
                c.seed = seed;
                found = true;
            }
        }
        if !found {
            bail!(
                "--seed sets the seed of the synthetic market, but this run has no synthetic source (it replays recorded data)"
            );
        }
    }
    let started = Instant::now();
    let progress: Option<ProgressFn> = if args.quiet {
        None
    } else {
        Some(Arc::new(move |p: &tickflow_pipelines::Progress| {
            eprintln!("{}", format_progress(p, started.elapsed()))
        }))
    };
    eprintln!(
        "tickflow: running {} ({origin}) on {} worker{}",
        pipeline.name,
        args.workers,
        if args.workers == 1 { "" } else { "s" }
    );
    // A live job's queries share its durability and checkpoints, which are opened first.
    let commits = pipeline.live_commits();
    let durable = Arc::new(Durable::default());
    let recovery = match commits {
        Some(_) => Recovery::open(&pipeline, usize::from(args.workers))?,
        None => None,
    };
    let job = sql::start(
        &mut pipeline,
        &origin,
        &sql::SqlSettings {
            listen: args.sql_listen,
            retention_secs: args.sql_retention,
        },
        &args.output,
        commits.map(|every| sql::Live {
            flush_every: every / 2,
            durable: &durable,
            recovery: recovery.as_ref(),
        }),
    )?;
    // SIGINT or SIGTERM stops a job cleanly; a job following Kafka topics runs until then.
    let follows = commits.is_some();
    let opts = RunOptions {
        workers: usize::from(args.workers),
        output_dir: args.output.clone(),
        speed: args.speed,
        progress,
        tap: job.as_ref().map(sql::Job::tap),
        query_feeds: job.as_ref().map(|j| j.feeds.clone()).unwrap_or_default(),
        stop: Some(stop_on_signals(follows)),
        durable,
        recovery,
        settle: job.as_ref().map(sql::Job::settle),
        ..RunOptions::default()
    };
    let summary = run(&pipeline, &opts).with_context(|| format!("running {origin}"))?;
    println!("{summary}");
    let mut ok = summary.errors.is_empty();
    if let Some(job) = job {
        ok &= job.finish();
        if args.sql_linger > 0
            && let Some(addr) = job.address
        {
            eprintln!(
                "tickflow: the run has ended; answering SQL on {addr} for {} s more",
                args.sql_linger
            );
            // A stop request ends the wait.
            let until = Instant::now() + std::time::Duration::from_secs(args.sql_linger);
            while Instant::now() < until && !STOP.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
    Ok(ok)
}

static STOP: AtomicBool = AtomicBool::new(false);
/// Whether the job follows Kafka topics (its stop also commits offsets), for the message.
static LIVE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    if STOP.swap(true, Ordering::SeqCst) {
        // A second signal: the user does not want to wait for the drain.
        // SAFETY: `_exit` is async-signal-safe.
        #[allow(unsafe_code)]
        unsafe {
            libc::_exit(130)
        };
    }
    let msg: &[u8] = if LIVE.load(Ordering::SeqCst) {
        b"tickflow: stopping: what was read is processed and written, then its offsets are committed (signal again to exit at once)\n"
    } else {
        b"tickflow: stopping: what was read is processed and written (signal again to exit at once)\n"
    };
    // SAFETY: `write` is async-signal-safe; the message is a static byte string. Said here,
    // not by a thread that waits for the flag, so it is out before a quick stop has ended.
    #[allow(unsafe_code)]
    unsafe {
        libc::write(libc::STDERR_FILENO, msg.as_ptr().cast(), msg.len());
    }
}

/// Makes SIGINT and SIGTERM (what Kubernetes sends a pod it stops) set a flag: the job then
/// stops reading, processes and writes what it has read (flushed files, Parquet footers, a
/// live job's offsets committed), prints its summary and exits 0. A second signal exits at
/// once.
#[allow(unsafe_code)]
fn stop_on_signals(live: bool) -> &'static AtomicBool {
    LIVE.store(live, Ordering::SeqCst);
    let handler = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only uses atomics, `write` and `_exit`, all async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
    &STOP
}

/// candle sizes the thread pool of each CPU matrix product from `RAYON_NUM_THREADS`; when it is
/// unset it reads the CPU affinity from `/proc` and `/sys` on every product, which costs more
/// than the product itself (a 64-row MLP batch: 186 µs unset, 15 µs with it set;
/// benches/RESULTS.md). One thread, because the dataflow already runs a worker per core and a
/// batch of a few hundred rows gains nothing from a pool. A value the user set is kept.
#[allow(unsafe_code)]
fn single_threaded_inference() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: called first thing in `main`, before any other thread exists, so nothing can
        // read the environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
}

fn main() -> ExitCode {
    single_threaded_inference();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run_command(args),
        Command::Validate { pipeline } => load(pipeline.as_ref()).and_then(|(mut p, origin)| {
            sql::check_queries(&mut p, &origin)?;
            let models = tickflow_pipelines::check_operators(&p).with_context(|| origin.clone())?;
            println!(
                "{origin}: ok ({} source(s), {} operator(s), {} sink(s), {} quer{})",
                p.sources.len(),
                p.operators.len(),
                p.sinks.len(),
                p.queries.len(),
                if p.queries.len() == 1 { "y" } else { "ies" }
            );
            // The models loaded and checked, and the devices they would run on.
            for (op, predict) in &models {
                println!("  model {op}: {}", predict.predictor().describe());
            }
            Ok(true)
        }),
        Command::Sql {
            statement,
            connect,
            continuous,
        } => sql::query_command(&connect, &statement, continuous),
        Command::Hft(cmd) => hft_command(cmd),
        Command::Publish(args) => kafka::publish_command(args),
        Command::Signals(SignalsCommand::Tail(args)) => kafka::tail_command(args),
        Command::Train(args) => train_command(args),
        Command::Model(cmd) => model_command(cmd),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {}", tickflow_core::describe(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
