#!/usr/bin/env bash
# Fetches the sample data and the pretrained model into $LABELHOST_CACHE (never committed):
#   data/: from Debian packages
#     mricron-data: ch2.nii.gz (Colin27 T1) and ch2bet.nii.gz (its brain mask);
#     insighttoolkit5-examples: a real subject's T1, its skull strip and a 6-class segmentation;
#   models/deepbet/: bbox_model.pt and model.pt from PyPI's deepbet 1.0.2 wheel (MIT).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

models="$LABELHOST_CACHE/models/deepbet"
if [ ! -f "$models/.complete" ]; then
    mkdir -p "$models"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps deepbet==1.0.2 -d "$tmp/wheel"
    python3 - "$tmp"/wheel/deepbet-1.0.2-*.whl "$models" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in ("data/models/bbox_model.pt", "data/models/model.pt"):
        with z.open(name) as src, open(f"{out}/{name.rsplit('/', 1)[1]}", "wb") as dst:
            dst.write(src.read())
PY
    touch "$models/.complete"
    echo "fetch-data: deepbet models in $models"
fi

data="$LABELHOST_CACHE/data"
[ -f "$data/.complete" ] && exit 0
mkdir -p "$data"
packages=(mricron-data insighttoolkit5-examples)
if ! (cd "$tmp" && apt-get download "${packages[@]}" >/dev/null 2>&1); then
    apt-get update -qq >/dev/null
    (cd "$tmp" && apt-get download "${packages[@]}" >/dev/null)
fi
for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
cp "$tmp/root/usr/share/mricron/templates/"{ch2.nii.gz,ch2bet.nii.gz} "$data/"
cp "$tmp/root/usr/share/doc/insighttoolkit5-examples/examples/Data/"KmeansTest_T1{UCharRaw,RawSkullStrip,KmeansPrelimSegmentation}.nii.gz "$data/"
touch "$data/.complete"
echo "fetch-data: sample volumes in $data"
