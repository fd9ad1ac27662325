#!/usr/bin/env bash
# The browser tests (web/browser/): the demo app and the dashboard in headless Chromium
# against a real `herald dev` on a fresh data directory. Installs what they need from
# the public registries: Debian's chromium (apt, when missing) and the web project's npm
# packages (npm ci, with playwright-core). Screenshots of each state are written to
# $HERALD_SCREENSHOTS (default: artifacts/screenshots, git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CHROMIUM:-}" ]; then
  if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian's chromium (apt)" >&2
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >&2
  fi
  CHROMIUM=$(command -v chromium)
fi
export CHROMIUM
(cd web && npm ci --silent --no-audit --no-fund)
cargo build --quiet --locked --bin herald
export HERALD_BIN="$PWD/target/debug/herald"
export HERALD_SCREENSHOTS="${HERALD_SCREENSHOTS:-$PWD/artifacts/screenshots}"
mkdir -p "$HERALD_SCREENSHOTS"
node --test --test-concurrency=1 web/browser/
echo "screenshots: $HERALD_SCREENSHOTS"
