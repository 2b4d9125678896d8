#!/usr/bin/env bash
# Item 8 of scripts/gpu-check.sh, the training-step benchmark side by side with PyTorch: for each
# model, `ecgfm bench step --device cuda` (bf16) at batch 256 followed in the same command by
# bench/torch_step.py (bf16 autocast + torch.compile + fused AdamW): samples/s, the ratio, MFU
# against the dense bf16 peak, GPU memory. gpu-check.sh sources this file for tiny and base;
# alone, `bash scripts/gpu-check-bench.sh [REPORT.json] [MODEL...]` (default: large, which the
# check leaves out to stay within its 8 minutes) writes a report of this one item, for a second
# call on the same machine. ECGFM_CHECK_DEVICE=cpu: the dry run (nano at batch 8, no PyTorch).
if [ -z "${gpu_check_lib:-}" ]; then
    set -uo pipefail
    cd "$(dirname "$0")/.."
    source scripts/gpu-check-lib.sh "${1:-gpu-check-bench-report.json}" ecgfm
    shift $(($# > 0 ? 1 : 0))
    bench_models="${*:-large}" bench_batch=256
    [ "$device" = cpu ] && bench_models=nano bench_batch=8
    bench_alone=1
fi

status=0
echo '{}' > "$work/bench.json"
for model in $bench_models; do
    timeout -k 10 $(limit 150) "$ecgfm" bench step --device "$device" --model "$model" --batch-size "$bench_batch" \
        --steps 10 --warmup 3 > "$work/bench-$model.log" 2>&1 || status=1
    tail -1 "$work/bench-$model.log" > "$work/bench-$model.json"
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); d[sys.argv[2]] = json.load(open(sys.argv[3])); json.dump(d, open(sys.argv[1], "w"))' \
        "$work/bench.json" "$model" "$work/bench-$model.json" 2> /dev/null || status=1
done
cat "$work"/bench-*.log > "$work/bench.log"
# On a GPU the PyTorch side must have run (a missing torch skips it with a message).
if [ "$device" != cpu ]; then
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(0 if d and all("torch_step_ms_median" in r for r in d.values()) else 1)' \
        "$work/bench.json" || status=1
fi
record bench $status "$work/bench.json" "$work/bench.log"

if [ -n "${bench_alone:-}" ]; then
    finish
fi
