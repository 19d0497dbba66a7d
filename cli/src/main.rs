//! The `tickflow` command: parses arguments, loads the pipeline, calls into the crates.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use tickflow_pipelines::config::{DEFAULT_PIPELINE_NAME, Pipeline};
use tickflow_pipelines::{LoadError, ProgressFn, RunOptions, format_progress, run};
use tickflow_sources::{ReplayFormat, SourceConfig};

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
    /// (Lean tick zips, Binance .gz captures, Tardis CSV, LOBSTER messages, DBN).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Format of --data files when it cannot be told from their names.
    #[arg(long, default_value = "auto", value_parser = ReplayFormat::NAMES)]
    format: String,
    /// Seed of the synthetic market (overrides the pipeline file).
    #[arg(long)]
    seed: Option<u64>,
    /// Replay at X times real time (default: as fast as possible).
    #[arg(long, value_name = "X")]
    speed: Option<f64>,
    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
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
        let format = ReplayFormat::from_name(&args.format).context("unknown --format")?;
        if !data.exists() {
            bail!("--data {}: no such file or directory", data.display());
        }
        pipeline.sources = vec![SourceConfig::Replay {
            path: data.clone(),
            format,
        }];
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
    let opts = RunOptions {
        workers: usize::from(args.workers),
        output_dir: args.output.clone(),
        speed: args.speed,
        progress,
        ..RunOptions::default()
    };
    let summary = run(&pipeline, &opts).with_context(|| format!("running {origin}"))?;
    println!("{summary}");
    Ok(summary.errors.is_empty())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run_command(args),
        Command::Validate { pipeline } => load(pipeline.as_ref()).map(|(p, origin)| {
            println!(
                "{origin}: ok ({} source(s), {} operator(s), {} sink(s))",
                p.sources.len(),
                p.operators.len(),
                p.sinks.len()
            );
            true
        }),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
