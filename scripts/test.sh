#!/usr/bin/env bash
# The README's test command: installs the Python oracles the tests compare against (wfdb, scipy,
# pyarrow, pandas, duckdb, scikit-learn, and moto, whose S3 server the object-store tests start on
# localhost), then runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r scripts/test-requirements.txt
# The oracles are installed now: a test must fail, not skip, if one is missing.
export ECGFM_REQUIRE_ORACLES=1
cargo test --workspace --release
