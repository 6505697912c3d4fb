# Sourced by the other scripts: where the cached LibTorch lives and how the build finds it.
# Everything heavy is cached outside the clone, under $LABELHOST_CACHE.
export LABELHOST_CACHE="${LABELHOST_CACHE:-$HOME/.cache/labelhost}"
export TORCH_VERSION=2.11.0 # the LibTorch tch 0.24 is built for
export LABELHOST_VENV="$LABELHOST_CACHE/torch-$TORCH_VERSION"
export PATH="$LABELHOST_VENV/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
