#!/usr/bin/env bash
# Fills gpu-bin/ (ignored by git) with what scripts/gpu-check.sh runs on a GPU machine that has
# no Rust: the stripped release `ecgfm` binary and the test binaries that check the CUDA backend
# (kernels: cuda_against_cpu, grad_checks, reference, adamw; trainer: parity). Data the checks read (the PyTorch fixture, the CPU
# reference losses) is tracked in tests/reference/ and travels with the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
out=gpu-bin
rm -rf "$out"
mkdir -p "$out"
cargo build --release -p ecgfm-launch --bin ecgfm
target="${CARGO_TARGET_DIR:-target}"
cp "$target/release/ecgfm" "$out/ecgfm"
# The test executables' paths, from cargo's JSON messages.
for spec in ecgfm-kernels:cuda_against_cpu ecgfm-kernels:grad_checks ecgfm-kernels:reference \
    ecgfm-kernels:adamw ecgfm-trainer:parity; do
    crate="${spec%%:*}"
    test="${spec##*:}"
    exe="$(cargo test --release -p "$crate" --test "$test" --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])')"
    cp "$exe" "$out/$test"
done
strip "$out"/*
du -sh "$out"
size=$(du -sb "$out" | cut -f1)
if [ "$size" -gt $((64 * 1024 * 1024)) ]; then
    echo "gpu-bin/ is $size bytes: over the 64 MiB a GPU run can carry" >&2
    exit 1
fi
ls -l "$out"
