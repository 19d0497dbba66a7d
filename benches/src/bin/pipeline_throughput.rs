//! Synthetic market → normalize → 1 s time bars → discarding sink, timed end to end.
//!
//! `cargo run --release -p tickflow-benches --bin pipeline_throughput [-- --events N --runs R]`

use anyhow::{Context, Result};
use tickflow_benches::{best_of, machine};
use tickflow_pipelines::{Pipeline, RunOptions, run};

fn pipeline(events: u64, granularity: &str) -> Result<Pipeline> {
    // 8 instruments at 200,000 events per second of event time: a busy market, so the run is
    // dominated by per-record work rather than by per-step overhead.
    let eps = 200_000.0;
    let secs = (events as f64 / eps).ceil() as u64;
    let text = format!(
        r#"
[pipeline]
name = "bench"
granularity = "{granularity}"
allowed_lateness = "100ms"

[[source]]
kind = "synthetic"
instruments = 8
seed = 1
duration = "{secs}s"
events_per_second = {eps}

[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "1s"

[[sink]]
kind = "discard"
streams = ["bars"]
"#
    );
    Pipeline::parse(&text, "bench.toml").map_err(|e| anyhow::anyhow!("{e}"))
}

fn main() -> Result<()> {
    let mut events: u64 = 5_000_000;
    let mut runs = 3;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--events" => events = args.next().context("--events N")?.parse()?,
            "--runs" => runs = args.next().context("--runs R")?.parse()?,
            other => anyhow::bail!("unknown argument {other} (expected --events N, --runs R)"),
        }
    }
    println!("machine: {}", machine());
    println!("| pipeline | granularity | workers | records | best wall (s) | records/s |");
    println!("|---|---|---|---|---|---|");
    let mut per_workers = Vec::new();
    for granularity in ["1ms", "1s"] {
        let p = pipeline(events, granularity)?;
        for workers in [1, 2] {
            let opts = RunOptions {
                workers,
                output_dir: std::env::temp_dir().join("tickflow-bench"),
                ..RunOptions::default()
            };
            let (secs, summary) = best_of(runs, || run(&p, &opts));
            let summary = summary?;
            let rate = summary.read as f64 / secs;
            println!(
                "| synthetic → normalize → 1 s bars → discard | {granularity} | {workers} | {} | {secs:.3} | {rate:.0} |",
                summary.read
            );
            per_workers.push((granularity, workers, rate));
        }
    }
    for g in ["1ms", "1s"] {
        let r: Vec<f64> = per_workers
            .iter()
            .filter(|(gg, _, _)| *gg == g)
            .map(|(_, _, r)| *r)
            .collect();
        println!("speed-up 1 → 2 workers at {g}: {:.2}×", r[1] / r[0]);
    }
    Ok(())
}
