#!/usr/bin/env bash
# buf lint (STANDARD) on proto/, and buf breaking (FILE) against the main branch when
# main already holds the contracts and this checkout differs from it.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(bash scripts/tools.sh)
"$bin/buf" lint
echo "buf lint: ok"
if git rev-parse --verify --quiet main >/dev/null && git cat-file -e main:proto 2>/dev/null; then
  "$bin/buf" breaking --against '.git#branch=main'
  echo "buf breaking (against main): ok"
else
  echo "buf breaking: skipped (no proto/ on main yet)"
fi
