//! Helpers shared by the pipeline tests.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::path::Path;

use serde_json::Value;
use tickflow_pipelines::{Pipeline, RunOptions, Summary, run};

/// Runs pipeline text with `workers` threads, writing files under `out`.
pub fn run_text(text: &str, workers: usize, out: &Path) -> Summary {
    run_text_with(
        text,
        &RunOptions {
            workers,
            output_dir: out.to_path_buf(),
            ..RunOptions::default()
        },
    )
}

/// Runs pipeline text with these options.
pub fn run_text_with(text: &str, options: &RunOptions) -> Summary {
    let pipeline = Pipeline::parse(text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    run(&pipeline, options).unwrap()
}

/// A pipeline replaying `path` into 1-minute bars, writing `streams` as JSON Lines.
pub fn replay_pipeline(path: &Path, streams: &[&str]) -> String {
    format!(
        r#"
[pipeline]
name = "replay-test"
allowed_lateness = "1s"

[[source]]
kind = "replay"
path = {path:?}

[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "1m"

[[sink]]
kind = "jsonl"
streams = {streams:?}
"#,
        path = path.display().to_string(),
        streams = streams,
    )
}

/// The records of a JSON Lines file.
pub fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
