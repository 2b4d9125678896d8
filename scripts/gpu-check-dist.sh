#!/usr/bin/env bash
# GPU checks of data-parallel training (issue 9), for a machine with an NVIDIA GPU. Not run by CI
# (no GPU there): multi-rank correctness is tested with CPU ranks; this exercises what only a GPU
# can: NCCL through the real library with one rank per GPU, and a launched GPU training run.
# UNVERIFIED until run on a GPU machine. Usage: bash scripts/gpu-check-dist.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== NCCL: libnccl.so.2 from the pip wheel (ecgfm links it as libnccl.so by itself)"
python3 -m pip install --quiet --disable-pip-version-check nvidia-nccl-cu12 || \
    echo "pip could not install nvidia-nccl-cu12; relying on a system libnccl.so.2"

echo "== 1-rank NCCL collectives on device buffers"
cargo test --release -p ecgfm-dist --test nccl_gpu -- --ignored --nocapture

echo "== ecgfm launch --nproc-per-node 1 -- pretrain --device cuda"
cargo build --release -p ecgfm-launch
out=$(mktemp -d)
target/release/ecgfm launch --nproc-per-node 1 --master-port 29731 -- \
    pretrain --device cuda --steps 20 --batch-size 16 --set model.samples=750 \
    --checkpoint-every 10 --out "$out/run"
test -f "$out/run/checkpoints/step_00000020/COMPLETE"
echo "gpu-check-dist: all checks passed"
