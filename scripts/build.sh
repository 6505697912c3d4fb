#!/usr/bin/env bash
# Builds the server, the first-party plugins and the test fixture plugins (debug, or
# release with --release). The fixtures built against other plugin-api revisions live in
# a workspace of their own and are built one package at a time so their features never
# unify with the host's.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
profile=()
[ "${1:-}" = "--release" ] && profile=(--release)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --workspace "${profile[@]}"
for fixture in legacy_app previous_app future_app not_a_plugin newer_app mismatch_app root_panic_app; do
    cargo build "${profile[@]}" --manifest-path tests/fixtures/abi_variants/Cargo.toml -p "$fixture"
done
# Only the final crate is built with panic = "abort" (what a plugin author's profile
# setting does to the code the SDK's macro expands in it).
cargo rustc "${profile[@]}" --manifest-path tests/fixtures/abi_variants/Cargo.toml -p abort_app \
    --lib -- -C panic=abort
