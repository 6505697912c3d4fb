#!/usr/bin/env bash
# Runs the benchmarks (release): plugin load, hot-swap time and memory per leaked generation;
# the brain pipeline in process, over HTTP and in plain Python PyTorch; the REST API and
# datastore against MONAI Label 0.8.5's own server; training against MONAI's own
# SupervisedTrainer, and training memory over 4 versus 40 volumes; `POST /infer` against
# MONAI Label 0.8.5 serving the same deepbet pipeline (sequential, concurrent, RSS, start).
# `scripts/bench.sh train` runs only the training bench, `scripts/bench.sh infer` only the
# infer bench (it keeps its table in host/benches/results/infer-<device>.md; LABELHOST_BENCH_DEVICE=cuda
# runs it on the GPU); `scripts/bench.sh batch` only the interactive-during-batch bench;
# `scripts/bench.sh clicks` only click → label latency against MONAI Label's deepgrow;
# `scripts/bench.sh load [--clients N --seconds S]` only the load run (host/benches/load.py);
# `scripts/bench.sh cluster` only three hosts against one under 50 annotators
# (tests/integration/cluster_load.rs built in release).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
# The Python reference of the brain bench needs these beside the pinned torch.
python3 -m pip install --quiet --disable-pip-version-check numpy nibabel scipy
cargo build --release -p labelhost -p labelhost-app-brain
target="${CARGO_TARGET_DIR:-target}/release"
train_bench() {
    python3 -m pip install --quiet --disable-pip-version-check "pytorch-ignite==0.4.11" requests
    python3 host/benches/reference/train_vs_monai.py "$target/labelhost" "$target/liblabelhost_app_brain.so" \
        "$LABELHOST_CACHE/data" "$LABELHOST_CACHE/models"
}
# Packs the release brain app into DIR/brain with its Otsu settings and the named cached
# models (paths under $LABELHOST_CACHE/models, kept as models/<file name>).
pack_brain() {
    local dir=$1 model assets=()
    shift
    for model in "$@"; do
        assets+=(--asset "$LABELHOST_CACHE/models/$model=models/$(basename "$model")")
    done
    "$target/labelhost" pack --library "$target/liblabelhost_app_brain.so" \
        --asset plugins/brain/assets/otsu.json=assets/otsu.json "${assets[@]}" --out "$dir/brain" >/dev/null
}
# MONAI Label 0.8.5's server packages (without the model-zoo and GPU extras) go into the
# cached venv for the benches that start its server.
monailabel_server() {
    python3 -m pip install --quiet --disable-pip-version-check "monailabel==0.8.5" "monai==1.4.0" "torchvision==0.26.0" --no-deps
    python3 -m pip install --quiet --disable-pip-version-check "fastapi==0.110.2" uvicorn python-multipart \
        python-dotenv httpx schedule "dicomweb-client==0.60.1" timeloop expiringdict expiring_dict cachetools \
        "pydicom==2.4.4" pydicom-seg "pynetdicom==2.1.1" pynrrd girder-client einops pyyaml passlib pyjwt \
        bcrypt shapely requests requests-toolbelt scikit-learn google-auth psutil itk scikit-image pillow tqdm
}
infer_bench() {
    monailabel_server
    local device="${LABELHOST_BENCH_DEVICE:-cpu}" bundle
    bundle=$(mktemp -d)
    pack_brain "$bundle" deepbet/bbox_model.pt deepbet/model.pt brain/brain_unet.pt brain/brain_unet_dropout.pt
    python3 host/benches/reference/infer_vs_monailabel.py "$target/labelhost" "$bundle" \
        host/benches/reference/monailabel_deepbet "$LABELHOST_CACHE/models/deepbet" "$LABELHOST_CACHE/data" \
        --device "$device" --variants --record "host/benches/results/infer-$device.md"
    rm -rf "$bundle"
}
# Interactive latency on an idle server and while a batch inference job runs (same run).
batch_bench() {
    local bundle
    python3 -m pip install --quiet --disable-pip-version-check requests
    bundle=$(mktemp -d)
    pack_brain "$bundle" deepbet/bbox_model.pt deepbet/model.pt
    local record=host/benches/results/batch-cpu.md
    {
        echo "# Interactive latency during a batch inference job ($(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
        echo
        python3 host/benches/reference/batch_vs_interactive.py "$target/labelhost" "$bundle" "$LABELHOST_CACHE/data"
    } | tee "$record"
    rm -rf "$bundle"
}
# One click → label on a 128³ region, labelhost's brain_deepgrow vs MONAI Label's deepgrow.
clicks_bench() {
    monailabel_server
    local bundle
    bundle=$(mktemp -d)
    pack_brain "$bundle" brain/brain_deepedit.pt
    python3 host/benches/reference/clicks_vs_monailabel.py "$target/labelhost" "$bundle" \
        host/benches/reference/monailabel_clicks "$LABELHOST_CACHE/models/brain/brain_deepedit.pt" \
        "$LABELHOST_CACHE/data" --record host/benches/results/clicks-cpu.md
    rm -rf "$bundle"
}
# 100 clients for 60 s mixing infer, datastore reads, label saves and next-sample, with the
# app hot-swapped every 5 s and a training job running; every acknowledged label checked.
load_bench() {
    local bundle
    python3 -m pip install --quiet --disable-pip-version-check requests
    bundle=$(mktemp -d)
    pack_brain "$bundle" deepbet/bbox_model.pt deepbet/model.pt brain/brain_unet.pt brain/brain_unet_dropout.pt
    python3 host/benches/load.py "$target/labelhost" "$bundle" "$LABELHOST_CACHE/data" \
        --record host/benches/results/load-cpu.md "$@"
    rm -rf "$bundle"
}
# Three hosts over one folder and one PostgreSQL behind the tests' balancer, one killed and
# started again, against one host alone: the cluster load test, release build.
cluster_bench() {
    scripts/postgres.sh install
    cargo build --release -p labelhost-app-segmentation
    local record=host/benches/results/cluster-cpu.md
    {
        echo "# Three hosts vs one under 50 annotators ($(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
        echo
        cargo test --release -p labelhost-tests --test integration -- cluster_load::three --nocapture 2>&1 \
            | grep -E -A1 '^cluster load|^test result:|panicked at'
        echo
        # Each host a machine of 0.4 CPU (a cgroup quota each; root and cgroup v1 needed):
        # what adding a machine adds.
        LABELHOST_BENCH_HOST_CPUS=0.4 cargo test --release -p labelhost-tests --test integration \
            -- cluster_load::three --nocapture 2>&1 | grep -E -A1 '^cluster load|^test result:|panicked at'
        echo
        cargo bench -p labelhost --bench datastore_index 2>&1 | grep '^datastore_v2'
    } | tee "$record"
}
case "${1:-}" in
    load) shift; load_bench "$@"; exit 0 ;;
    cluster) cluster_bench; exit 0 ;;
    clicks) clicks_bench; exit 0 ;;
    train) train_bench; exit 0 ;;
    batch) batch_bench; exit 0 ;;
    infer) infer_bench; exit 0 ;;
esac
cargo bench -p labelhost --bench plugin_lifecycle
cargo bench -p labelhost --bench brain_pipeline
monailabel_server
plugins=$(mktemp -d)
python3 host/benches/reference/api_vs_monailabel.py "${CARGO_TARGET_DIR:-target}/release/labelhost" "$plugins" \
    host/benches/reference/monailabel_app --images 10000 --writers 16
rm -rf "$plugins"
infer_bench
batch_bench
clicks_bench
train_bench
