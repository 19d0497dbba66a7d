#!/usr/bin/env bash
# Kafka benchmark: records/s from a topic of recorded ticks through the default day-trading chain
# (pipelines/kafka.toml: normalize, bars, indicators, features, signals, risk, simulated fills,
# portfolio) and back to topics, beside confluent-kafka's raw consume of the same topic, in one
# run on one broker.
#
#   cargo build --release -p tickflow-cli && benches/kafka.sh [DATA]
#
# DATA: recorded data (default ../shared/data/us-equities/tick). Uses TICKFLOW_KAFKA_BROKERS,
# else starts tansu (scripts/test.sh installs it) on a free port; TICKFLOW_PYTHON must have
# confluent-kafka (scripts/test.sh makes that virtual environment).
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data/us-equities/tick}"
. benches/kafka-env.sh
if [ -n "$broker" ]; then trap 'kill $broker' EXIT; fi
topic="bench-ticks-$$"
echo "== publish $data to $topic (4 partitions) on $brokers"
"$bin" publish --data "$data" --topic "$topic" --partitions 4 | tee /tmp/kafka-bench-publish.txt
count="$(awk '{print $2}' /tmp/kafka-bench-publish.txt)"

echo "== confluent-kafka: raw consume of $count messages"
read -r got raw_secs < <("$python" benches/kafka_consume.py "$brokers" "$topic" "$count")
echo "$got messages in $raw_secs s: $(python3 -c "print(round($got / $raw_secs))") msg/s"

pipeline="$(mktemp -t kafka-bench.XXXXXX.toml)"
sed -e "s/topic = \"ticks\"/topic = \"$topic\"/" -e "s/group = \"daytrade\"/group = \"bench-$$\"/" \
    -e "s/dead_letter = \"ticks.dead\"/dead_letter = \"$topic.dead\"/" \
    -e "s/daytrade.{stream}/$topic.{stream}/" pipelines/kafka.toml >"$pipeline"
# Instruments: found by reading the topic's keys once when the job starts (the default), or
# declared in the pipeline (SYMBOLS, default: the symbols of Lean file names in DATA), which
# skips that pass.
symbols="${SYMBOLS:-$(ls "$data" | sed -n 's/^\([a-z]*\)_[0-9]*_.*/\1/p' | sort -u | tr 'a-z' 'A-Z' | paste -sd, -)}"
declared="$(mktemp -t kafka-bench.XXXXXX.toml)"
sed "s/^venue = \"US\"/venue = \"US\"\nsymbols = [\"$(echo "$symbols" | sed 's/,/", "/g')\"]/" "$pipeline" >"$declared"
# The same records in the compact binary encoding, on a topic of their own.
echo "== publish $data to $topic-bin (4 partitions, binary encoding)"
"$bin" publish --data "$data" --topic "$topic-bin" --partitions 4 --encoding binary
binary="$(mktemp -t kafka-bench.XXXXXX.toml)"
sed -e "s/topic = \"$topic\"/topic = \"$topic-bin\"/" -e "s/dead_letter = \"$topic.dead\"/dead_letter = \"$topic-bin.dead\"/" \
    -e "s/$topic.{stream}/$topic-bin.{stream}/" "$declared" >"$binary"
for variant in keys declared binary; do
  file="$pipeline"; [ "$variant" = declared ] && file="$declared"; [ "$variant" = binary ] && file="$binary"
  sed -i "s/group = \"bench-[^\"]*\"/group = \"bench-$$-$variant\"/" "$file"
  echo "== tickflow ($variant: instruments $([ $variant = keys ] && echo "read from the message keys" || echo "$symbols")$([ $variant = binary ] && echo ", binary messages")): topic -> default chain -> topics (1 worker)"
  start=$(date +%s.%N)
  "$bin" run "$file" -q -o "$(mktemp -d)" | grep -E "records read|wall time|throughput|kafka:"
  end=$(date +%s.%N)
  python3 - "$count" "$start" "$end" "$raw_secs" <<'PY'
import sys
n, s, e, raw = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
secs = e - s
print(f"tickflow end to end (planning, reading, the chain, producing, committing): {secs:.2f} s, {n / secs:,.0f} records/s")
print(f"confluent-kafka raw consume: {raw:.2f} s, {n / raw:,.0f} records/s")
print(f"ratio tickflow / raw consume: {raw / secs:.2f}")
PY
done
