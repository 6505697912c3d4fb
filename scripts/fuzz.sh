#!/usr/bin/env bash
# Runs each fuzz target (tests/fuzz: nifti, nrrd, multipart, params) for a bounded time,
# starting from its committed seeds (tests/fuzz/corpus, made by tests/fuzz/make_corpus.py).
# New inputs go to a scratch folder, not the clone; a crash stops the run, names the
# input that caused it (kept under $LABELHOST_CACHE/fuzz-artifacts) and fails.
#   scripts/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]   (default 30, every target)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
seconds="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(nifti nrrd multipart params)

# cargo-fuzz from crates.io, cached with the rest (scripts/tools.sh).
scripts/tools.sh cargo-fuzz
export PATH="$LABELHOST_CACHE/cargo-tools/bin:$PATH"
# Sanitizer flags are unstable options: the nightly toolchain when the machine has one,
# else the pinned stable compiler told to accept them.
if rustup run nightly rustc --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi
cargo fmt --manifest-path tests/fuzz/Cargo.toml --check
export CARGO_TARGET_DIR="$LABELHOST_CACHE/fuzz-target"
artifacts="$LABELHOST_CACHE/fuzz-artifacts"
mkdir -p "$artifacts"
for t in "${targets[@]}"; do
    found="$(mktemp -d)"
    echo "== fuzz $t: ${seconds}s"
    # max_len: room for a volume header with data and extensions, and for a multipart
    # body past the 64 KiB header limit (the target also pads). timeout: per input.
    "${fuzz[@]}" run --fuzz-dir tests/fuzz "$t" "$found" "tests/fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/$t-"
    rm -rf "$found"
done
