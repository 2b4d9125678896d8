#!/usr/bin/env bash
# Runs the CUDA kernels' host-harness tests (kernels/cuda-host) with the kernels built under
# AddressSanitizer: every global-memory access of a kernel outside the buffers it was given, and
# every shared-memory access past the launch's bytes, a read as well as a write, stops the test
# with a report naming the kernel's source line. The host twin of compute-sanitizer's memcheck,
# for machines with no GPU (CI runs it). Extra arguments go to cargo test (e.g. a test name).
set -euo pipefail
cd "$(dirname "$0")/.."
libasan="$(g++ -print-file-name=libasan.so)"
[ -e "$libasan" ] || { echo "host-asan: g++ has no libasan.so (install g++ with its libasan)" >&2; exit 1; }
# The Rust side is not instrumented, but with the sanitizer's runtime loaded first its malloc
# puts poisoned red zones around every buffer the tests allocate. Leak checking is off: the
# harness keeps its fiber stacks for the life of each test thread.
export ECGFM_HOST_ASAN=1
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="env LD_PRELOAD=$libasan"
cargo test --release -p ecgfm-cuda-host "$@"
