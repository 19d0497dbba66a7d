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
        ("binance and tardis order-book csv", "depth"),
        ("lobster messages", "lobster"),
        ("databento dbn mbo", "cme-mbo"),
    ];
    for (name, rel) in cases {
        let path = data.join(rel);
        let p = plan(&[SourceConfig::Replay {
            path: path.clone(),
            format: ReplayFormat::Auto,
            quote_size: None,
        }])
        .with_context(|| path.display().to_string())?;
        let (secs, count) = best_of(3, || count_all(&p));
        let count = count?;
        println!(
            "| {name} | {rel} | {count} | {secs:.3} | {:.0} |",
            count as f64 / secs
        );
    }
    // Order-book CSV at a size where start-up does not count: generated files of the three
    // layouts `depth/` holds a few rows of.
    let books = std::env::temp_dir().join(format!("tickflow-books-{}", std::process::id()));
    for (name, file, rows) in write_order_books(&books)? {
        let p = plan(&[SourceConfig::Replay {
            path: file,
            format: ReplayFormat::Auto,
            quote_size: None,
        }])?;
        let (secs, count) = best_of(3, || count_all(&p));
        let count = count?;
        println!(
            "| {name} | generated, {rows} rows | {count} | {secs:.3} | {:.0} |",
            count as f64 / secs
        );
    }
    let _ = std::fs::remove_dir_all(&books);
    // TrueFX quotes (no sizes: each side is given one), in TrueFX's own layout.
    let fx = std::env::temp_dir().join(format!("tickflow-truefx-{}", std::process::id()));
    let (file, rows) = write_truefx(&fx)?;
    let p = plan(&[SourceConfig::Replay {
        path: file,
        format: ReplayFormat::Auto,
        quote_size: Some(tickflow_core::Quantity::from_int(1_000_000)?),
    }])?;
    let (secs, count) = best_of(3, || count_all(&p));
    let _ = std::fs::remove_dir_all(&fx);
    let count = count?;
    println!(
        "| truefx quotes | generated, {rows} rows | {count} | {secs:.3} | {:.0} |",
        count as f64 / secs
    );
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
        quote_size: None,
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

/// Writes a month-named TrueFX file of EUR/USD quotes (one every 10 ms, the spread moving by
/// a few points) into `dir`: `(file, rows)`.
fn write_truefx(dir: &std::path::Path) -> Result<(PathBuf, u64)> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let path = dir.join("EURUSD-2013-01.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let rows = 1_000_000u64;
    for i in 0..rows {
        let ms = i * 10;
        let (h, m, s, milli) = (
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1_000 % 60,
            ms % 1_000,
        );
        let bid = 131_900 + (i * 7_919) % 200;
        writeln!(
            w,
            "EUR/USD,201301{:02} {:02}:{m:02}:{s:02}.{milli:03},1.{bid},1.{}",
            2 + h / 24,
            h % 24,
            bid + 3 + i % 5
        )?;
    }
    w.flush()?;
    Ok((path, rows))
}

/// Writes a Tardis `incremental_book_L2` file (a 500-level snapshot, then updates), a Tardis
/// `book_snapshot_25` file and a Binance depth file (a 1,000-level snapshot, then updates) into
/// `dir`, with prices and sizes from a fixed-seed generator: `(bench row, file, rows)`.
fn write_order_books(dir: &std::path::Path) -> Result<Vec<(&'static str, PathBuf, u64)>> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    let mut out = Vec::new();
    let rows = 1_000_000u64;
    let path = dir.join("tardis_incremental_book_L2.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
    writeln!(
        w,
        "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
    )?;
    for i in 0..rows {
        let ts = 1_585_699_200_000_000 + i * 50;
        let side = if next(2) == 0 { "bid" } else { "ask" };
        let price = 6_400 + next(40);
        let amount = if i >= 500 && next(5) == 0 {
            0
        } else {
            10 * next(5_000) + 10
        };
        writeln!(
            w,
            "deribit,BTC-PERPETUAL,{ts},{},{},{side},{price}.5,{amount}",
            ts + 110_000,
            i < 500
        )?;
    }
    w.flush()?;
    out.push(("tardis incremental_book_L2", path, rows));
    let rows = 20_000u64;
    let path = dir.join("tardis_book_snapshot_25.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
    write!(w, "exchange,symbol,timestamp,local_timestamp")?;
    for l in 0..25 {
        write!(
            w,
            ",asks[{l}].price,asks[{l}].amount,bids[{l}].price,bids[{l}].amount"
        )?;
    }
    writeln!(w)?;
    for i in 0..rows {
        let ts = 1_598_918_403_696_000 + i * 100_000;
        write!(w, "binance-futures,BTCUSDT,{ts},{}", ts + 114_979)?;
        let mid = 1_165_700 + next(200);
        for l in 0..25 {
            let (ask, bid) = (mid + 1 + l, mid - l);
            write!(
                w,
                ",{}.{:02},{}.{:03},{}.{:02},{}.{:03}",
                ask / 100,
                ask % 100,
                next(20),
                next(1000),
                bid / 100,
                bid % 100,
                next(20),
                next(1000)
            )?;
        }
        writeln!(w)?;
    }
    w.flush()?;
    out.push(("tardis book_snapshot_25", path, rows));
    let rows = 1_000_000u64;
    let path = dir.join("binance_depth.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
    writeln!(
        w,
        "symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu"
    )?;
    for i in 0..rows {
        let snap = i < 1_000;
        // One update a row after the snapshot, each following the one before (no gaps).
        let (ts, id) = if snap {
            (1_667_346_579_146, 1_000)
        } else {
            (1_667_346_579_146 + i, i + 1)
        };
        let side = if next(2) == 0 { "b" } else { "a" };
        let price = 2_037_000 + next(2_000);
        let qty = if !snap && next(4) == 0 {
            0
        } else {
            next(5_000) + 1
        };
        writeln!(
            w,
            "BTCUSDT,{ts},{id},{id},{side},{},{}.{},{}.{:03},{}",
            if snap { "snap" } else { "set" },
            price / 100,
            price % 100,
            qty / 1000,
            qty % 1000,
            if snap { -1 } else { id as i64 - 1 }
        )?;
    }
    w.flush()?;
    out.push(("binance depth csv", path, rows));
    Ok(out)
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
