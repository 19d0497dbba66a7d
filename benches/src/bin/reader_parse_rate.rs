//! Parse rate of every replay reader over the recorded data in `$TICKFLOW_SAMPLE_DATA`
//! (default `../shared/data`): files are read and decoded into records, nothing else.
//!
//! `cargo run --release -p tickflow-benches --bin reader_parse_rate`

use std::path::PathBuf;

use anyhow::{Context, Result};
use tickflow_benches::{best_of, machine};
use tickflow_sources::{Merger, ReplayFormat, SourceConfig, SyntheticConfig, plan};

fn main() -> Result<()> {
    let data = PathBuf::from(
        std::env::var_os("TICKFLOW_SAMPLE_DATA").unwrap_or_else(|| "../shared/data".into()),
    );
    anyhow::ensure!(
        data.is_dir(),
        "{} is not a directory; set TICKFLOW_SAMPLE_DATA to shared/data",
        data.display()
    );
    println!("machine: {}", machine());
    println!("| reader | input | records | best wall (s) | records/s |");
    println!("|---|---|---|---|---|");
    // The synthetic market, generation only, at the density the pipeline benchmark uses.
    let synthetic = SourceConfig::Synthetic(SyntheticConfig {
        duration: tickflow_core::Duration::from_secs(15),
        events_per_second: 200_000.0,
        ..SyntheticConfig::default()
    });
    let p = plan(&[synthetic])?;
    let (secs, count) = best_of(3, || count_all(&p));
    let count = count?;
    println!(
        "| synthetic market (generation + merge) | 8 instruments, 15 s at 200,000 events/s | {count} | {secs:.3} | {:.0} |",
        count as f64 / secs
    );
    let cases = [
        ("lean trades+quotes", "us-equities/tick"),
        ("binance websocket", "binance-ws"),
        (
            "tardis csv",
            "tardis/tardis_binance-futures_trades_BTCUSDT.csv",
        ),
        ("lobster messages", "lobster"),
        ("databento dbn mbo", "cme-mbo"),
    ];
    for (name, rel) in cases {
        let path = data.join(rel);
        let p = plan(&[SourceConfig::Replay {
            path: path.clone(),
            format: ReplayFormat::Auto,
        }])
        .with_context(|| path.display().to_string())?;
        let (secs, count) = best_of(3, || count_all(&p));
        let count = count?;
        println!(
            "| {name} | {rel} | {count} | {secs:.3} | {:.0} |",
            count as f64 / secs
        );
    }
    // The Lean day's accepted trades and quotes as a job writes them to Parquet, read back.
    let recorded = std::env::temp_dir().join(format!("tickflow-parquet-{}", std::process::id()));
    let text = format!(
        "[pipeline]\nname = \"record\"\n\n[[source]]\nkind = \"replay\"\npath = {:?}\n\n\
         [[sink]]\nkind = \"parquet\"\nstreams = [\"trades\", \"quotes\"]\n",
        data.join("us-equities/tick").display().to_string()
    );
    let pipeline = tickflow_pipelines::Pipeline::parse(&text, "record.toml")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tickflow_pipelines::run(
        &pipeline,
        &tickflow_pipelines::RunOptions {
            output_dir: recorded.clone(),
            ..Default::default()
        },
    )?;
    let p = plan(&[SourceConfig::Replay {
        path: recorded.clone(),
        format: ReplayFormat::Parquet,
    }])?;
    let (secs, count) = best_of(3, || count_all(&p));
    let _ = std::fs::remove_dir_all(&recorded);
    let count = count?;
    println!(
        "| parquet trades+quotes | us-equities/tick as a job wrote it | {count} | {secs:.3} | {:.0} |",
        count as f64 / secs
    );
    Ok(())
}

/// Opens every part, merges them in event-time order, and counts what comes out.
fn count_all(p: &tickflow_sources::Plan) -> Result<u64> {
    let readers = p
        .parts
        .iter()
        .map(|part| part.open(&p.registry))
        .collect::<Result<Vec<_>, _>>()?;
    let mut merger = Merger::new(readers);
    let mut n = 0u64;
    while merger.next_item().is_some() {
        n += 1;
    }
    Ok(n)
}
