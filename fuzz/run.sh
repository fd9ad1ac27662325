#!/usr/bin/env bash
# Fuzzes one target for a bounded time: `fuzz/run.sh [SECONDS] [TARGET]` (defaults 60 and
# parse_rule), as `just fuzz` and .ci/run do. The fuzzer starts from a scratch copy of the
# committed seed corpus, so the inputs it adds never touch the checkout. Exits non-zero
# when the target panics (a crash or a broken round trip); the input is then printed
# and saved under fuzz/artifacts/TARGET/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
target=${2:-parse_rule}
# cargo-fuzz comes from scripts/tools.sh (pinned; a no-op once installed).
bin=$(bash scripts/tools.sh)
export PATH="$bin:$PATH"
# fuzz/ is a workspace of its own with a committed lock file. cargo-fuzz has no --locked,
# so check it here: a stale lock file (say herald-rules gained a dependency) fails instead
# of being rewritten.
if ! cargo fetch --locked --quiet --manifest-path fuzz/Cargo.toml; then
  echo "fuzz/Cargo.lock is stale: run \`cargo fetch --manifest-path fuzz/Cargo.toml\` and commit it" >&2
  exit 1
fi
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp fuzz/corpus/"$target"/* "$corpus"/
dict=()
if [ -f "fuzz/$target.dict" ]; then dict=(-dict="fuzz/$target.dict"); fi
# `-s none`: no sanitizer, which builds on stable Rust (a sanitizer needs nightly); the
# code under test is safe Rust, so panics and assertions are what there is to find.
# Debug assertions and overflow checks stay on (cargo-fuzz's default). One input taking
# over 10 s counts as a failure too (libFuzzer's default would wait 20 minutes).
cargo fuzz run -s none "$target" "$corpus" -- \
  -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "${dict[@]}"
