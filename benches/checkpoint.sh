#!/usr/bin/env bash
# Checkpoint benchmark: what checkpoints cost a live job. Publishes recorded ticks to a topic,
# then runs the same live job (bars, indicators, signals, risk, simulated exchange, portfolio
# valuation and its report; JSON Lines sinks; 2 workers) following it, alternately without
# checkpoints and with a checkpoint every INTERVAL of event time (default 1m), ROUNDS times each (default 3). Each run is timed from
# its start to its last commit (all but the records still within the allowed lateness of the
# watermark, which wait for more data or the stop), then stopped with SIGTERM;
# its summary gives the checkpoints written and their cost (time taking snapshots, time writing,
# bytes). With QUERIES=1 the job also runs three continuous SQL queries (one-minute OHLCV of
# the trades and trading sessions to JSON Lines, hopping means of the bars to Parquet parts),
# whose state is then in the checkpoints too.
#
#   cargo build --release -p tickflow-cli && benches/checkpoint.sh [DATA]
#
# DATA: recorded data (default ../shared/data/us-equities/tick). Uses TICKFLOW_KAFKA_BROKERS,
# else starts tansu (scripts/test.sh installs it) on a free port; TICKFLOW_PYTHON must have
# confluent-kafka (scripts/test.sh makes that virtual environment).
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data/us-equities/tick}"
interval="${INTERVAL:-1m}"
rounds="${ROUNDS:-3}"
queries="${QUERIES:-0}"
. benches/kafka-env.sh
work="$(mktemp -d -t checkpoint-bench.XXXXXX)"
cleanup() {
  [ -z "$broker" ] || kill "$broker"
  rm -rf "$work"
}
trap cleanup EXIT
topic="ckpt-bench-$$"
echo "== publish $data to $topic (2 partitions) on $brokers"
count="$("$bin" publish --data "$data" --topic "$topic" --partitions 2 | awk '{print $2}')"
echo "$count records"
symbols="$(ls "$data" | sed -n 's/^\([a-z]*\)_[0-9]*_.*/\1/p' | sort -u | tr 'a-z' 'A-Z' | sed 's/.*/"&"/' | paste -sd, -)"

pipeline() { # $1: group, $2: checkpoint section or nothing
  cat <<EOF
[pipeline]
name = "checkpoint-bench"

[[source]]
kind = "kafka"
topic = "$topic"
group = "$1"
venue = "US"
follow = true
symbols = [$symbols]
idle_timeout = "10s"
commit_interval = "300ms"

[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "1m"

[[operator]]
name = "indicators"
kind = "indicators"
input = "bars"

[[operator]]
name = "signals"
kind = "signals"
input = "indicators"
buy = "close crosses_above ema_20"
sell = "close crosses_below ema_20"

[[operator]]
name = "orders"
kind = "risk"
input = "signals"
prices = "bars"
fills = "fills"
position_size = 100
max_position = 200

[[operator]]
name = "fills"
kind = "exchange"
input = "orders"
no_quote = "last_trade"
latency = "2ms"

[[operator]]
name = "positions"
kind = "portfolio"
input = "fills"
prices = "bars"
totals = "portfolio"
capital = 1000000

[[sink]]
kind = "jsonl"
streams = ["bars", "indicators", "signals", "orders", "fills", "positions", "portfolio"]
$([ "$queries" = 1 ] && sql_queries)
$2
EOF
}

sql_queries() {
  cat <<'EOF'
[[query]]
name = "ohlcv_1m"
sink = "jsonl"
sql = """
SELECT symbol, window_start, window_end, count(*) AS trades,
       first_value(price ORDER BY ts_event, seq) AS open, max(price) AS high,
       min(price) AS low, last_value(price ORDER BY ts_event, seq) AS close, sum(size) AS volume
FROM tumble('trades', 'ts_event', INTERVAL '1 minute')
GROUP BY symbol, window_start, window_end
"""

[[query]]
name = "bar_means"
sink = "parquet"
roll = "1s"
sql = """
SELECT symbol, window_end, avg(close) AS mean_close, count(*) AS bars
FROM hop('bars', 'end', INTERVAL '5 minutes', INTERVAL '30 minutes')
GROUP BY symbol, window_end
"""

[[query]]
name = "sessions"
sink = "jsonl"
sql = """
SELECT symbol, window_start, window_end, count(*) AS trades, sum(size) AS volume
FROM session('trades', 'ts_event', INTERVAL '1 minute', 'symbol')
GROUP BY symbol, window_start, window_end
"""
EOF
}

for round in $(seq "$rounds"); do
  for variant in none "$interval"; do
    group="$topic-$variant-$round"
    section=""
    [ "$variant" != none ] && section="$(printf '[checkpoint]\ndir = "%s"\ninterval = "%s"' "$work/ckpt-$group" "$variant")"
    pipeline "$group" "$section" >"$work/$group.toml"
    start=$(date +%s.%N)
    "$bin" run "$work/$group.toml" --workers 2 -q -o "$work/out-$group" >"$work/$group.out" 2>"$work/$group.err" &
    job=$!
    # The last records stay within the allowed lateness of the watermark until the job stops,
    # so the committed offset stops short of the end: the run is timed to its last commit,
    # once nothing more has been committed for 3 s.
    last=-1; end=$start; since=$(date +%s.%N)
    while true; do
      kill -0 "$job" 2>/dev/null || { cat "$work/$group.err"; exit 1; }
      now="$("$python" cli/tests/kafka_client.py committed "$brokers" "$topic" "$group")"
      t=$(date +%s.%N)
      if [ "$now" != "$last" ]; then last=$now; end=$t; since=$t
      elif [ "$now" -gt $((count / 2)) ] && python3 -c "import sys; sys.exit(0 if $t - $since > 3 else 1)"; then break; fi
    done
    kill -TERM "$job"
    wait "$job" || { echo "the job exited with $?"; cat "$work/$group.err" "$work/$group.out"; exit 1; }
    secs="$(python3 -c "print(f'{$end - $start:.2f}')")"
    echo "== round $round, checkpoints: $variant: $last of $count records committed after $secs s ($(python3 -c "print(f'{$last / ($end - $start):,.0f}')") records/s)"
    grep -E "^checkpoints|^  cost" "$work/$group.out" || true
  done
done
