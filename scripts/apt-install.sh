#!/usr/bin/env bash
# Installs Debian packages for the tests' real components (scripts/browser.sh, pacs.sh,
# postgres.sh): apt-get install without recommends, through sudo when not root, with an
# apt-get update and a second try when the package lists are stale or missing.
#   scripts/apt-install.sh WHAT PACKAGE...    WHAT names the caller in its one line of output
set -euo pipefail
what=$1
shift
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
echo "$what: installing Debian's $* (once)"
"${sudo[@]}" apt-get install -y --no-install-recommends "$@" \
    || { "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y --no-install-recommends "$@"; }
