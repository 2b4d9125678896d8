#!/usr/bin/env bash
# The README's test command: installs the Python oracles the tests compare against (wfdb, scipy,
# pyarrow, pandas, duckdb, scikit-learn, and moto, whose S3 server the object-store tests start on
# localhost; Azurite and Azure's SDK likewise for Azure; NVRTC and the CUDA headers, which compile
# every CUDA kernel without a GPU), then runs the whole workspace's tests, and the CUDA kernels'
# host-harness tests under AddressSanitizer, under ThreadSanitizer and with the fiber switch of
# hosts other than x86-64, and builds the API documentation. The Python packages download while
# the tests compile.
set -euo pipefail
cd "$(dirname "$0")/.."
# The CUDA kernels' host harness (kernels/cuda-host) compiles them with g++, so the build needs it.
if ! command -v g++ > /dev/null; then
    apt-get update -qq && apt-get install -y -qq g++
fi
# PyTorch, for the exported package's loader test (launch/tests/python_encoder.rs), which uses
# whichever of python3 and /usr/bin/python3 imports torch. PyPI's torch brings ~3 GB of CUDA
# libraries (3 minutes to install, measured on a 2-core machine); Debian's CPU-only python3-torch,
# for the system's /usr/bin/python3, is a 150 MB download (1.5 minutes).
install_torch() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        python3-torch >/dev/null \
      && return
  fi
  python3 -m pip install --quiet --disable-pip-version-check torch
}
install_python_oracles() {
  python3 -m pip install --quiet --disable-pip-version-check -r scripts/test-requirements.txt
  if ! python3 -c "import torch" 2>/dev/null && ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
    install_torch
  fi
}
# Azurite, Microsoft's Azure Storage emulator, for the az:// tests (launch/tests/cli_azure.rs): a
# Node.js program from the npm registry (186 MB, half a minute), with Debian's nodejs and npm where
# npm is missing. Where it cannot be installed those tests skip, saying so.
azurite_dir="${CARGO_TARGET_DIR:-target}/azurite"
azurite="$azurite_dir/node_modules/.bin/azurite-blob"
install_azurite() {
  if ! command -v npm > /dev/null; then
    [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null || return 1
    apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        nodejs npm > /dev/null || return 1
  fi
  # A registry that does not answer fails in about two minutes, not npm's default of twenty.
  [ -x "$azurite" ] || npm install --prefix "$azurite_dir" --no-audit --no-fund \
    --loglevel=error --fetch-timeout=60000 --fetch-retries=1 azurite@3.35.0
}
install_oracles() {
  install_python_oracles || return 1
  install_azurite || echo "test.sh: Azurite could not be installed (above): the az:// tests will skip"
}
# The tests need no debug info: without it the build takes 14.4 minutes on 2 cores, not 16.1.
export CARGO_PROFILE_RELEASE_DEBUG=0
oracle_log="$(mktemp)"
trap 'rm -f "$oracle_log"' EXIT
install_oracles > "$oracle_log" 2>&1 &
installing=$!
cargo test --workspace --release --no-run
if ! wait "$installing"; then
  cat "$oracle_log" >&2
  echo "test.sh: installing the Python oracles failed (above)" >&2
  exit 1
fi
cat "$oracle_log"
source scripts/cuda-env.sh
# The oracles are installed now: a test must fail, not skip, if one is missing.
export ECGFM_REQUIRE_ORACLES=1
if [ -x "$azurite" ]; then
    ECGFM_AZURITE="$(cd "$(dirname "$azurite")" && pwd)/azurite-blob"
    export ECGFM_AZURITE ECGFM_REQUIRE_AZURITE=1
fi
# Likewise the real ECG recordings where they are beside the checkout (as in CI): a test whose
# folder of ../shared/data is missing fails. Without ../shared/data (a user's machine) those tests
# skip, saying so.
if [ -d ../shared/data ]; then
    export ECGFM_REQUIRE_SHARED_DATA=1
fi
cargo test --workspace --release
# The CUDA kernels' host harness twice more: under AddressSanitizer (the host's memcheck) and
# under ThreadSanitizer (the host's racecheck). ThreadSanitizer finds a race from the orderings
# the runtime announces, not from the order the threads happened to run in, so it skips the
# shared kernel suite's descending-order copy and the evaluation protocols (which launch the
# encoder steps' kernels again): 4 minutes instead of 6 on 2 cores.
bash scripts/host-sanitize.sh address
bash scripts/host-sanitize.sh thread --test against_cpu --test planted_bugs --test model_steps \
    --test encoder_steps
# And the shared kernel suite once with the block threads switched by glibc's swapcontext, the
# path of hosts other than x86-64 (an aarch64 Grace Hopper) that x86-64 does not otherwise run:
# 1.5 minutes with its build (the system call at each switch makes it ten times slower).
ECGFM_HOST_FIBERS=ucontext cargo test --release -p ecgfm-cuda-host --test against_cpu
# The API documentation, private items included, builds without a warning (a broken intra-doc
# link, a math index read as one). In the release profile it reuses the test build's build
# scripts and procedural macros: 52 s on 2 cores, against 3 to 4.5 minutes in the dev profile.
RUSTDOCFLAGS="-D warnings" cargo doc --release --workspace --no-deps --document-private-items
