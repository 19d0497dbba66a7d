#!/bin/bash
# On the GPU machine (no Rust): unpack the CUDA build of tickflow carried in .gpu/ (made by
# benches/gpu-build.sh), point it at the driver's and the python wheels' CUDA libraries, then
#   1. check that every model kind gives the same outputs on the GPU as on the CPU;
#   2. time inference per batch of 1, 64 and 1024 instruments on the GPU, then on the CPU.
# Everything it prints also goes to $OUT/gpu-results.txt. Takes a few minutes.
set -uo pipefail
OUT=${OUT:-/tmp}
exec > >(tee "$OUT/gpu-results.txt") 2>&1
BIN=/tmp/tickflow-gpu
python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('${1:-.gpu/tickflow.xz}'),open('$BIN','wb'))" && chmod +x $BIN
date -u
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv
NVP=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null)
LP=""
for d in "$NVP/cu13/lib" "$NVP"/*/lib /usr/local/cuda/lib64 /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
  [ -d "$d" ] && LP="$LP:$d"
done
export LD_LIBRARY_PATH="${LP#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ldd $BIN | grep -E 'cuda|cublas|curand|not found'
echo "== cpu vs gpu agreement"
timeout 120 $BIN model check --device cuda:0 --rows 1024 --tolerance 1e-4; echo "check rc=$?"
echo "== gpu latency"
timeout 200 $BIN model bench --device cuda:0 --iters 1000; echo "bench rc=$?"
echo "== cpu latency (this machine)"
timeout 200 $BIN model bench --device cpu --iters 500; echo "bench rc=$?"
