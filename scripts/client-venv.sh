#!/usr/bin/env bash
# MONAI Label 0.8.5 for the compatibility tests (tests/clients/):
#  - a small venv with its Python client (the client needs only requests);
#  - its LocalDatastore, in the pinned-torch venv (it imports torch and monai), for the
#    studies-folder interop test. Packages are installed without their server extras.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
venv="$LABELHOST_CACHE/monailabel-client-0.8.5"
if ! "$venv/bin/python" -c "import monailabel.client, requests" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    # --no-deps for all: the client imports only requests (and its own dependencies).
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps monailabel==0.8.5 \
        requests urllib3 idna certifi charset-normalizer
    echo "client-venv: MONAI Label 0.8.5 client in $venv"
fi

if ! "$LABELHOST_VENV/bin/python" -c "from monailabel.datastore.local import LocalDatastore" 2>/dev/null; then
    "$LABELHOST_VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps monailabel==0.8.5 monai==1.4.0
    "$LABELHOST_VENV/bin/pip" install --quiet --disable-pip-version-check numpy filelock pydantic pydantic-settings watchdog
    echo "client-venv: MONAI Label 0.8.5's LocalDatastore in $LABELHOST_VENV"
fi
