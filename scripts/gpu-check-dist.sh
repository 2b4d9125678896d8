#!/usr/bin/env bash
# GPU checks of data-parallel training (issue 9), from the prebuilt binaries of gpu-bin/ (no cargo,
# no network; NCCL is the pip wheel's libnccl.so.2, nvidia-nccl-cu13 for CUDA 13, which
# scripts/gpu-check-lib.sh links as libnccl.so). Multi-rank correctness is tested with CPU ranks
# in CI; this exercises what only a GPU can:
#   nccl:        all-reduce, reduce-scatter with accumulation, all-gather, broadcast and barrier
#                through the real library, one rank (test binary nccl_gpu, trainer/dist/tests)
#   dp_launch:   `ecgfm launch --nproc-per-node 1 -- pretrain --device cuda` (the gradients reduced
#                by NCCL on its own stream, in small buckets overlapped with the backward pass, 2
#                micro-batches accumulated), with and without --zero 1: with one rank the losses
#                and final weights must equal, bit for bit, those of one plain process
# scripts/gpu-check.sh sources this file for items of its own report; alone,
# `bash scripts/gpu-check-dist.sh [REPORT.json]` writes a report of these two items. In the dry run
# (ECGFM_CHECK_DEVICE=cpu) there is no NCCL: only dp_launch runs, on CPU ranks.
if [ -z "${gpu_check_lib:-}" ]; then
    set -uo pipefail
    cd "$(dirname "$0")/.."
    source scripts/gpu-check-lib.sh "${1:-gpu-check-dist-report.json}" ecgfm nccl_gpu
    dist_alone=1
fi

# ---- NCCL through the real library --------------------------------------------------------------
if [ "$device" != cpu ]; then
    timeout -k 10 $(limit 60) "$bin/nccl_gpu" --ignored --test-threads 1 --nocapture > "$work/nccl.log" 2>&1
    record nccl $? "" "$work/nccl.log"
fi

# ---- a launched one-rank run equals one process ----------------------------------------------------
dp_args=(--model nano --batch-size 16 --steps 20 --seed 0 --checkpoint-every 10
    --set train.log_every=1 --set train.accum_steps=2)
status=0
timeout -k 10 $(limit 60) "$ecgfm" pretrain --device "$device" "${dp_args[@]}" --out "$work/dp-single" \
    > "$work/dp_launch.log" 2>&1 || status=1
for zero in 0 1; do
    timeout -k 10 $(limit 60) "$ecgfm" launch --nproc-per-node 1 --master-port $((29500 + RANDOM % 2000)) -- \
        pretrain --device "$device" "${dp_args[@]}" --zero $zero --bucket-mb 0.05 \
        --out "$work/dp-launch-$zero" >> "$work/dp_launch.log" 2>&1 || status=1
done
python3 - "$work" > "$work/dp_launch.json" <<'PY' || status=1
import json, struct, sys
work = sys.argv[1]
def losses(run):
    try:
        return [json.loads(l)["loss"] for l in open(f"{work}/{run}/metrics.jsonl")]
    except OSError:
        return None
def weights(run):
    try:
        data = open(f"{work}/{run}/checkpoints/step_00000020/model.safetensors", "rb").read()
    except OSError:
        return None
    return data[8 + struct.unpack("<Q", data[:8])[0]:]
want = losses("dp-single")
details = {"steps": len(want or []), "final_loss": want[-1] if want else None}
ok = bool(want) and len(want) == 20
for zero in (0, 1):
    run = f"dp-launch-{zero}"
    same = {"losses_bitwise": losses(run) == want,
            "weights_bitwise": weights(run) is not None and weights(run) == weights("dp-single")}
    details[f"zero{zero}"] = same
    ok = ok and all(same.values())
print(json.dumps(details))
sys.exit(0 if ok else 1)
PY
record dp_launch $status "$work/dp_launch.json" "$work/dp_launch.log"

if [ -n "${dist_alone:-}" ]; then
    finish
fi
