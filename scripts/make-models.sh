#!/usr/bin/env bash
# Makes the models that are built, not downloaded, into $LABELHOST_CACHE/models (never
# committed), each by a committed script run with the pinned torch (and monai 1.4.0, which
# scripts/client-venv.sh installs first):
#   segmentation/unet.pt   the `segmentation` app's stand-in UNet (plugins/segmentation/models/make_unet.py);
#   brain/brain_unet.pt    the `brain` app's untrained MONAI UNet (plugins/brain/models/make_unet.py);
#   brain/brain_unet_dropout.pt  the same network with dropout 0.2, for Monte-Carlo dropout;
#   brain/brain_deepedit.pt  the click network (image + brain and background guidance in).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
make() { # app, script, output file, script arguments
    local out="$LABELHOST_CACHE/models/$1"
    local stamp="$out/.$3.made-from-$(sha256sum "$2" | cut -c1-16)"
    [ -f "$stamp" ] && [ -f "$out/$3" ] && return 0
    mkdir -p "$out"
    python3 "$2" "$out/$3" "${@:4}" 2>/dev/null
    rm -f "$out/.$3".made-from-* && touch "$stamp"
    echo "make-models: $out/$3"
}
make segmentation plugins/segmentation/models/make_unet.py unet.pt
make brain plugins/brain/models/make_unet.py brain_unet.pt
make brain plugins/brain/models/make_unet.py brain_unet_dropout.pt --dropout 0.2
make brain plugins/brain/models/make_unet.py brain_deepedit.pt --in-channels 3
