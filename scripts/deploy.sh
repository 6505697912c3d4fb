#!/usr/bin/env bash
# The deployment description (host/deploy): checks what can be checked on this machine.
#   scripts/deploy.sh check [DIR]   DIR (default host/deploy/kubernetes): renders the
#                                   kustomization (kubectl kustomize, when kubectl is here;
#                                   else the files as they are), validates every manifest
#                                   against Kubernetes 1.32's schemas, strict
#                                   (kubernetes-validate 1.37.0 from PyPI), checks the
#                                   deployment's promises (host/deploy/check.py), and builds
#                                   host/deploy/Containerfile when a Docker engine answers
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
[ "${1:-}" = check ] || { echo "usage: scripts/deploy.sh check [DIR]" >&2; exit 2; }
dir=${2:-host/deploy/kubernetes}
# The validator in a venv of its own (its jsonschema is newer than the one MONAI Label's
# packages in the torch venv need).
venv="$LABELHOST_CACHE/deploy-venv"
if [ "$("$venv/bin/python" -m pip show kubernetes-validate 2>/dev/null | awk '/^Version:/{print $2}')" != 1.37.0 ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==1.37.0"
fi
rendered=$(mktemp --suffix=.yaml)
trap 'rm -f "$rendered"' EXIT
if command -v kubectl > /dev/null; then
    kubectl kustomize "$dir" > "$rendered"
else
    for f in "$dir"/*.yaml; do
        [ "$(basename "$f")" = kustomization.yaml ] && continue
        cat "$f"
        printf '\n---\n'
    done > "$rendered"
fi
"$venv/bin/kubernetes-validate" --strict --quiet -k 1.32.0 "$rendered"
"$venv/bin/python" host/deploy/check.py "$rendered"
if docker info > /dev/null 2>&1; then
    docker build -f host/deploy/Containerfile -t labelhost:check .
else
    echo "deploy check: no Docker engine answers here, so the image recipe was not built"
fi
