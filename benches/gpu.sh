#!/bin/bash
# On the GPU machine (no Rust): unpack the CUDA build of tickflow carried in .gpu/ (made by
# benches/gpu-build.sh), point it at the driver's and the python wheels' CUDA libraries, then
#   1. check that every model kind gives the same outputs on the GPU as on the CPU;
#   2. run pipelines/ml.toml's predict operator on the CPU and on the GPU (a model trained here
#      on the CPU) and compare the predictions and signals the two runs write; then once with
#      `device = "auto"`, whose summary says which device it took;
#   3. time inference per batch of 1, 8, 64 and 1024 instruments on the GPU, then on the CPU.
# Everything it prints also goes to $OUT/gpu-results.txt. Takes a few minutes.
#
# A dry run of the same steps on any machine, with a CPU build and the CPU as the "device":
#   TICKFLOW_BIN=target/release/tickflow DEVICE=cpu OUT=/tmp bash benches/gpu.sh
set -uo pipefail
OUT=${OUT:-/tmp}
DEVICE=${DEVICE:-cuda:0}
exec > >(tee "$OUT/gpu-results.txt") 2>&1
date -u
if [ -n "${TICKFLOW_BIN:-}" ]; then
  BIN=$TICKFLOW_BIN
else
  BIN=/tmp/tickflow-gpu
  python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('${1:-.gpu/tickflow.xz}'),open('$BIN','wb'))" && chmod +x $BIN
  nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv
  NVP=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null)
  LP=""
  for d in "$NVP/cu13/lib" "$NVP"/*/lib /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
           /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [ -d "$d" ] && LP="$LP:$d"
  done
  export LD_LIBRARY_PATH="${LP#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  ldd $BIN | grep -E 'cuda|cublas|curand|not found'
fi

echo "== 1. cpu vs $DEVICE agreement, model by model"
# Timed: the first use of the device (opening it, candle's kernels loaded) is most of it.
time timeout 120 $BIN model check --device "$DEVICE" --rows 1024 --tolerance 1e-4; echo "check rc=$?"

echo "== 2. the predict operator in pipelines/ml.toml, on cpu and on $DEVICE"
W=$(mktemp -d)
timeout 120 $BIN train pipelines/ml.toml --model gru --epochs 5 --no-strategy --out "$W/gru" \
  | grep -E '^model|^  model  '
echo "train rc=${PIPESTATUS[0]}"
# `auto` only where there is a device to take: a dry run of the CUDA build links a driver stub,
# whose entry points answer nothing an `auto` probe could use.
for dev in cpu "$DEVICE" $([ "$DEVICE" != cpu ] && echo auto); do
  sed -e "s#^model = .*#model = \"$W/gru\"#" -e "s#^device = .*#device = \"$dev\"#" \
    pipelines/ml.toml > "$W/ml-$dev.toml"
  grep -E '^(model|device) =' "$W/ml-$dev.toml"
  timeout 120 $BIN run "$W/ml-$dev.toml" --seed 43 --workers 2 --quiet --output "$W/out-$dev" \
    | grep -E 'predictions|signals|wall'
  echo "run on $dev rc=${PIPESTATUS[0]}"
done
python3 - "$W/out-cpu" "$W/out-$DEVICE" <<'PY'
import json, sys
def load(d, name):
    with open(f"{d}/{name}.jsonl") as f:
        return [json.loads(l) for l in f]
a, b = (load(d, "predictions") for d in sys.argv[1:])
key = lambda r: (r["instrument"], r["ts_event"])
a.sort(key=key); b.sort(key=key)
same = len(a) == len(b) and all(key(x) == key(y) for x, y in zip(a, b))
worst = max((max(abs(x["p_up"] - y["p_up"]), abs(x["expected_return"] - y["expected_return"]))
             for x, y in zip(a, b)), default=float("nan"))
sa, sb = (load(d, "signals") for d in sys.argv[1:])
print(f"predictions: {len(a)} on cpu, {len(b)} on the device, same rows: {same}; "
      f"largest difference {worst:.3e}")
print(f"signals: {len(sa)} on cpu, {len(sb)} on the device")
ok = same and len(a) > 0 and worst <= 1e-4
print("pipeline agreement", "ok" if ok else "FAILED")
sys.exit(0 if ok else 1)
PY
echo "compare rc=$?"

echo "== 3. $DEVICE latency"
# Batches of 8: what each of the pipeline's 2 workers predicts per step (16 instruments).
timeout 200 $BIN model bench --device "$DEVICE" --batches 1,8,64,1024 --iters 1000; echo "bench rc=$?"
echo "== cpu latency (this machine)"
timeout 200 $BIN model bench --device cpu --batches 1,8,64,1024 --iters 500; echo "bench rc=$?"
