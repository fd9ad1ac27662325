#!/usr/bin/env bash
# Builds Herald's web SDK (web/): installs exactly the npm packages pinned in
# web/package-lock.json (npm ci, which starts node_modules afresh, so running it twice
# does the same), generates the TypeScript from proto/ with buf, type-checks, bundles
# web/dist/herald.js and web/dist/herald.esm.js, and prints their sizes. Needs Node.js 20
# or later with npm; nothing else (buf, protoc-gen-es, tsc and esbuild come from npm).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/web"
if ! command -v npm >/dev/null 2>&1; then
  echo "web.sh: npm (Node.js 20 or later) is needed" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
npm run --silent size
