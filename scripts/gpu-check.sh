#!/usr/bin/env bash
# The CUDA backend's check on a machine with an NVIDIA GPU, its driver and the CUDA libraries from
# pip (nvidia-cuda-nvrtc, nvidia-cuda-runtime, nvidia-cublas; CUDA 13), and no Rust: it runs the
# prebuilt binaries of gpu-bin/ (fill it with `bash scripts/gpu-build.sh` on a build machine) and
# writes ONE JSON report (default gpu-check-report.json; exit status 0 only when every item passed):
#   1. ops:         every op of CudaBackend against CpuBackend on random and ragged shapes
#                   (test binary cuda_against_cpu; fp32, cuBLAS in pedantic fp32 math), and the
#                   kernel tests on the GPU: finite-difference gradients, naive f64 loops, AdamW
#                   (grad_checks, reference, adamw)
#   2. parity:      the nano model against the committed PyTorch fixture, CPU limits (parity)
#   3. cpu_losses:  300 steps of nano (batch 32) and tiny (batch 4) on the GPU against the CPU
#                   losses of tests/reference/gpu_check_cpu_losses.json (scripts/gpu-reference.sh),
#                   each within 1e-4 (relative to max(1, |loss|))
#   4. determinism: a second identical nano GPU run gives bitwise the same losses and weights
#   5. resume:      a CPU-written checkpoint resumed on the GPU, and the reverse, against the
#                   uninterrupted run of the resuming device (losses within 1e-4)
#   6. bench:       `ecgfm bench step --device cuda` for tiny and base at batch 256 (samples/s, MFU)
# Every item runs under a timeout (the whole check stays under 8 minutes). Without a usable GPU it
# stops at once with a report saying why. ECGFM_CHECK_DEVICE=cpu is a dry run of the script's own
# logic on a machine without a GPU (CPU for "cuda", nano only, a small benchmark; report marked).
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
report="${1:-gpu-check-report.json}"
device="${ECGFM_CHECK_DEVICE:-cuda}"
if [ "$device" = cpu ]; then
    runs="nano:32" bench_models="nano" bench_batch=8 slow=5
else
    runs="nano:32 tiny:4" bench_models="tiny base" bench_batch=256 slow=1
fi
# Seconds a command may take: its own limit, cut to what is left of the 7.5-minute budget.
budget=$((450 * slow))
limit() {
    local own=$(($1 * slow)) left=$((budget - SECONDS))
    [ "$left" -lt 5 ] && left=5
    echo $((own < left ? own : left))
}
bin="$root/gpu-bin"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/items"

# Records item $1 as passed ($2 = 0) or failed, with details from the JSON file $3 (optional) and
# the last lines of log $4 (optional).
record() {
    python3 - "$work/items/$1.json" "$2" "${3:-}" "${4:-}" <<'PY'
import json, sys
path, status, details, log = sys.argv[1:5]
item = {"ok": status == "0", "exit_status": int(status)}
if details:
    try:
        with open(details) as f:
            item.update(json.load(f))
    except (OSError, ValueError) as e:
        item["details_error"] = str(e)
if log:
    try:
        with open(log, errors="replace") as f:
            item["log_tail"] = f.read()[-3000:]
    except OSError:
        pass
with open(path, "w") as f:
    json.dump(item, f)
PY
}

# Writes the report from the recorded items; $1: a fatal error (optional).
finish() {
    python3 - "$work/items" "$report" "${1:-}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        "$(timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)" <<'PY'
import json, os, sys
items_dir, report, fatal, date, gpu = sys.argv[1:6]
items = {}
for name in sorted(os.listdir(items_dir)):
    with open(os.path.join(items_dir, name)) as f:
        items[name[:-5]] = json.load(f)
out = {"date": date, "gpu": gpu or None, "device": os.environ.get("ECGFM_CHECK_DEVICE", "cuda"), "items": items}
if fatal:
    out["error"] = fatal
out["ok"] = not fatal and bool(items) and all(i["ok"] for i in items.values())
with open(report, "w") as f:
    json.dump(out, f, indent=1)
summary = {"ok": out["ok"], "items": {k: i["ok"] for k, i in items.items()}}
if fatal:
    summary["error"] = fatal
print(json.dumps(summary))
sys.exit(0 if out["ok"] else 1)
PY
    exit $?
}

# ---- prerequisites: a GPU, the libraries, the binaries ----------------------------------------
if [ "$device" != cpu ] && ! timeout 20 nvidia-smi > "$work/nvidia-smi.txt" 2>&1; then
    finish "no GPU: nvidia-smi is missing or failed ($(head -c 300 "$work/nvidia-smi.txt" | tr '\n' ' '))"
fi
for exe in ecgfm cuda_against_cpu grad_checks reference adamw parity; do
    [ -x "$bin/$exe" ] || finish "gpu-bin/$exe is missing: run bash scripts/gpu-build.sh on a build machine"
done
source scripts/cuda-env.sh
# NCCL from the pip wheel is libnccl.so.2; cudarc also looks for libnccl.so.
nccl="$(ls "$ECGFM_PY_SITE"/nvidia/*/lib/libnccl.so.2 2>/dev/null | head -1)"
if [ -n "$nccl" ]; then
    mkdir -p "$work/nccl"
    ln -s "$nccl" "$work/nccl/libnccl.so"
    export LD_LIBRARY_PATH="$work/nccl:$LD_LIBRARY_PATH"
fi
export ECGFM_REPO_ROOT="$root" ECGFM_KERNEL_CACHE="$work/kernel-cache"
[ "$device" = cpu ] || export ECGFM_REQUIRE_GPU=1
export RUST_LOG=warn
ecgfm="$bin/ecgfm"

# Losses of a run directory's metrics.jsonl as a JSON list.
losses() {
    python3 -c 'import json, sys; print(json.dumps([json.loads(l)["loss"] for l in open(sys.argv[1])]))' "$1/metrics.jsonl" 2> /dev/null
}

# Compares two loss lists (files of JSON lists, optional slice start $3): writes details to $4,
# exits 0 when every pair is within 1e-4 relative to max(1, |reference|).
compare_losses() {
    python3 - "$1" "$2" "${3:-0}" "$4" <<'PY'
import json, sys
got, want, start, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
try:
    got, want = json.load(open(got)), json.load(open(want))[start:]
except (OSError, ValueError) as e:
    json.dump({"error": f"no losses to compare: {e}"}, open(out, "w"))
    sys.exit(1)
n = min(len(got), len(want))
errors = [abs(g - w) / max(1.0, abs(w)) for g, w in zip(got, want)]
worst = max(range(n), key=lambda i: errors[i]) if n else None
details = {"steps": n, "expected_steps": len(want), "max_rel_error": max(errors) if n else None,
           "worst_step": None if worst is None else start + worst,
           "final_loss": got[-1] if got else None, "final_reference": want[-1] if want else None}
json.dump(details, open(out, "w"))
sys.exit(0 if n == len(want) and n > 0 and max(errors) <= 1e-4 else 1)
PY
}

# ---- 1. every op against the CPU backend ------------------------------------------------------
status=0
for exe in cuda_against_cpu grad_checks reference adamw; do
    timeout $(limit 60) "$bin/$exe" --test-threads 1 >> "$work/ops.log" 2>&1 || status=1
done
record ops $status "" "$work/ops.log"

# ---- 2. parity with the PyTorch fixture (CPU and CUDA) ----------------------------------------
timeout $(limit 60) "$bin/parity" --test-threads 1 --nocapture > "$work/parity.log" 2>&1
record parity $? "" "$work/parity.log"

# ---- 3. 300 GPU steps against the committed CPU losses ---------------------------------------
fixture="$root/tests/reference/gpu_check_cpu_losses.json"
status=0
echo '{}' > "$work/cpu_losses.json"
for spec in $runs; do
    model="${spec%%:*}"
    batch="${spec##*:}"
    run="$work/run-$model"
    timeout $(limit 100) "$ecgfm" pretrain --device "$device" --model "$model" --batch-size "$batch" --steps 300 \
        --seed 0 --checkpoint-every 0 --set train.log_every=1 --out "$run" > "$work/$model.log" 2>&1 ||
        status=1
    losses "$run" > "$work/$model.losses" 2> /dev/null || status=1
    python3 -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))["runs"][sys.argv[2]]["losses"], open(sys.argv[3], "w"))' \
        "$fixture" "$model" "$work/$model.reference" 2> /dev/null || status=1
    compare_losses "$work/$model.losses" "$work/$model.reference" 0 "$work/$model.cmp.json" || status=1
    # A reference made with other defaults is stale, not a GPU error: say so.
    python3 - "$fixture" "$model" "$run/config.toml" "$work/$model.cmp.json" <<'PY' || status=1
import json, sys
fixture, model, config, out = sys.argv[1:5]
strip = lambda text: [l for l in text.splitlines() if not l.startswith("device =")]
want = json.load(open(fixture))["runs"][model]["config"]
try:
    got = open(config).read()
except OSError:
    got = ""
details = json.load(open(out))
details["reference_config_matches"] = strip(got) == strip(want)
json.dump(details, open(out, "w"))
if got and not details["reference_config_matches"]:
    print(f"{model}: the run's config differs from the reference's: rerun scripts/gpu-reference.sh", file=sys.stderr)
    sys.exit(1)
PY
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); d[sys.argv[2]] = json.load(open(sys.argv[3])); json.dump(d, open(sys.argv[1], "w"))' \
        "$work/cpu_losses.json" "$model" "$work/$model.cmp.json" 2> /dev/null || status=1
done
record cpu_losses $status "$work/cpu_losses.json" "$work/$model.log"

# ---- 4. bitwise determinism of two identical GPU runs -----------------------------------------
run2="$work/run-nano-again"
timeout $(limit 60) "$ecgfm" pretrain --device "$device" --model nano --batch-size 32 --steps 300 --seed 0 \
    --checkpoint-every 0 --set train.log_every=1 --out "$run2" > "$work/nano-again.log" 2>&1
status=$?
if [ $status -eq 0 ]; then
    losses "$run2" > "$work/nano-again.losses" 2> /dev/null
    cmp -s "$work/nano.losses" "$work/nano-again.losses" || status=1
    a="$(ls -d "$work/run-nano"/checkpoints/step_* | tail -1)"
    b="$(ls -d "$run2"/checkpoints/step_* | tail -1)"
    cmp -s "$a/model.safetensors" "$b/model.safetensors" || status=1
    cmp -s "$a/optimizer.safetensors" "$b/optimizer.safetensors" || status=1
fi
record determinism $status "" "$work/nano-again.log"

# ---- 5. checkpoints move between devices -------------------------------------------------------
# Uninterrupted 20-step nano runs on each device, and runs that stop at step 10 on one device
# and resume on the other; the resumed steps must match the resuming device's own run.
status=0
resume_args=(--model nano --batch-size 16 --steps 20 --seed 0 --checkpoint-every 10 --set train.log_every=1)
echo '{}' > "$work/resume.json"
for pair in "cpu:$device" "$device:cpu"; do
    first="${pair%%:*}"
    second="${pair##*:}"
    whole="$work/whole-$second"
    moved="$work/moved-$first-$second"
    rm -rf "$whole" "$moved"
    timeout $(limit 60) "$ecgfm" pretrain --device "$second" "${resume_args[@]}" --out "$whole" > "$work/resume.log" 2>&1 || status=1
    timeout $(limit 60) "$ecgfm" pretrain --device "$first" "${resume_args[@]}" --stop-after 10 --out "$moved" >> "$work/resume.log" 2>&1 || status=1
    timeout $(limit 60) "$ecgfm" pretrain --device "$second" "${resume_args[@]}" --resume --out "$moved" >> "$work/resume.log" 2>&1 || status=1
    losses "$moved" | python3 -c 'import json, sys; json.dump(json.load(sys.stdin)[10:], sys.stdout)' > "$work/moved.losses" 2> /dev/null || status=1
    losses "$whole" > "$work/whole.losses" 2> /dev/null || status=1
    compare_losses "$work/moved.losses" "$work/whole.losses" 10 "$work/resume-$pair.json" || status=1
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); d[sys.argv[2]] = json.load(open(sys.argv[3])); json.dump(d, open(sys.argv[1], "w"))' \
        "$work/resume.json" "$first-to-$second" "$work/resume-$pair.json" 2> /dev/null || status=1
done
record resume $status "$work/resume.json" "$work/resume.log"

# ---- 6. training-step benchmark ----------------------------------------------------------------
status=0
echo '{}' > "$work/bench.json"
for model in $bench_models; do
    timeout $(limit 120) "$ecgfm" bench step --device "$device" --model "$model" --batch-size "$bench_batch" \
        --steps 10 --warmup 2 --no-torch > "$work/bench-$model.log" 2>&1 || status=1
    tail -1 "$work/bench-$model.log" > "$work/bench-$model.json"
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); d[sys.argv[2]] = json.load(open(sys.argv[3])); json.dump(d, open(sys.argv[1], "w"))' \
        "$work/bench.json" "$model" "$work/bench-$model.json" 2> /dev/null || status=1
done
cat "$work"/bench-*.log > "$work/bench.log"
record bench $status "$work/bench.json" "$work/bench.log"

# ---- the data-parallel checks (NCCL), when asked: scripts/gpu-check-dist.sh builds with cargo ----
if [ "${ECGFM_GPU_CHECK_DIST:-0}" = 1 ] && [ -f scripts/gpu-check-dist.sh ]; then
    timeout $(limit 120) bash scripts/gpu-check-dist.sh "$work/dist.json" > "$work/dist.log" 2>&1
    record dist $? "$work/dist.json" "$work/dist.log"
fi

finish
