#!/usr/bin/env bash
# Makes the models that are built, not downloaded, into $LABELHOST_CACHE/models (never
# committed): the `segmentation` app's stand-in UNet (plugins/segmentation/models/make_unet.py).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
out="$LABELHOST_CACHE/models/segmentation"
script=plugins/segmentation/models/make_unet.py
stamp="$out/.made-from-$(sha256sum "$script" | cut -c1-16)"
[ -f "$stamp" ] && exit 0
mkdir -p "$out"
python3 "$script" "$out/unet.pt" 2>/dev/null
rm -f "$out"/.made-from-* && touch "$stamp"
echo "make-models: $out/unet.pt"
