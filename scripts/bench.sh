#!/usr/bin/env bash
# Runs the benchmarks (release): plugin load, hot-swap time and memory per leaked generation;
# the brain pipeline in process, over HTTP and in plain Python PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
# The Python reference of the brain bench needs these beside the pinned torch.
python3 -m pip install --quiet --disable-pip-version-check numpy nibabel scipy
cargo build --release -p labelhost -p labelhost-app-brain
cargo bench -p labelhost --bench plugin_lifecycle
cargo bench -p labelhost --bench brain_pipeline
