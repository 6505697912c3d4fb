#!/usr/bin/env bash
# Runs the benchmarks (release): plugin load, hot-swap time and memory per leaked generation;
# the brain pipeline in process, over HTTP and in plain Python PyTorch; the REST API and
# datastore against MONAI Label 0.8.5's own server; training against MONAI's own
# SupervisedTrainer, and training memory over 4 versus 40 volumes. `scripts/bench.sh train`
# runs only the training bench.
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
if [ "${1:-}" = "train" ]; then
    train_bench
    exit 0
fi
cargo bench -p labelhost --bench plugin_lifecycle
cargo bench -p labelhost --bench brain_pipeline
# labelhost against MONAI Label 0.8.5's own server on 10,000 images: its server packages
# (without the model-zoo and GPU extras) go into the cached venv for this bench only.
python3 -m pip install --quiet --disable-pip-version-check "fastapi==0.110.2" uvicorn python-multipart \
    python-dotenv httpx schedule "dicomweb-client==0.60.1" timeloop expiringdict expiring_dict cachetools \
    "pydicom==2.4.4" pydicom-seg "pynetdicom==2.1.1" pynrrd girder-client einops pyyaml passlib pyjwt \
    bcrypt shapely requests requests-toolbelt scikit-learn google-auth psutil itk scikit-image pillow tqdm
plugins=$(mktemp -d)
python3 host/benches/reference/api_vs_monailabel.py "${CARGO_TARGET_DIR:-target}/release/labelhost" "$plugins" \
    host/benches/reference/monailabel_app --images 10000 --writers 16
rm -rf "$plugins"
train_bench
