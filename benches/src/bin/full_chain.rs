//! The full default chain — source → normalize → bars → indicators (the standard 27 values) →
//! signals → pre-trade risk → simulated exchange → differential-dataflow portfolio — timed end to
//! end, on the synthetic market and on the recorded Lean trades beside
//! `../shared/anchors/pandas_monolith.py` (the same job done the pandas way), in one run.
//!
//! `cargo run --release -p tickflow-benches --bin full_chain [-- --runs R --data DIR --skip-pandas
//! --skip-synthetic --granularity G --lean-workers N --lean-pipeline FILE]`
//!
//! `--lean-pipeline FILE` times another pipeline file in place of the Lean chain (to measure it
//! stage by stage); its source must be the Lean trades.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use tickflow_benches::{best_of, machine};

/// The same allocator as the `tickflow` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tickflow_pipelines::{Pipeline, RunOptions, Summary, run};

/// The trading part of the default pipeline (pipelines/daytrade.toml), with counting sinks.
fn chain(bar: &str) -> String {
    format!(
        r#"
[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "{bar}"

[[operator]]
name = "indicators"
kind = "indicators"
input = "bars"

[[operator]]
name = "signals"
kind = "signals"
input = "indicators"
buy = "macd crosses_above 0 and adx_14 > 20"
sell = "macd crosses_below 0"

[[operator]]
name = "orders"
kind = "risk"
input = "signals"
prices = "bars"
fills = "fills"
position_size = 100
max_position = 200
max_gross_notional = 400000
max_orders = 4
rate_window = "10m"
daily_loss_limit = 20000

[[operator]]
name = "fills"
kind = "exchange"
input = "orders"
latency = "2ms"
slippage_bps = 1.0
fee_bps = 0.5

[[operator]]
name = "positions"
kind = "portfolio"
input = "fills"
prices = "bars"

[[sink]]
kind = "discard"
streams = ["portfolio", "positions", "risk_rejects"]
"#
    )
}

fn synthetic(events_per_second: u64, duration: &str) -> Result<Pipeline> {
    let text = format!(
        r#"
[pipeline]
name = "full-chain"

[[source]]
kind = "synthetic"
instruments = 8
seed = 42
start = "2024-01-02T14:30:00Z"
duration = "{duration}"
events_per_second = {events_per_second}
{}"#,
        chain("1m")
    );
    Pipeline::parse(&text, "full-chain.toml").map_err(|e| anyhow::anyhow!("{e}"))
}

fn lean(dir: &Path, granularity: &str) -> Result<Pipeline> {
    let text = format!(
        "[pipeline]\nname = \"lean-chain\"\ngranularity = {granularity:?}\n\n[[source]]\nkind = \"replay\"\npath = {:?}\n{}",
        dir.display().to_string(),
        chain("1s")
    );
    Pipeline::parse(&text, "lean-chain.toml").map_err(|e| anyhow::anyhow!("{e}"))
}

fn opts(workers: usize) -> RunOptions {
    RunOptions {
        workers,
        output_dir: std::env::temp_dir().join("tickflow-bench"),
        ..RunOptions::default()
    }
}

fn row(name: &str, workers: usize, secs: f64, s: &Summary) -> f64 {
    let rate = s.read as f64 / secs;
    let fills = s.trading.as_ref().map_or(0, |t| t.executions);
    println!(
        "| {name} | {workers} | {} | {fills} | {secs:.3} | {rate:.0} |",
        s.read
    );
    rate
}

/// The trade zips of the recorded data, linked into one directory (what pandas reads).
fn lean_trades(data: &Path) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join("tickflow-bench-lean-trades");
    std::fs::create_dir_all(&dir)?;
    let tick = data.join("us-equities/tick");
    for entry in std::fs::read_dir(&tick).with_context(|| format!("reading {}", tick.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with("_trade.zip") {
            let link = dir.join(name);
            if !link.exists() {
                std::os::unix::fs::symlink(path.canonicalize()?, &link)?;
            }
        }
    }
    Ok(dir)
}

/// Runs the pandas monolith and returns its end-to-end records/s (its last line).
fn pandas(script: &Path, data: &Path) -> Result<f64> {
    let out = Command::new("python3").arg(script).arg(data).output()?;
    anyhow::ensure!(
        out.status.success(),
        "pandas monolith failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or("");
    let rate = last
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .map(|s| s.replace(',', ""))
        .and_then(|s| s.parse::<f64>().ok())
        .with_context(|| format!("unexpected output: {last}"))?;
    Ok(rate)
}

fn main() -> Result<()> {
    let mut runs = 3;
    let mut data = PathBuf::from("../shared/data");
    let mut with_pandas = true;
    let mut with_synthetic = true;
    let mut granularity = "1ms".to_string();
    let mut lean_workers = 1usize;
    let mut lean_file: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().context("--runs R")?.parse()?,
            "--data" => data = args.next().context("--data DIR")?.into(),
            "--skip-pandas" => with_pandas = false,
            "--skip-synthetic" => with_synthetic = false,
            "--granularity" => granularity = args.next().context("--granularity G")?,
            "--lean-workers" => lean_workers = args.next().context("--lean-workers N")?.parse()?,
            "--lean-pipeline" => {
                lean_file = Some(args.next().context("--lean-pipeline FILE")?.into())
            }
            other => anyhow::bail!(
                "unknown argument {other} (expected --runs R, --data DIR, --skip-pandas, --skip-synthetic, --granularity G, --lean-workers N, --lean-pipeline FILE)"
            ),
        }
    }
    println!("machine: {}", machine());
    println!("| chain | workers | records | fills | best wall (s) | records/s |");
    println!("|---|---|---|---|---|---|");
    for (name, eps, duration) in [
        (
            "synthetic day (8 instruments, 100 events/s, 6h30m)",
            100,
            "6h30m",
        ),
        (
            "busy synthetic (8 instruments, 2,000 events/s, 1h)",
            2000,
            "1h",
        ),
    ] {
        if !with_synthetic {
            break;
        }
        let p = synthetic(eps, duration)?;
        for workers in [1, 2] {
            let (secs, s) = best_of(runs, || run(&p, &opts(workers)));
            row(name, workers, secs, &s?);
        }
    }
    let trades = lean_trades(&data)?;
    let p = match &lean_file {
        Some(file) => Pipeline::load(file).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => lean(&trades, &granularity)?,
    };
    let script = data.join("../anchors/pandas_monolith.py");
    println!();
    println!(
        "| run | pandas monolith (records/s, end to end) | tickflow full chain, 1 s bars (records/s, end to end, 1 worker) | ratio |"
    );
    println!("|---|---|---|---|");
    let (mut pandas_rates, mut rates) = (Vec::new(), Vec::new());
    for i in 1..=runs {
        let pandas_rate = if with_pandas {
            Some(pandas(&script, &data)?)
        } else {
            None
        };
        let (secs, s) = best_of(1, || run(&p, &opts(lean_workers)));
        let s = s?;
        let rate = s.read as f64 / secs;
        if i == 1 {
            eprintln!(
                "lean chain: {} records read, {} fills, {secs:.3} s",
                s.read,
                s.trading.as_ref().map_or(0, |t| t.executions)
            );
        }
        match pandas_rate {
            Some(pr) => println!("| {i} | {pr:.0} | {rate:.0} | {:.2}× |", rate / pr),
            None => println!("| {i} | — | {rate:.0} | — |"),
        }
        pandas_rates.extend(pandas_rate);
        rates.push(rate);
    }
    // Both sides swing run to run on a shared machine: their medians and their best runs.
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let best = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
    if !pandas_rates.is_empty() {
        println!(
            "| median | {:.0} | {:.0} | {:.2}× |",
            median(&mut pandas_rates),
            median(&mut rates),
            median(&mut rates) / median(&mut pandas_rates)
        );
        println!(
            "| best | {:.0} | {:.0} | {:.2}× |",
            best(&pandas_rates),
            best(&rates),
            best(&rates) / best(&pandas_rates)
        );
    }
    Ok(())
}
