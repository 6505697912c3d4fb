#!/usr/bin/env bash
# Installs Debian's Chromium (package chromium, /usr/bin/chromium) for the dashboard's
# browser test (tests/integration/dashboard.rs) when it is missing. Needs root or sudo.
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
"$(dirname "$0")/apt-install.sh" browser chromium
