#!/usr/bin/env bash
# The CUDA backend's check on a machine with an NVIDIA GPU, its driver and the CUDA libraries from
# pip (nvidia-cuda-nvrtc, nvidia-cuda-runtime, nvidia-cublas; CUDA 13), and no Rust: it runs the
# prebuilt binaries of gpu-bin/ (fill it with `bash scripts/gpu-build.sh` on a build machine) and
# writes ONE JSON report (default gpu-check-report.json; exit status 0 only when every item passed):
#   1. ops:         every op of CudaBackend against CpuBackend on random and ragged shapes
#                   (test binary cuda_against_cpu; fp32, cuBLAS in pedantic fp32 math; and a bf16
#                   linear layer through cuBLASLt's fused bias epilogue, which must have run), and the
#                   kernel tests on the GPU: finite-difference gradients, naive f64 loops, AdamW
#                   (grad_checks, reference, adamw)
#   2. parity:      the nano model against the committed PyTorch fixture, at the CUDA limits
#                   (test binary parity: 1e-5 loss, 1e-4 gradients and AdamW losses, 3e-3 of
#                   the distance moved for the AdamW run's final weights)
#  2b. sanitizer:   compute-sanitizer over the attention op tests and the MMA check (the kernels
#                   with shared memory and barriers): memcheck (out-of-bounds and misaligned
#                   accesses), racecheck (shared-memory races) and synccheck (barriers in
#                   divergent code). Right after item 2, 40 seconds a tool; a sanitizer that
#                   refuses the device makes the item "unavailable" (not in the verdict); the dry
#                   run runs the same tests without it.
#   3. cpu_losses:  300 steps of nano (batch 32) and tiny (batch 4) on the GPU against the CPU
#                   losses of tests/reference/gpu_check_cpu_losses.json (scripts/gpu-reference.sh),
#                   each within 1e-4 (relative to max(1, |loss|))
#                   (items 3 to 5 run with --precision fp32)
#  3b. bf16_curve:  the same runs with bf16 matrix products (the GPU default): 20-step mean losses
#                   within 2% of fp32 at every step; a second bf16 nano run, recomputing every
#                   block, is bitwise the same
#  3c. operands:    item 3b's nano bf16 run again with its operands kept in f32
#                   (ECGFM_CUDA_F32_OPERANDS=1), and with every bias added in a pass after its GEMM
#                   (ECGFM_CUDA_NO_GEMM_EPILOGUES=1): reports whether each equals the bf16-storage,
#                   cuBLASLt-epilogue run bit for bit (losses and final weights; on the host harness
#                   they do, kernels/cuda-host/tests/model_steps.rs; on a GPU cuBLAS may pick other
#                   kernels); passes when they stay within item 3b's 2% of it
#   4. determinism: a second identical nano GPU run gives bitwise the same losses and weights;
#                   recompute: the same run with train.recompute=blocks, and =pointwise, gives
#                   bitwise the same losses
#   5. resume:      a CPU-written checkpoint resumed on the GPU, and the reverse, against the
#                   uninterrupted run of the resuming device (losses within 1e-4)
#  5b. eval:        `ecgfm eval` (probe and fine-tuning) of item 3's nano run on a synthetic labelled
#                   dataset on the GPU (fp32) against the same on the CPU: the same choices on
#                   validation and test macro AUROCs within 1e-3; the GPU evaluation aborted
#                   after its first unit and run again equals the uninterrupted one bit for bit
#                   (but for `seconds`); `ecgfm embed` on the GPU; `ecgfm validate` on the GPU
#                   gives the run's last logged validation loss bit for bit, on the CPU within 1e-4
#   6. nccl:        NCCL collectives through the real library, one rank (scripts/gpu-check-dist.sh)
#   7. dp_launch:   `ecgfm launch --nproc-per-node 1 -- pretrain --device cuda` (NCCL on device
#                   gradients, with and without --zero 1) equals one plain process bit for bit
#   8. bench:       `ecgfm bench step --device cuda` (bf16) for tiny and base at batch 256 side by side
#                   with PyTorch bf16 autocast + torch.compile + fused AdamW (bench/torch_step.py):
#                   samples/s, ratio, MFU against the dense bf16 peak, GPU memory (measured,
#                   and as counted before the run on a device that runs nothing;
#                   scripts/gpu-check-bench.sh, which alone benchmarks large in a second call)
#  8b. bench_uploads: tiny's step with pageable uploads (ECGFM_CUDA_PAGEABLE_UPLOADS=1) against
#                   item 8's, whose uploads go through page-locked staging (step time,
#                   activation bytes, GPU memory of both)
#  8c. bench_pointwise: tiny's step with train.recompute=pointwise against item 8's (step time,
#                   GPU memory, activation bytes)
#  8d. bench_operands: base's step with its bf16-product operands kept in f32
#                   (ECGFM_CUDA_F32_OPERANDS=1) against item 8's, which stores them in bf16 (step
#                   time, GPU memory, activation bytes)
#  8e. bench_inputs: tiny's step with the batch copied on the compute stream between steps
#                   (ECGFM_CUDA_SERIAL_INPUTS=1) against item 8's, which copies it on a second
#                   stream while the step before it runs (step time, GPU memory)
#  8f. bench_epilogues: base's step with every linear layer's bias added in a pass after its GEMM
#                   (ECGFM_CUDA_NO_GEMM_EPILOGUES=1) against item 8's, whose bf16 GEMMs add it in
#                   a cuBLASLt epilogue (step time, GPU memory; item 8's JSON counts the shapes
#                   cuBLASLt fused and refused)
#  8g. bench_math:  base's step in fp32 (batch a quarter of item 8's) with the fp32 cuBLAS handle
#                   in its default math mode (ECGFM_CUDA_DEFAULT_MATH=1) against pedantic math (the
#                   default): step time and SGEMM GFLOP/s of both (whether pedantic math costs)
#   9. bench_attention: `ecgfm bench attention` for base at batch 256 against PyTorch's
#                   scaled_dot_product_attention in bf16 (bench/torch_attention.py)
#  10. profile:     the per-op GPU time of one tiny step (`bench step --profile`; in the log)
# Every item runs under a timeout (the whole check stays under 8 minutes). Without a usable GPU it
# stops at once with a report saying why. ECGFM_CHECK_DEVICE=cpu is a dry run of the script's own
# logic on a machine without a GPU (CPU for "cuda", nano only, no NCCL, a small benchmark; report
# marked). The set-up and helpers shared with scripts/gpu-check-dist.sh: scripts/gpu-check-lib.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-check-lib.sh "${1:-gpu-check-report.json}" \
    ecgfm cuda_against_cpu grad_checks reference adamw parity nccl_gpu
if [ "$device" = cpu ]; then
    runs="nano:32" bench_models="nano" bench_batch=8
else
    runs="nano:32 tiny:4" bench_models="tiny base" bench_batch=256
fi

# ---- 1. every op against the CPU backend ------------------------------------------------------
status=0
for exe in cuda_against_cpu grad_checks reference adamw; do
    timeout -k 10 $(limit 60) "$bin/$exe" --test-threads 1 >> "$work/ops.log" 2>&1 || status=1
done
record ops $status "" "$work/ops.log"

# ---- 2. parity with the PyTorch fixture (CPU and CUDA) ----------------------------------------
timeout -k 10 $(limit 60) "$bin/parity" --test-threads 1 --nocapture > "$work/parity.log" 2>&1
record parity $? "" "$work/parity.log"

# ---- 2b. the attention kernels under compute-sanitizer ----------------------------------------
# Early, with limits of its own, so the benchmarks cannot starve it. A sanitizer that refuses the
# device (as on some virtualised machines: "Device not supported") makes the item unavailable,
# not failed: the report says so and leaves it out of its verdict.
status=0
if [ "$device" = cpu ]; then
    tools="none"
else
    tools="memcheck racecheck synccheck"
    sanitizer="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
    [ -x "$sanitizer" ] || { echo "compute-sanitizer not found" > "$work/sanitizer.log"; status=1; tools=""; }
fi
for tool in $tools; do
    echo "---- $tool" >> "$work/sanitizer.log"
    case $tool in
        none) run=() ;;
        *) run=("$sanitizer" --tool "$tool" --error-exitcode 1) ;;
    esac
    timeout -k 10 $(limit 40) "${run[@]}" "$bin/cuda_against_cpu" attention tensor_core --test-threads 1 \
        >> "$work/sanitizer.log" 2>&1 || status=1
    if grep -q "Device not supported" "$work/sanitizer.log"; then
        status=unavailable
        break
    fi
done
record sanitizer $status "" "$work/sanitizer.log"

# ---- 3. 300 GPU steps against the committed CPU losses ---------------------------------------
fixture="$root/tests/reference/gpu_check_cpu_losses.json"
status=0
echo '{}' > "$work/cpu_losses.json"
for spec in $runs; do
    model="${spec%%:*}"
    batch="${spec##*:}"
    run="$work/run-$model"
    timeout -k 10 $(limit 100) "$ecgfm" pretrain --device "$device" --precision fp32 --model "$model" --batch-size "$batch" \
        --steps 300 --seed 0 --checkpoint-every 0 --set train.log_every=1 --out "$run" > "$work/$model.log" 2>&1 ||
        status=1
    losses "$run" > "$work/$model.losses" 2> /dev/null || status=1
    python3 -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))["runs"][sys.argv[2]]["losses"], open(sys.argv[3], "w"))' \
        "$fixture" "$model" "$work/$model.reference" 2> /dev/null || status=1
    compare_losses "$work/$model.losses" "$work/$model.reference" 0 "$work/$model.cmp.json" || status=1
    # A reference made with other defaults is stale, not a GPU error: say so. Every setting the
    # reference recorded (but the device) must be the run's; settings added since are new.
    python3 - "$fixture" "$model" "$run/config.toml" "$work/$model.cmp.json" <<'PY' || status=1
import json, sys, tomllib
fixture, model, config, out = sys.argv[1:5]
def flat(table, prefix=""):
    for key, value in table.items():
        if isinstance(value, dict):
            yield from flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value
want = dict(flat(tomllib.loads(json.load(open(fixture))["runs"][model]["config"])))
try:
    got = dict(flat(tomllib.load(open(config, "rb"))))
except OSError:
    got = {}
stale = sorted(k for k, v in want.items() if k != "train.device" and got.get(k) != v)
details = json.load(open(out))
details["reference_config_matches"] = not stale
json.dump(details, open(out, "w"))
if got and stale:
    print(f"{model}: the run's config differs from the reference's in {stale}: rerun scripts/gpu-reference.sh", file=sys.stderr)
    sys.exit(1)
PY
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); d[sys.argv[2]] = json.load(open(sys.argv[3])); json.dump(d, open(sys.argv[1], "w"))' \
        "$work/cpu_losses.json" "$model" "$work/$model.cmp.json" 2> /dev/null || status=1
done
record cpu_losses $status "$work/cpu_losses.json" "$work/$model.log"

# ---- 3b. bf16 mixed precision follows the fp32 curve ----------------------------------------
# The same runs as item 3 with bf16 matrix products (tensor-core GEMMs and attention): the
# 20-step moving averages of the losses within 2% of the fp32 run's at every step, and the runs
# not identical (bf16 really in effect). Then a second bf16 nano run, recomputing every block
# (train.recompute=blocks), must agree with the first bit for bit: determinism, and the
# recomputation rewriting the bf16-stored activations exactly.
status=0
echo '{}' > "$work/bf16_curve.json"
for spec in $runs; do
    model="${spec%%:*}"
    batch="${spec##*:}"
    run="$work/run-$model-bf16"
    timeout -k 10 $(limit 100) "$ecgfm" pretrain --device "$device" --precision bf16 --model "$model" --batch-size "$batch" \
        --steps 300 --seed 0 --checkpoint-every 0 --set train.log_every=1 --out "$run" > "$work/$model-bf16.log" 2>&1 ||
        status=1
    losses "$run" > "$work/$model-bf16.losses" 2> /dev/null || status=1
    python3 - "$work/$model.losses" "$work/$model-bf16.losses" "$work/bf16_curve.json" "$model" <<'PY' || status=1
import json, sys
fp32, bf16, out, model = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3], sys.argv[4]
def smooth(xs, w=20):
    return [sum(xs[max(0, i - w + 1):i + 1]) / len(xs[max(0, i - w + 1):i + 1]) for i in range(len(xs))]
a, b = smooth(fp32), smooth(bf16)
gaps = [abs(y - x) / abs(x) for x, y in zip(a, b)]
worst = max(range(len(gaps)), key=gaps.__getitem__)
details = json.load(open(out))
details[model] = {"steps": len(gaps), "max_rel_gap_20_step_mean": gaps[worst], "at_step": worst,
                  "fp32_last": fp32[-1], "bf16_last": bf16[-1], "identical": fp32 == bf16}
json.dump(details, open(out, "w"))
sys.exit(0 if len(gaps) == 300 and gaps[worst] <= 0.02 and fp32 != bf16 else 1)
PY
done
again="$work/run-nano-bf16-again"
timeout -k 10 $(limit 60) "$ecgfm" pretrain --device "$device" --precision bf16 --model nano --batch-size 32 --steps 300 \
    --seed 0 --checkpoint-every 0 --set train.log_every=1 --set train.recompute=blocks --out "$again" \
    > "$work/nano-bf16-again.log" 2>&1 || status=1
losses "$again" > "$work/nano-bf16-again.losses" 2> /dev/null || status=1
cmp -s "$work/nano-bf16.losses" "$work/nano-bf16-again.losses" || status=1
record bf16_curve $status "$work/bf16_curve.json" "$work/nano-bf16.log"

# ---- 3c. bf16 operand storage and GEMM epilogues against f32 operands and bias passes --------
# On the host harness the nano bf16 run storing its GEMM operands in bf16 (biases in the GEMM's
# epilogue) is bit for bit the run keeping them in f32, and the run adding biases in passes of
# their own. On a GPU the GEMMs of the two storages, and cuBLASLt's epilogue against cuBLAS and
# a bias pass, may run different kernels (other summation orders). This settles it: item 3b's
# nano bf16 run again with ECGFM_CUDA_F32_OPERANDS=1, then with ECGFM_CUDA_NO_GEMM_EPILOGUES=1,
# each compared with item 3b's (losses_bitwise, weights_bitwise: the final model.safetensors,
# first_differing_step); `bitwise` says whether both were. Not bitwise is not an error: the item
# fails only when a run fails or its 20-step mean losses leave 2% of item 3b's.
status=0
echo '{}' > "$work/operands.json"
: > "$work/operands.log"
last_model() { echo "$(ls -d "$1"/checkpoints/step_* 2> /dev/null | tail -1)/model.safetensors"; }
for variant in f32_operands:ECGFM_CUDA_F32_OPERANDS no_epilogues:ECGFM_CUDA_NO_GEMM_EPILOGUES; do
    name="${variant%%:*}"
    run="$work/run-nano-bf16-$name"
    timeout -k 10 $(limit 60) env "${variant##*:}=1" "$ecgfm" pretrain --device "$device" --precision bf16 --model nano \
        --batch-size 32 --steps 300 --seed 0 --checkpoint-every 0 --set train.log_every=1 --out "$run" \
        >> "$work/operands.log" 2>&1 || status=1
    losses "$run" > "$work/nano-bf16-$name.losses" 2> /dev/null || status=1
    python3 - "$work/nano-bf16.losses" "$work/nano-bf16-$name.losses" "$(last_model "$work/run-nano-bf16")" \
        "$(last_model "$run")" "$work/operands.json" "$name" <<'PY' || status=1
import json, sys
base_losses, losses, base_model, model, out, name = sys.argv[1:7]
def load(path, read):
    try:
        with open(path, "rb") as f:
            return read(f)
    except (OSError, ValueError):
        return None
a, b = load(base_losses, json.load), load(losses, json.load)
wa, wb = load(base_model, lambda f: f.read()), load(model, lambda f: f.read())
details = json.load(open(out))
ok = bool(a) and bool(b) and len(a) == len(b) == 300
row = {"steps": len(b or []), "losses_bitwise": ok and a == b,
       "weights_bitwise": None if wa is None or wb is None else wa == wb}
if ok:
    row["first_differing_step"] = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
    row["max_abs_loss_gap"] = max(abs(x - y) for x, y in zip(a, b))
    def smooth(xs, w=20):
        return [sum(xs[max(0, i - w + 1):i + 1]) / len(xs[max(0, i - w + 1):i + 1]) for i in range(len(xs))]
    row["max_rel_gap_20_step_mean"] = max(abs(y - x) / abs(x) for x, y in zip(smooth(a), smooth(b)))
    ok = row["max_rel_gap_20_step_mean"] <= 0.02
details[name] = row
details["bitwise"] = all(r["losses_bitwise"] and r["weights_bitwise"] for k, r in details.items() if k != "bitwise")
json.dump(details, open(out, "w"))
sys.exit(0 if ok else 1)
PY
done
record operands $status "$work/operands.json" "$work/operands.log"

# ---- 4. bitwise determinism of two identical GPU runs -----------------------------------------
run2="$work/run-nano-again"
timeout -k 10 $(limit 60) "$ecgfm" pretrain --device "$device" --precision fp32 --model nano --batch-size 32 --steps 300 \
    --seed 0 --checkpoint-every 0 --set train.log_every=1 --out "$run2" > "$work/nano-again.log" 2>&1
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

# ---- 4b. activation recomputation (blocks, then pointwise) gives the same losses, bit for bit -
status=0
for mode in blocks pointwise; do
    run3="$work/run-nano-recompute-$mode"
    timeout -k 10 $(limit 60) "$ecgfm" pretrain --device "$device" --precision fp32 --model nano --batch-size 32 \
        --steps 300 --seed 0 --checkpoint-every 0 --set train.log_every=1 --set train.recompute=$mode \
        --out "$run3" > "$work/nano-recompute-$mode.log" 2>&1 || status=1
    losses "$run3" > "$work/nano-recompute-$mode.losses" 2> /dev/null || status=1
    cmp -s "$work/nano.losses" "$work/nano-recompute-$mode.losses" || status=1
done
cat "$work"/nano-recompute-*.log > "$work/nano-recompute.log"
record recompute $status "" "$work/nano-recompute.log"

# ---- 5. checkpoints move between devices -------------------------------------------------------
# Uninterrupted 20-step nano runs on each device, and runs that stop at step 10 on one device
# and resume on the other; the resumed steps must match the resuming device's own run.
status=0
resume_args=(--precision fp32 --model nano --batch-size 16 --steps 20 --seed 0 --checkpoint-every 10
    --set train.log_every=1)
echo '{}' > "$work/resume.json"
for pair in "cpu:$device" "$device:cpu"; do
    first="${pair%%:*}"
    second="${pair##*:}"
    whole="$work/whole-$second"
    moved="$work/moved-$first-$second"
    rm -rf "$whole" "$moved"
    timeout -k 10 $(limit 60) "$ecgfm" pretrain --device "$second" "${resume_args[@]}" --out "$whole" > "$work/resume.log" 2>&1 || status=1
    timeout -k 10 $(limit 60) "$ecgfm" pretrain --device "$first" "${resume_args[@]}" --stop-after 10 --out "$moved" >> "$work/resume.log" 2>&1 || status=1
    timeout -k 10 $(limit 60) "$ecgfm" pretrain --device "$second" "${resume_args[@]}" --resume --out "$moved" >> "$work/resume.log" 2>&1 || status=1
    losses "$moved" | python3 -c 'import json, sys; json.dump(json.load(sys.stdin)[10:], sys.stdout)' > "$work/moved.losses" 2> /dev/null || status=1
    losses "$whole" > "$work/whole.losses" 2> /dev/null || status=1
    compare_losses "$work/moved.losses" "$work/whole.losses" 10 "$work/resume-$pair.json" || status=1
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); d[sys.argv[2]] = json.load(open(sys.argv[3])); json.dump(d, open(sys.argv[1], "w"))' \
        "$work/resume.json" "$first-to-$second" "$work/resume-$pair.json" 2> /dev/null || status=1
done
record resume $status "$work/resume.json" "$work/resume.log"

# ---- 5b. evaluation on the GPU against the CPU -------------------------------------------------
status=0
# A labelled set of another generator seed than the stream the runs pretrained on (seed 0): eval
# refuses records a run pretrained on.
labelled="$work/synth-labelled"
timeout -k 10 $(limit 60) "$ecgfm" data synth --out "$labelled" --records 200 --seed 1 > "$work/eval.log" 2>&1 || status=1
for side in "$device" cpu; do
    timeout -k 10 $(limit 60) "$ecgfm" eval --run "$work/run-nano" --data "$labelled" --labels synth \
        --protocol probe,finetune --epochs 2 --bootstrap 200 --device "$side" --precision fp32 \
        --out "$work/eval-$side.json" >> "$work/eval.log" 2>&1 || status=1
done
# The GPU evaluation again, aborted after its first unit and run again: it goes on from the kept
# unit (OUT.units.jsonl) and must give the uninterrupted GPU run's results bit for bit.
eval_gpu=(eval --run "$work/run-nano" --data "$labelled" --labels synth --protocol probe,finetune
    --epochs 2 --bootstrap 200 --device "$device" --precision fp32 --out "$work/eval-resumed.json")
if ECGFM_FAULT_EVAL_ABORT_AFTER_UNITS=1 timeout -k 10 $(limit 60) "$ecgfm" "${eval_gpu[@]}" \
    >> "$work/eval.log" 2>&1; then
    status=1
fi
timeout -k 10 $(limit 60) "$ecgfm" "${eval_gpu[@]}" >> "$work/eval.log" 2>&1 || status=1
timeout -k 10 $(limit 60) "$ecgfm" embed --run "$work/run-nano" --data "$labelled" --device "$device" \
    --out "$work/embed.parquet" >> "$work/eval.log" 2>&1 || status=1
# `ecgfm validate` of the run's last checkpoint on the GPU and on the CPU: the GPU's is the
# validation loss the GPU run logged, bit for bit; the CPU's within 1e-4 of it.
for side in "$device" cpu; do
    timeout -k 10 $(limit 30) "$ecgfm" validate --run "$work/run-nano" --device "$side" --precision fp32 --json \
        > "$work/validate-$side.json" 2>> "$work/eval.log" || status=1
done
python3 - "$work/eval-$device.json" "$work/eval-cpu.json" "$work/eval-resumed.json" \
    "$work/validate-$device.json" "$work/validate-cpu.json" "$work/run-nano/metrics.jsonl" \
    > "$work/eval.json" <<'PY' || status=1
import json, struct, sys
ours, cpu, resumed = (json.load(open(p)) for p in sys.argv[1:4])
def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return {}
val_gpu, val_cpu = load(sys.argv[4]), load(sys.argv[5])
logged = [r["val_loss"] for r in map(json.loads, open(sys.argv[6])) if r.get("val_loss") is not None]
f32 = lambda x: struct.unpack("f", struct.pack("f", x))[0]
validate = {"logged": logged[-1] if logged else None, "device": val_gpu.get("val_loss"),
            "cpu": val_cpu.get("val_loss")}
validate_ok = None not in validate.values() and f32(validate["device"]) == f32(validate["logged"]) \
    and abs(validate["cpu"] - validate["device"]) <= 1e-4 * max(1.0, abs(validate["device"]))
timeless = lambda results: [{k: v for k, v in r.items() if k != "seconds"} for r in results]
resumed_same = timeless(resumed["results"]) == timeless(ours["results"])
rows, ok = [], True
for a, b in zip(ours["results"], cpu["results"]):
    same = a["protocol"] == b["protocol"] and a["selected"] == b["selected"]
    close = abs(a["macro_auroc"] - b["macro_auroc"]) <= 1e-3
    ok &= same and close
    rows.append({"protocol": a["protocol"], "device": ours["device"], "macro_auroc": a["macro_auroc"],
                 "cpu_macro_auroc": b["macro_auroc"], "selected": a["selected"],
                 "cpu_selected": b["selected"]})
ok &= len(rows) == 2 and resumed_same and validate_ok
print(json.dumps({"results": rows, "resumed_after_an_abort_equals_uninterrupted": resumed_same,
                  "validate": validate, "validate_ok": validate_ok}))
sys.exit(0 if ok else 1)
PY
record eval $status "$work/eval.json" "$work/eval.log"

# ---- 6-7. data-parallel training on the GPU: NCCL and a launched run (scripts/gpu-check-dist.sh)
source scripts/gpu-check-dist.sh

# ---- 8. training-step benchmark, side by side with PyTorch bf16 + torch.compile (tiny and base;
# large: bash scripts/gpu-check-bench.sh REPORT.json large) -------------------------------------
source scripts/gpu-check-bench.sh

# Item $1: our side of `bench step` for model $2 run again as the rest of the arguments (a command
# line), against item 8's figures of the same model: step time, activation bytes and GPU memory
# of both, item 8's under the name $3 and this run's under $4.
bench_variant() {
    local item=$1 model=$2 base=$3 side=$4
    shift 4
    timeout -k 10 $(limit 60) "$@" --device "$device" --model "$model" --batch-size "$bench_batch" \
        --steps 10 --warmup 3 --no-torch > "$work/$item.log" 2>&1
    local status=$?
    python3 - "$work/bench.json" "$model" "$work/$item.log" "$base" "$side" > "$work/$item.json" <<'PY' || status=1
import json, sys
bench, model, log, base, side = sys.argv[1:6]
ours = json.load(open(bench))[model]
run = json.loads(open(log).read().strip().splitlines()[-1])
print(json.dumps({"model": model, **{f"{k}_{name}": d.get(k) for name, d in ((base, ours), (side, run))
                  for k in ("step_ms_median", "activation_bytes", "gpu_mem_bytes")}}))
PY
    record "$item" $status "$work/$item.json" "$work/$item.log"
}

# ---- 8b. what page-locked upload staging saves: tiny's step with uploads from pageable memory -
# (ECGFM_CUDA_PAGEABLE_UPLOADS=1) against item 8's staged step, our side only.
bench_variant bench_uploads "${bench_models%% *}" staged pageable \
    env ECGFM_CUDA_PAGEABLE_UPLOADS=1 "$ecgfm" bench step

# ---- 8c. what pointwise recomputation costs and saves: tiny's step with train.recompute=pointwise
# against item 8's, our side only.
bench_variant bench_pointwise "${bench_models%% *}" none pointwise \
    "$ecgfm" bench step --recompute pointwise

# ---- 8d. what bf16 operand storage saves: base's step with the LayerNorm, GELU and qkv outputs
# kept in f32 (ECGFM_CUDA_F32_OPERANDS=1) against item 8's (stored in bf16), our side only.
bench_variant bench_operands "${bench_models##* }" bf16_operands f32_operands \
    env ECGFM_CUDA_F32_OPERANDS=1 "$ecgfm" bench step

# ---- 8e. what the input copy stream saves: tiny's step with each batch copied on the compute
# stream (ECGFM_CUDA_SERIAL_INPUTS=1) against item 8's, copied on a second stream, our side only.
bench_variant bench_inputs "${bench_models%% *}" overlapped serial \
    env ECGFM_CUDA_SERIAL_INPUTS=1 "$ecgfm" bench step

# ---- 8f. what the GEMM epilogues save: base's step with the biases added in passes of their own
# (ECGFM_CUDA_NO_GEMM_EPILOGUES=1) against item 8's, our side only.
bench_variant bench_epilogues "${bench_models##* }" epilogues bias_passes \
    env ECGFM_CUDA_NO_GEMM_EPILOGUES=1 "$ecgfm" bench step

# ---- 8g. what pedantic cuBLAS math costs the fp32 GEMMs: base's fp32 step with the default math
# mode (ECGFM_CUDA_DEFAULT_MATH=1, also true fp32 unless TF32 is asked for) against pedantic math.
status=0
: > "$work/bench_math.log"
for math in pedantic default; do
    timeout -k 10 $(limit 60) env ECGFM_CUDA_DEFAULT_MATH=$([ $math = default ] && echo 1 || echo 0) \
        "$ecgfm" bench step --device "$device" --precision fp32 --model "${bench_models##* }" \
        --batch-size $((bench_batch / 4)) --steps 5 --warmup 2 --no-torch > "$work/bench_math-$math.log" 2>&1 ||
        status=1
    cat "$work/bench_math-$math.log" >> "$work/bench_math.log"
done
python3 - "$work/bench_math-pedantic.log" "$work/bench_math-default.log" > "$work/bench_math.json" <<'PY' || status=1
import json, sys
runs = [json.loads(open(p).read().strip().splitlines()[-1]) for p in sys.argv[1:3]]
print(json.dumps({"model": runs[0].get("model"), "batch_size": runs[0].get("batch_size"),
                  **{f"{k}_{name}": r.get(k) for name, r in zip(("pedantic", "default"), runs)
                     for k in ("step_ms_median", "sgemm_gflops")}}))
PY
record bench_math $status "$work/bench_math.json" "$work/bench_math.log"

# ---- 9. attention forward + backward against PyTorch's scaled_dot_product_attention (bf16) -----
timeout -k 10 $(limit 60) "$ecgfm" bench attention --device "$device" --model "${bench_models##* }" \
    --batch-size "$bench_batch" --steps 10 --warmup 3 > "$work/bench_attention.log" 2>&1
status=$?
tail -1 "$work/bench_attention.log" > "$work/bench_attention.json"
if [ "$device" != cpu ]; then
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(0 if all("torch_ms_median" in r for r in d["shapes"]) else 1)' \
        "$work/bench_attention.json" 2> /dev/null || status=1
fi
record bench_attention $status "$work/bench_attention.json" "$work/bench_attention.log"

# ---- 10. where the time of the smallest benchmarked model's step goes, op by op ---------------
timeout -k 10 $(limit 60) "$ecgfm" bench step --device "$device" --model "${bench_models%% *}" \
    --batch-size "$bench_batch" --steps 1 --warmup 1 --no-torch --profile > "$work/profile.log" 2>&1
record profile $? "" "$work/profile.log"

finish
