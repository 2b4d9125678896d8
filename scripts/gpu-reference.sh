#!/usr/bin/env bash
# Writes tests/reference/gpu_check_cpu_losses.json: the per-step losses of 300 CPU steps of nano
# (batch 32) and tiny (batch 4, so the CPU run takes minutes), the reference item 3 of
# scripts/gpu-check.sh compares the GPU runs with. The CPU run is bitwise independent of the thread
# count, so these numbers hold on any machine. Usage: bash scripts/gpu-reference.sh [ECGFM_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
ecgfm="${1:-target/release/ecgfm}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for spec in nano:32 tiny:4; do
    model="${spec%%:*}"
    batch="${spec##*:}"
    "$ecgfm" pretrain --device cpu --precision fp32 --model "$model" --batch-size "$batch" --steps 300 --seed 0 \
        --checkpoint-every 0 --set train.log_every=1 --out "$work/$model" > "$work/$model.log"
done
python3 - "$work" > tests/reference/gpu_check_cpu_losses.json <<'PY'
import json, sys
work = sys.argv[1]
out = {"command": "bash scripts/gpu-reference.sh", "steps": 300, "seed": 0, "runs": {}}
for model, batch in (("nano", 32), ("tiny", 4)):
    with open(f"{work}/{model}/metrics.jsonl") as f:
        losses = [json.loads(line)["loss"] for line in f]
    assert len(losses) == 300, (model, len(losses))
    # The resolved configuration, so scripts/gpu-check.sh can tell a stale reference.
    config = open(f"{work}/{model}/config.toml").read()
    out["runs"][model] = {"batch_size": batch, "config": config, "losses": losses}
print(json.dumps(out, indent=1))
PY
echo "wrote tests/reference/gpu_check_cpu_losses.json"
