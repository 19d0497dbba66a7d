#!/bin/bash
# On a build machine (no GPU, no CUDA toolkit): build tickflow with candle's CUDA device and pack
# what the GPU machine needs into .gpu/ (git-ignored): the xz-compressed binary and gpu.sh.
# nvcc and the CUDA libraries come from PyPI wheels (../shared/gpu/cuda-build-env.sh); the first
# build spends about 15 minutes compiling candle's kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${TICKFLOW_SHARED:-../shared}
cargo fetch
# shellcheck disable=SC1091
source "$SHARED/gpu/cuda-build-env.sh"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
# A target directory of its own: the cuda feature changes candle's build, and sharing
# target/release would rebuild it back and forth with the ordinary release build.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
cargo build --release --features cuda -p tickflow-cli
mkdir -p .gpu
# Debug info is three quarters of the binary (the release profile keeps line tables); what
# travels to the GPU machine must stay under 64 MiB, so the packed copy keeps only the symbols.
strip --strip-debug -o .gpu/tickflow "$CARGO_TARGET_DIR/release/tickflow"
xz -T2 -6 -c .gpu/tickflow > .gpu/tickflow.xz
rm .gpu/tickflow
size=$(stat -c %s .gpu/tickflow.xz)
if [ "$size" -ge $((60 * 1024 * 1024)) ]; then
  echo "gpu-build: .gpu/tickflow.xz is $size bytes; what travels must stay under 64 MiB" >&2
  exit 1
fi
cp benches/gpu.sh .gpu/gpu.sh
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
ls -l .gpu
