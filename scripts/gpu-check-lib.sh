# Sourced by scripts/gpu-check.sh and scripts/gpu-check-dist.sh (run from the repository root):
# `source scripts/gpu-check-lib.sh REPORT.json BINARY...` sets up the check of a GPU machine that
# has no Rust: the time budget (`limit SECONDS` cuts a command's timeout to what is left of 7.5
# minutes), a work folder, `record ITEM STATUS [DETAILS.json] [LOG]` and `finish [FATAL]` (writes
# the one JSON report and exits), the prerequisites (a GPU, the prebuilt BINARY... in gpu-bin/,
# the CUDA and NCCL libraries of the pip wheels) and the loss helpers `losses RUN_DIR` and
# `compare_losses GOT WANT START OUT.json`. ECGFM_CHECK_DEVICE=cpu: a dry run on the CPU.
gpu_check_lib=1
root="$PWD"
report="$1"
shift
device="${ECGFM_CHECK_DEVICE:-cuda}"
# The dry run's CPU steps are slower: every limit is multiplied by `slow`.
if [ "$device" = cpu ]; then slow=5; else slow=1; fi
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

# Records item $1 as passed ($2 = 0), failed (another number) or unavailable on this machine ($2 =
# unavailable: left out of the verdict), with details from the JSON file $3 (optional) and the last
# lines of log $4 (optional).
record() {
    python3 - "$work/items/$1.json" "$2" "${3:-}" "${4:-}" <<'PY'
import json, sys
path, status, details, log = sys.argv[1:5]
if status == "unavailable":
    item = {"ok": None, "unavailable": True}
else:
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
judged = [i["ok"] for i in items.values() if i["ok"] is not None]
out["ok"] = not fatal and bool(judged) and all(judged)
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
for exe in "$@"; do
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

