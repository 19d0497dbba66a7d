//! End-to-end benchmarks of tickflow, as bench binaries (`src/bin/`). Each prints Markdown
//! rows for `benches/RESULTS.md`. Run them with `--release`.
//!
//! Layout:
//! - `bin/pipeline_throughput.rs`: synthetic market → normalize → 1 s bars → discarding sink,
//!   on 1 and 2 workers.
//! - `bin/reader_parse_rate.rs`: records/s of every replay reader over the recorded data.
//! - `bin/kafka_resume.rs`: a Kafka producer's rate with the headers that let a resumed job
//!   send each row once, and how long a resumed producer takes to find what was sent.

use std::time::Instant;

/// Best-of-`runs` wall time of `f`, in seconds, with `f`'s last result.
pub fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t0 = Instant::now();
        let out = f();
        best = best.min(t0.elapsed().as_secs_f64());
        last = Some(out);
    }
    (best, last.expect("at least one run"))
}

/// The machine, for the results table.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} cores, {model}")
}
