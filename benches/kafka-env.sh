# Sourced by the Kafka benchmarks (kafka.sh, checkpoint.sh) from the repository root: the
# release binary (`bin`), the tool cache (`cache`), the Python with confluent-kafka (`python`),
# and a broker: TICKFLOW_KAFKA_BROKERS, else tansu (scripts/test.sh installs it) started on a
# free port of 127.0.0.1, whose pid is `broker` for the caller to stop.
bin="${TICKFLOW_BIN:-${CARGO_TARGET_DIR:-target}/release/tickflow}"
cache="${TICKFLOW_CACHE:-$HOME/.cache/tickflow}"
python="${TICKFLOW_PYTHON:-$cache/venv/bin/python}"
[ -x "$bin" ] || { echo "error: build first: cargo build --release -p tickflow-cli"; exit 1; }
broker=""
if [ -z "${TICKFLOW_KAFKA_BROKERS:-}" ]; then
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  "$cache/tansu/bin/tansu" broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://tansu/ \
    >"$cache/tansu-bench.log" 2>&1 &
  broker=$!
  sleep 1
  export TICKFLOW_KAFKA_BROKERS="127.0.0.1:$port"
fi
brokers="$TICKFLOW_KAFKA_BROKERS"
