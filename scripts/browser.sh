#!/usr/bin/env bash
# Installs Debian's Chromium (package chromium, /usr/bin/chromium) for the dashboard's
# browser test (tests/integration/dashboard.rs) when it is missing. Needs root or sudo.
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
echo "browser: installing Debian's chromium (once)"
"${sudo[@]}" apt-get install -y --no-install-recommends chromium \
    || { "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y --no-install-recommends chromium; }
