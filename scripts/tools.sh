#!/usr/bin/env bash
# Installs the cargo tools the tests use, from crates.io, into $LABELHOST_CACHE/cargo-tools
# (outside the clone; reused when present). Versions that build with this toolchain:
#   cargo-generate 0.23.14  the template test (tests/integration/template.rs); 0.26 needs a newer rustc;
#   cargo-fuzz 0.13.2       scripts/fuzz.sh.
#   scripts/tools.sh [TOOL...]   (default: every tool)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
export CARGO_INSTALL_ROOT="$LABELHOST_CACHE/cargo-tools"
tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(cargo-generate cargo-fuzz)
for tool in "${tools[@]}"; do
    case "$tool" in
        cargo-generate) version=0.23.14 ;;
        cargo-fuzz) version=0.13.2 ;;
        *) echo "tools: unknown tool $tool" >&2; exit 2 ;;
    esac
    if [ "$("$CARGO_INSTALL_ROOT/bin/$tool" --version 2>/dev/null | awk '{print $NF}')" != "$version" ]; then
        echo "tools: installing $tool $version into $CARGO_INSTALL_ROOT (a few minutes, once)"
        # Its own target folder, so the workspace's build cache is left alone.
        CARGO_TARGET_DIR="$LABELHOST_CACHE/cargo-tools/build" \
            cargo install "$tool" --locked --version "$version" --force
        rm -rf "$LABELHOST_CACHE/cargo-tools/build"
    fi
done
