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

cache="${TICKFLOW_CACHE:-$HOME/.cache/tickflow}"
mkdir -p "$cache"

# Python for the tests that check tickflow against third-party tools: DuckDB computes the
# expected answers of SQL queries, the ADBC Flight SQL driver queries a running job, and the
# confluent-kafka client (librdkafka 2.16) produces and consumes beside tickflow. A virtual
# environment in the cache directory, made once.
venv="$cache/venv"
py_packages=(duckdb==2.0.1 pyarrow==26.0.1 adbc-driver-manager adbc-driver-flightsql confluent-kafka==2.16.1)
if ! "$venv/bin/python" -c "import duckdb, pyarrow, adbc_driver_flightsql, confluent_kafka" >/dev/null 2>&1; then
  echo "installing Python test tools into $venv"
  command -v python3 >/dev/null || { echo "error: python3 is required"; exit 1; }
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${py_packages[@]}"
fi
export TICKFLOW_PYTHON="$venv/bin/python"

# External services, on 127.0.0.1 only, stopped when the script ends. The suite needs no
# PostgreSQL or Redis yet.
started=()
cleanup() { for s in "${started[@]:-}"; do [ -n "$s" ] && eval "$s" || true; done; }
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The Kafka-compatible broker: tansu, built once into the cache directory (about 20 minutes on
# 2 cores the first time), started with in-memory storage on a free port. Kafka tests use
# $TICKFLOW_KAFKA_BROKERS; set it to use a broker of your own instead.
if [ -z "${TICKFLOW_KAFKA_BROKERS:-}" ]; then
  tansu="$cache/tansu/bin/tansu"
  if [ ! -x "$tansu" ] && command -v tansu >/dev/null; then
    tansu="$(command -v tansu)"
  fi
  if [ ! -x "$tansu" ]; then
    echo "installing the tansu broker into $cache/tansu (once)"
    cargo install tansu --version 0.6.0 --locked --features dynostore,libsql --root "$cache/tansu"
    tansu="$cache/tansu/bin/tansu"
  fi
  port="$(free_port)"
  broker_log="$cache/tansu.log"
  "$tansu" broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >"$broker_log" 2>&1 &
  broker_pid=$!
  started+=("kill $broker_pid")
  for _ in $(seq 1 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
      break
    fi
    if ! kill -0 "$broker_pid" 2>/dev/null; then
      echo "error: the tansu broker stopped at start; its log:"; cat "$broker_log"; exit 1
    fi
    sleep 0.1
  done
  export TICKFLOW_KAFKA_BROKERS="127.0.0.1:$port"
  echo "Kafka broker (tansu) on $TICKFLOW_KAFKA_BROKERS, log in $broker_log"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== tests"
cargo nextest run --workspace --no-fail-fast "$@"
