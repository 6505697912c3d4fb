#!/usr/bin/env bash
# Runs every test: sets up LibTorch, the data, the cargo tools, Chromium, Orthanc and
# PostgreSQL if missing, builds the server and all plugins, checks formatting and lints
# (warnings are errors),
# then runs the workspace's unit and end-to-end tests, then each fuzz target for
# FUZZ_SECONDS (30) from its seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/tools.sh
scripts/browser.sh
scripts/pacs.sh install
scripts/postgres.sh install
scripts/build.sh
source scripts/env.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace "$@"
scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
