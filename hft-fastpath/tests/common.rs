//! Helpers shared by the integration tests.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::path::PathBuf;

/// `$TICKFLOW_SAMPLE_DATA`, or `None` (and a SKIPPED line) when unset.
pub fn sample_data() -> Option<PathBuf> {
    tickflow_sources::sample_data()
}
