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
# whose state is then in the checkpoints too; FOLD_ROWS=N sets their `fold_rows` (0: their open
# windows keep their rows).
#
# With RECOVERY=1 it measures recovery instead: each round runs the job without checkpoints to
# the end (the reference), then the job with checkpoints, killed with SIGKILL once it has
# committed half the records, then started again at once. It reports when the restarted job
# said it resumed, when its commits passed the killed job's last commit (recovered), and when
# it had caught up with the whole topic, and compares every output file of the restarted job
# with the reference's. RESTART_WORKERS=N restarts it on N workers (default 2, those it ran on):
# the checkpoint's operator state is then spread over N by instrument.
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
  # FOLD_ROWS: the queries' `fold_rows` (0 keeps the rows of open windows); unset, the default.
  sed "s/^# fold_rows\$/${FOLD_ROWS:+fold_rows = $FOLD_ROWS}/" <<'EOF'
[[query]]
name = "ohlcv_1m"
sink = "jsonl"
# fold_rows
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
# fold_rows
sql = """
SELECT symbol, window_end, avg(close) AS mean_close, count(*) AS bars
FROM hop('bars', 'end', INTERVAL '5 minutes', INTERVAL '30 minutes')
GROUP BY symbol, window_end
"""

[[query]]
name = "sessions"
sink = "jsonl"
# fold_rows
sql = """
SELECT symbol, window_start, window_end, count(*) AS trades, sum(size) AS volume
FROM session('trades', 'ts_event', INTERVAL '1 minute', 'symbol')
GROUP BY symbol, window_start, window_end
"""
EOF
}

# Seconds since the epoch, fractional.
now() { date +%s.%N; }
# Seconds from $1 to $2, two decimals.
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
committed() { "$python" cli/tests/kafka_client.py committed "$brokers" "$topic" "$1"; }

# Waits until job $1 (pid) of group $2 has committed more than half the records and nothing
# more for 3 s; sets `last` (records committed) and `end` (when the last commit was seen).
settle() {
  local job=$1 group=$2 err=$3 now_c t since
  last=-1; end=$(now); since=$end
  while true; do
    kill -0 "$job" 2>/dev/null || { cat "$err"; exit 1; }
    now_c="$(committed "$group")"
    t=$(now)
    if [ "$now_c" != "$last" ]; then last=$now_c; end=$t; since=$t
    elif [ "$now_c" -gt $((count / 2)) ] && python3 -c "import sys; sys.exit(0 if $t - $since > 3 else 1)"; then break; fi
  done
}

if [ "${RECOVERY:-0}" = 1 ]; then
  for round in $(seq "$rounds"); do
    # The reference: the job without checkpoints, to the end of the topic.
    ref="$topic-ref-$round"
    pipeline "$ref" "" >"$work/$ref.toml"
    "$bin" run "$work/$ref.toml" --workers 2 -q -o "$work/out-$ref" >"$work/$ref.out" 2>"$work/$ref.err" &
    job=$!
    settle "$job" "$ref" "$work/$ref.err"
    kill -TERM "$job"; wait "$job"
    # The job with checkpoints, killed once half the records are committed...
    group="$topic-rec-$round"
    ckpt="$work/ckpt-$group"
    pipeline "$group" "$(printf '[checkpoint]\ndir = "%s"\ninterval = "%s"' "$ckpt" "$interval")" >"$work/$group.toml"
    "$bin" run "$work/$group.toml" --workers 2 -q -o "$work/out-$group" >"$work/$group.out" 2>"$work/$group.err" &
    job=$!
    while true; do
      kill -0 "$job" 2>/dev/null || { cat "$work/$group.err"; exit 1; }
      if [ "$(committed "$group")" -gt $((count / 2)) ] && ls "$ckpt"/ckpt-* >/dev/null 2>&1; then break; fi
    done
    kill -KILL "$job"; wait "$job" 2>/dev/null || true
    killed_at="$(committed "$group")"
    # Where the newest checkpoint has the restarted job read from.
    resume_from="$(python3 -c "
import json, pathlib, sys
newest = max(pathlib.Path(sys.argv[1]).glob('ckpt-*'), key=lambda p: int(p.name[5:]))
print(sum(p['resume'] for p in json.loads((newest / 'manifest.json').read_text())['partitions']))
" "$ckpt")"
    # ...and started again at once.
    # (Its log lines are stamped with when they came.)
    start=$(now)
    "$bin" run "$work/$group.toml" --workers "${RESTART_WORKERS:-2}" -q -o "$work/out-$group" >"$work/$group.out" \
      2> >(while IFS= read -r line; do echo "$(now) $line"; done >"$work/$group.err") &
    job=$!
    recovered=""
    while [ -z "$recovered" ]; do
      kill -0 "$job" 2>/dev/null || { cat "$work/$group.err"; exit 1; }
      [ "$(committed "$group")" -gt "$killed_at" ] && recovered=$(now)
    done
    resumed="$(awk '/resuming from the checkpoint/ {print $1; exit}' "$work/$group.err")"
    settle "$job" "$group" "$work/$group.err"
    kill -TERM "$job"; wait "$job"
    from="$(sed -n 's/.*resuming from the checkpoint at \([^ ]*\).*/\1/p' "$work/$group.err")"
    same=0; differ=""
    for f in "$work/out-$ref"/*.jsonl; do
      if cmp -s "$f" "$work/out-$group/$(basename "$f")"; then same=$((same + 1)); else differ="$differ $(basename "$f")"; fi
    done
    echo "== round $round: killed with $killed_at of $count records committed; restarted on ${RESTART_WORKERS:-2} workers from the checkpoint at $from (it reads again from record $resume_from)"
    echo "   said it resumed after $(secs "$start" "$resumed") s; committed past the killed job after $(secs "$start" "$recovered") s; caught up ($last records) after $(secs "$start" "$end") s"
    echo "   output files identical to the uninterrupted job's: $same${differ:+; differ:$differ}"
  done
  exit 0
fi

for round in $(seq "$rounds"); do
  for variant in none "$interval"; do
    group="$topic-$variant-$round"
    section=""
    [ "$variant" != none ] && section="$(printf '[checkpoint]\ndir = "%s"\ninterval = "%s"' "$work/ckpt-$group" "$variant")"
    pipeline "$group" "$section" >"$work/$group.toml"
    start=$(now)
    "$bin" run "$work/$group.toml" --workers 2 -q -o "$work/out-$group" >"$work/$group.out" 2>"$work/$group.err" &
    job=$!
    # The last records stay within the allowed lateness of the watermark until the job stops,
    # so the committed offset stops short of the end: the run is timed to its last commit,
    # once nothing more has been committed for 3 s.
    settle "$job" "$group" "$work/$group.err"
    kill -TERM "$job"
    wait "$job" || { echo "the job exited with $?"; cat "$work/$group.err" "$work/$group.out"; exit 1; }
    secs="$(secs "$start" "$end")"
    echo "== round $round, checkpoints: $variant: $last of $count records committed after $secs s ($(python3 -c "print(f'{$last / ($end - $start):,.0f}')") records/s)"
    grep -E "^checkpoints|^  cost" "$work/$group.out" || true
  done
done
