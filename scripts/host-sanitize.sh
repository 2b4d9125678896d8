#!/usr/bin/env bash
# Runs the CUDA kernels' host-harness tests (kernels/cuda-host) with the kernels built under a
# sanitizer, the host's twins of compute-sanitizer for machines with no GPU (CI runs both):
#   address  AddressSanitizer (memcheck): a kernel's read or write outside the buffers it was
#            given, or past the launch's shared memory, stops the test with the source line.
#   thread   ThreadSanitizer (racecheck): a thread reading or writing what another thread of its
#            block, or of a neighbouring block, writes, with no __syncthreads() between, stops
#            the test with both source lines, whichever order the harness ran the threads in.
# Usage: scripts/host-sanitize.sh address|thread [cargo test arguments, e.g. a test name]
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-}"
case "$kind" in
    address) runtime=libasan.so ;;
    thread) runtime=libtsan.so ;;
    *) echo "usage: $0 address|thread [cargo test arguments]" >&2; exit 2 ;;
esac
shift
lib="$(g++ -print-file-name="$runtime")"
[ -e "$lib" ] || { echo "host-sanitize: g++ has no $runtime (install g++ with its sanitizers)" >&2; exit 1; }
# The Rust side is not instrumented, but with the sanitizer's runtime loaded first its malloc
# puts red zones around (or resets the race history of) every buffer the tests allocate. Leak
# checking is off: the harness keeps its fiber stacks for the life of each test thread. Accesses
# inside intercepted calls (the tests' memcpy and the like) are not checked for races: outside
# the kernels nothing tells ThreadSanitizer about the orderings (rayon's, the test harness's).
export ECGFM_HOST_SANITIZE="$kind"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export TSAN_OPTIONS="halt_on_error=1:abort_on_error=1:report_signal_unsafe=0:ignore_interceptors_accesses=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
runner="env LD_PRELOAD=$lib"
if [ "$kind" = thread ]; then
    # Older ThreadSanitizers stop at start-up ("unexpected memory mapping") on kernels that
    # randomise more address bits than they expect; a program run without address-space
    # randomisation works there.
    probe="$(mktemp -d)"
    trap 'rm -rf "$probe"' EXIT
    echo 'int main() { return 0; }' > "$probe/p.cpp"
    g++ -fsanitize=thread "$probe/p.cpp" -o "$probe/p"
    if ! "$probe/p" 2> "$probe/err"; then
        if setarch "$(uname -m)" -R "$probe/p" 2> /dev/null; then
            runner="setarch $(uname -m) -R $runner"
        else
            echo "host-sanitize: ThreadSanitizer cannot run here:" >&2
            cat "$probe/err" >&2
            exit 1
        fi
    fi
fi
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$runner"
cargo test --release -p ecgfm-cuda-host "$@"
