#!/usr/bin/env bash
# A venv with MONAI Label 0.8.5's Python client (the monailabel package without its server
# dependencies: the client only needs requests) for tests/clients/monailabel_client.py.
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
