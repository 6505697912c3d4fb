#!/usr/bin/env bash
# Fetches the sample data from Debian packages into $LABELHOST_CACHE/data (never committed):
#   mricron-data: ch2.nii.gz (Colin27 T1) and ch2bet.nii.gz (its brain mask);
#   insighttoolkit5-examples: a real subject's T1, its skull strip and a 6-class segmentation.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
data="$LABELHOST_CACHE/data"
[ -f "$data/.complete" ] && exit 0
mkdir -p "$data"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
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
