# Sourced by the other scripts: where the cached LibTorch lives and how the build finds it.
# Everything heavy is cached outside the clone, under $LABELHOST_CACHE.
export LABELHOST_CACHE="${LABELHOST_CACHE:-$HOME/.cache/labelhost}"
export TORCH_VERSION=2.11.0 # the LibTorch tch 0.24 is built for
export LABELHOST_VENV="$LABELHOST_CACHE/torch-$TORCH_VERSION"
export PATH="$LABELHOST_VENV/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
# Test binaries that link the host as a library (a plugin's tests through
# labelhost-test-support) have no rpath of their own: they find LibTorch here.
for _torch_lib in "$LABELHOST_VENV"/lib/python3*/site-packages/torch/lib; do
    [ -d "$_torch_lib" ] && export LD_LIBRARY_PATH="$_torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
unset _torch_lib
