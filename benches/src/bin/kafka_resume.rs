//! What sending each row once across a resume costs a Kafka sink: produce rate with the two
//! headers every message of a job with checkpoints carries (`tickflow-writer`, `tickflow-row`)
//! beside the same producer without them (a job without checkpoints, `tickflow publish`), and the time a resumed producer takes to read back what the job
//! before the restart had sent after the checkpoint and to leave those rows out, in one run on
//! one broker.
//!
//! `TICKFLOW_KAFKA_BROKERS=HOST:PORT cargo run --release -p tickflow-benches --bin kafka_resume
//! [-- --rows N --after K,K2,...]`
//!
//! `--rows`: rows sent (default 1,000,000, bar-like JSON objects of 100 instruments); `--after`:
//! rows sent after the checkpoint (default 10000,100000).

use std::time::Instant;

use anyhow::{Context, Result, bail};
use tickflow_benches::machine;
use tickflow_sinks::kafka::{Start, TopicProducer};

/// Row `i`: a key among 100 instruments and a one-minute bar as the JSON Lines sink writes it.
fn row(i: u64, line: &mut String) -> String {
    use std::fmt::Write;
    line.clear();
    let symbol = format!("SYM{:03}", i % 100);
    let px = 100.0 + (i % 997) as f64 * 0.01;
    let _ = write!(
        line,
        "{{\"instrument\":\"{symbol}\",\"bar_type\":\"time:1m\",\"start\":{i},\"open\":{px},\
         \"high\":{},\"low\":{},\"close\":{px},\"volume\":{},\"trades\":{}}}",
        px + 0.05,
        px - 0.05,
        100 + i % 1000,
        1 + i % 50
    );
    symbol
}

/// Gives `producer` rows `range`, serving delivery reports as the Kafka sink does.
fn give(producer: &mut TopicProducer, range: std::ops::Range<u64>) -> Result<()> {
    let mut line = String::new();
    for i in range {
        let key = row(i, &mut line);
        producer.send(key.as_bytes(), line.as_bytes())?;
        if i % 1024 == 0 {
            producer.poll();
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let mut rows: u64 = 1_000_000;
    let mut after: Vec<u64> = vec![10_000, 100_000];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--rows" => rows = value()?.parse().context("--rows")?,
            "--after" => {
                after = value()?
                    .split(',')
                    .map(|k| k.parse().context("--after"))
                    .collect::<Result<_>>()?;
            }
            other => bail!("unknown argument {other}"),
        }
    }
    let brokers = std::env::var("TICKFLOW_KAFKA_BROKERS")
        .ok()
        .filter(|b| !b.is_empty())
        .context("set TICKFLOW_KAFKA_BROKERS to a broker (scripts/test.sh installs tansu)")?;
    let run = format!("bench-resume-{}", std::process::id());
    println!("machine: {}; broker: {brokers}; {rows} rows", machine());
    println!();
    println!("| producer | seconds | messages/s | vs no headers |");
    println!("| --- | ---: | ---: | ---: |");
    // Alternately, twice each; the faster of each.
    let send_all = |topic: String, start: Start<'_>| -> Result<f64> {
        let mut p = TopicProducer::new(&brokers, &topic, 4, start)?;
        let t0 = Instant::now();
        give(&mut p, 0..rows)?;
        p.flush()?;
        Ok(t0.elapsed().as_secs_f64())
    };
    let (mut plain, mut headed) = (f64::INFINITY, f64::INFINITY);
    for round in 0..2 {
        plain = plain.min(send_all(format!("{run}-plain-{round}"), Start::Plain)?);
        headed = headed.min(send_all(
            format!("{run}-headers-{round}"),
            Start::Checkpointed,
        )?);
    }
    let rate = |s: f64| format!("{:.0}", rows as f64 / s);
    println!(
        "| without checkpoints (no headers) | {plain:.2} | {} | 1.00 |",
        rate(plain)
    );
    println!(
        "| with checkpoints (writer and row headers) | {headed:.2} | {} | {:.2} |",
        rate(headed),
        plain / headed
    );
    println!();
    println!(
        "| rows sent after the checkpoint | read back (s) | found | leave them out (s) | rows/s left out |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for k in after {
        // The first job: a checkpoint `k` rows before it dies.
        let topic = format!("{run}-resume-{k}");
        let mut first = TopicProducer::new(&brokers, &topic, 4, Start::Checkpointed)?;
        let cut = rows.saturating_sub(k);
        give(&mut first, 0..cut)?;
        let state = first
            .state()
            .context("a producer with checkpoints has a state")?;
        give(&mut first, cut..rows)?;
        first.flush()?;
        drop(first);
        let t0 = Instant::now();
        let mut resumed = TopicProducer::new(&brokers, &topic, 4, Start::Resume(&state))?;
        let read = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        give(&mut resumed, cut..rows)?;
        let skip = t1.elapsed().as_secs_f64();
        if resumed.skipped() != rows - cut || resumed.finish()? != 0 {
            bail!(
                "the resumed producer left out {} of {} rows",
                resumed.skipped(),
                rows - cut
            );
        }
        println!(
            "| {} | {read:.2} | {} | {skip:.3} | {:.0} |",
            rows - cut,
            resumed.already_sent(),
            (rows - cut) as f64 / skip
        );
    }
    Ok(())
}
