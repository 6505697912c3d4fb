#!/usr/bin/env bash
# Runs the benchmarks (release): plugin load, hot-swap time and memory per leaked generation.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
cargo build --release -p labelhost-app-brain
cargo bench -p labelhost --bench plugin_lifecycle
