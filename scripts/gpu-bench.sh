#!/usr/bin/env bash
# Issue 8's `/infer` bench (labelhost vs MONAI Label 0.8.5, host/benches/reference/
# infer_vs_monailabel.py) on a lent GPU machine. That machine reaches no registry and a
# call carries 64 MiB at most (../shared/reference/gpu.md, the device tool's README), so
# everything is built and gathered here, in one file:
#
#   scripts/gpu-bench.sh pack [--python 3.12]
#       here: the release build, stripped; the brain bundle with deepbet's two models (the
#       MONAI Label app reads the same files); the bench's volumes and reference masks;
#       MONAI Label 0.8.5 and what it needs beyond the machine's image (KINDS.md lists it:
#       torch 2.11.0+cu130, numpy, scipy, scikit-image, requests...), installed for that
#       Python without OHIF's static viewer (51 MB); ITK, SimpleITK and pydicom-seg as
#       stand-ins (host/benches/reference/standins: 190 MB of wheels, used by none of the
#       bench's steps; MONAI Label's writer then takes its nibabel option). Into
#       .gpu/payload.tar.xz (git-ignored), refused past 56 MiB.
#   scripts/gpu-bench.sh run [--device cuda] [bench options...]
#       there: unpacks into /tmp, runs the bench on the device with --variants (labelhost
#       alone in each precision, with its defaults, `--cudnn-benchmark` and `--device-workers
#       4`) and --alone-if-needed (labelhost's figures even if MONAI Label fails to start
#       there), and writes $OUT/infer-<device>.md, the bench's output, the servers' logs and
#       nvidia-smi's (7 files; a call brings 8 back). Copy the table back into
#       host/benches/results/infer-cuda.md.
#
# The device call (one, after `pack`): command "scripts/gpu-bench.sh run", carry [".gpu"],
# timeout_s 540. A dry run here: `pack --python 3.11`, then `run --device cpu --runs 1
# --rounds 1 --concurrency 1,2` with a python3 whose packages are only the image's.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
payload=.gpu/payload.tar.xz

# What MONAI Label 0.8.5's server imports beyond the machine's image, and the bench's own
# (nibabel, requests-toolbelt): the versions its CPU run uses here.
WHEELS=(monailabel==0.8.5 monai==1.4.0 fastapi==0.110.2 starlette==0.37.2 pydantic==2.14.4
    pydantic_core==2.50.5 pydantic-settings==2.16.3 annotated-types==0.8.0 typing-inspection==0.4.5
    uvicorn==0.54.0 python-multipart==0.0.34 python-dotenv==1.2.4 nibabel==5.4.2
    requests-toolbelt==1.0.0 schedule==1.2.2 expiringdict==1.2.2 expiring-dict==1.1.2
    cachetools==8.0.2 pydicom==2.4.4 dicomweb-client==0.60.1 passlib==1.7.4 PyJWT==2.15.1
    bcrypt==5.0.0 retrying==1.4.2 google-auth==2.63.0 pyasn1==0.6.5 pyasn1_modules==0.4.2
    cryptography==50.0.2 cffi==2.1.1 pycparser==3.12 watchdog==7.1.0 pynrrd==1.1.3
    girder-client==5.0.21 diskcache==5.6.3 shapely==2.2.0)
# Published as a source archive only: built into a wheel here (pure Python).
SOURCE_ONLY=(timeloop==1.0.2)
# (file under DATA_DIR) the bench reads: its three volumes and their reference masks.
DATA=(ch2.nii.gz ch2bet.nii.gz heldout/robex_t1.nii.gz heldout/robex_mask.nii.gz
    KmeansTest_T1UCharRaw.nii.gz KmeansTest_T1RawSkullStrip.nii.gz)

pack() {
    local python=3.12
    while [ $# -gt 0 ]; do
        case $1 in
            --python) python=$2; shift 2 ;;
            *) echo "gpu-bench pack: unknown option $1" >&2; exit 2 ;;
        esac
    done
    scripts/setup.sh
    source scripts/env.sh
    cargo build --release -p labelhost -p labelhost-app-brain
    local target="${CARGO_TARGET_DIR:-target}/release" wheels
    stage=$(mktemp -d)
    trap 'rm -rf "$stage"' EXIT
    mkdir -p "$stage/bin" "$stage/data/heldout" "$stage/plugins" "$stage/lib"
    strip -o "$stage/bin/labelhost" "$target/labelhost"
    strip -o "$stage/lib/liblabelhost_app_brain.so" "$target/liblabelhost_app_brain.so"
    "$target/labelhost" pack --library "$stage/lib/liblabelhost_app_brain.so" \
        --asset plugins/brain/assets/otsu.json=assets/otsu.json \
        --asset "$LABELHOST_CACHE/models/deepbet/bbox_model.pt=models/bbox_model.pt" \
        --asset "$LABELHOST_CACHE/models/deepbet/model.pt=models/model.pt" \
        --out "$stage/plugins/brain" >/dev/null
    rm -r "$stage/lib"
    for f in "${DATA[@]}"; do cp "$LABELHOST_CACHE/data/$f" "$stage/data/$f"; done

    wheels="$LABELHOST_CACHE/gpu-wheels/cp${python/./}"
    mkdir -p "$wheels"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --python-version "$python" --implementation cp --platform manylinux_2_34_x86_64 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$wheels" "${WHEELS[@]}"
    python3 -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$wheels" "${SOURCE_ONLY[@]}"
    python3 -m pip install --quiet --disable-pip-version-check --no-index --no-deps --no-compile \
        --python-version "$python" --implementation cp --only-binary=:all: \
        --target "$stage/site" "$wheels"/*.whl
    # OHIF's viewer is served from here; the bench never asks for it.
    rm -rf "$stage/site/monailabel/endpoints/static/ohif" "$stage/site/bin"
    mkdir "$stage/site/monailabel/endpoints/static/ohif"
    cp -r host/benches/reference/standins/. "$stage/site/"

    mkdir -p .gpu
    tar -C "$stage" -cf - . | xz -T2 -6 >"$payload.part"
    mv "$payload.part" "$payload"
    local size
    size=$(stat -c %s "$payload")
    echo "gpu-bench: $payload is $((size / 1048576)) MiB (the working tree travels beside it)"
    if [ "$size" -gt $((56 * 1048576)) ]; then
        echo "gpu-bench: over 56 MiB: with the working tree it would not fit one device call" >&2
        exit 1
    fi
}

run() {
    local device=cuda
    local -a bench=()
    while [ $# -gt 0 ]; do
        case $1 in
            --device) device=$2; shift 2 ;;
            *) bench+=("$1"); shift ;;
        esac
    done
    [ -f "$payload" ] || { echo "gpu-bench: no $payload; run 'scripts/gpu-bench.sh pack' first" >&2; exit 2; }
    local out=${OUT:-$repo/.gpu/out} dir=/tmp/labelhost-gpu-bench gpu="" torch_lib status=0
    mkdir -p "$out"
    rm -rf "$dir" && mkdir -p "$dir"
    xz -dc "$payload" | tar -C "$dir" -xf -
    export PYTHONPATH="$dir/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    # The image's LibTorch (same version as the wheel the binary was built against).
    torch_lib=$(python3 -c "import torch,os;print(os.path.join(os.path.dirname(torch.__file__),'lib'))")
    export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true
        gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
    fi
    python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
    # What the binary loads from there (libtorch_cuda must be among them).
    ldd "$dir/bin/labelhost" | grep -E "torch|c10|not found" || true
    python3 host/benches/reference/infer_vs_monailabel.py "$dir/bin/labelhost" "$dir/plugins" \
        host/benches/reference/monailabel_deepbet "$dir/plugins/brain/models" "$dir/data" \
        --device "$device" --gpu "$gpu" --variants --alone-if-needed --record "$out/infer-$device.md" --logs "$out" \
        "${bench[@]}" 2>&1 | tee "$out/bench.log" || status=$?
    return "$status"
}

case ${1:-} in
    pack) shift; pack "$@" ;;
    run) shift; run "$@" ;;
    *) echo "usage: scripts/gpu-bench.sh pack [--python 3.12] | run [--device cuda] [bench options]" >&2; exit 2 ;;
esac
