#!/usr/bin/env bash
# Renders every Kustomize variant under deploy/ (the base and each overlay) with the
# kustomize built into kubectl, then validates every rendered object offline against the
# Kubernetes JSON schemas (kubernetes-validate --strict: unknown fields are errors) for
# each version in K8S_VERSIONS, and checks Herald's own deploy rules (native gRPC probes,
# restricted security context, requests and limits). Prints one line per variant; exits
# non-zero on any error. Usage: bash scripts/deploy-check.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$(bash scripts/tools.sh)
# 1.27: native gRPC probes are GA from here on, the oldest version Herald supports.
versions=${K8S_VERSIONS:-"1.27.0 1.33.0"}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

variants=(deploy/base)
for k in deploy/overlays/*/kustomization.yaml; do variants+=("$(dirname "$k")"); done

failed=0
for v in "${variants[@]}"; do
  name=${v#deploy/}; file="$out/${name//\//_}.yaml"
  if ! "$bin/kubectl" kustomize "$v" >"$file" 2>"$out/err"; then
    echo "FAIL $name: kustomize build failed"; sed 's/^/  /' "$out/err"; failed=1; continue
  fi
  errors=""
  for kv in $versions; do
    if ! "$bin/kubernetes-validate" --strict --quiet --no-warn -k "$kv" "$file" >"$out/val" 2>&1; then
      errors+="$(grep -E '^(ERROR|WARN)' "$out/val" || tail -n 5 "$out/val")"$'\n'
    fi
  done
  if ! "$bin/python" scripts/deploy_rules.py "$file" >"$out/rules" 2>&1; then
    errors+="$(cat "$out/rules")"$'\n'
  fi
  objects=$(grep -c '^kind:' "$file" || true)
  if [ -n "$errors" ]; then
    echo "FAIL $name: $objects objects"; printf '%s' "$errors" | sed 's/^/  /'; failed=1
  else
    echo "ok   $name: $objects objects valid (k8s $versions, strict) and deploy rules hold"
  fi
done
exit $failed
