#!/usr/bin/env bash
# The README's test command: installs the Python oracles the tests compare against (wfdb, scipy,
# pyarrow, pandas, duckdb, and moto, whose S3 server the object-store tests start on localhost;
# NVRTC and the CUDA headers, which compile every CUDA kernel without a GPU), then runs the whole
# workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# The CUDA kernels' host harness (kernels/cuda-host) compiles them with g++.
if ! command -v g++ > /dev/null; then
    apt-get update -qq && apt-get install -y -qq g++
fi
python3 -m pip install --quiet --disable-pip-version-check -r scripts/test-requirements.txt
source scripts/cuda-env.sh
# The oracles are installed now: a test must fail, not skip, if one is missing.
export ECGFM_REQUIRE_ORACLES=1
cargo test --workspace --release
