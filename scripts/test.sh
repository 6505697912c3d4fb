#!/usr/bin/env bash
# Runs every test: sets up LibTorch and the data if missing, builds the server and all
# plugins, then runs the workspace's unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
source scripts/env.sh
cargo test --workspace "$@"
