#!/usr/bin/env bash
# The README's test command: installs the Python oracles the tests use, starts a local S3 server
# (moto) for the object-store tests, and runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r scripts/test-requirements.txt
cargo test --workspace --release
