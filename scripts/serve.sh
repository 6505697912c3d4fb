#!/usr/bin/env bash
# Sets everything up, builds (release), packs the first-party apps into bundles and serves
# them on a sample studies folder (http://127.0.0.1:8000 unless LABELHOST_PORT says otherwise).
# Extra arguments go to `labelhost serve` (for example --conf KEY=VALUE).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -p labelhost -p labelhost-app-brain -p labelhost-app-segmentation
bin="$CARGO_TARGET_DIR/release/labelhost"
plugins="${LABELHOST_PLUGINS:-$PWD/.cache/plugins}"
studies="${LABELHOST_STUDIES:-$PWD/.cache/studies}"
rm -rf "$plugins" && mkdir -p "$plugins" "$studies"
"$bin" pack --library "$CARGO_TARGET_DIR/release/liblabelhost_app_brain.so" \
    --asset plugins/brain/assets/otsu.json=assets/otsu.json \
    --asset "$LABELHOST_CACHE/models/deepbet/bbox_model.pt=models/bbox_model.pt" \
    --asset "$LABELHOST_CACHE/models/deepbet/model.pt=models/model.pt" \
    --asset "$LABELHOST_CACHE/models/brain/brain_unet.pt=models/brain_unet.pt" \
    --asset "$LABELHOST_CACHE/models/brain/brain_unet_dropout.pt=models/brain_unet_dropout.pt" \
    --asset "$LABELHOST_CACHE/models/brain/brain_deepedit.pt=models/brain_deepedit.pt" --out "$plugins/brain"
"$bin" pack --library "$CARGO_TARGET_DIR/release/liblabelhost_app_segmentation.so" \
    --asset "$LABELHOST_CACHE/models/segmentation/unet.pt=models/unet.pt" --out "$plugins/segmentation"
for f in ch2.nii.gz KmeansTest_T1UCharRaw.nii.gz; do
    [ -f "$studies/$f" ] || cp "$LABELHOST_CACHE/data/$f" "$studies/$f"
done
exec "$bin" serve --plugins "$plugins" --studies "$studies" "$@"
