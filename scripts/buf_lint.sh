#!/usr/bin/env bash
# Lints proto/ with buf (rules in buf.yaml: STANDARD). Used by `make lint`.
#
# The protos import google/type/date.proto, which buf would fetch from the
# BSR (buf.build/googleapis/googleapis); that is not reachable here. Instead we
# compile an image with the same protoc and include paths as gen_proto.sh
# (googleapis-common-protos ships the google/type/*.proto sources) and lint
# that image, restricted with --path to our own files, so the imported
# googleapis files are available to the compiler but are not linted.
#
# Because buf sees an image, paths in buf.yaml's lint `ignore`/`ignore_only`
# are relative to proto/ (e.g. microfin/loanbilling/v1/x.proto).
# `// buf:lint:ignore RULE` comments work (the image keeps source info).
set -euo pipefail
python=${1:?python interpreter}
cd "$(dirname "$0")/.."

BUF_VERSION=1.75.0
buf=.tools/node_modules/.bin/buf
if [[ ! -x $buf ]] || [[ "$("$buf" --version 2>/dev/null)" != "$BUF_VERSION" ]]; then
  if ! command -v npm >/dev/null; then
    echo "buf_lint.sh: npm is needed to install buf $BUF_VERSION into .tools/" >&2
    exit 1
  fi
  echo "buf_lint.sh: installing buf $BUF_VERSION into .tools/" >&2
  # The package's postinstall only swaps the node shim for the binary.
  npm install --no-save --no-audit --no-fund --ignore-scripts --loglevel=error \
    --prefix .tools "@bufbuild/buf@$BUF_VERSION" >&2
fi

googleapis=$("$python" -c 'import google.type.date_pb2 as m, pathlib; print(pathlib.Path(m.__file__).parents[2])')
mapfile -t protos < <(cd proto && find . -name '*.proto' | sed 's|^\./||' | sort)
if [[ ${#protos[@]} -eq 0 ]]; then
  echo "buf_lint.sh: no .proto files under proto/" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m grpc_tools.protoc -I proto -I "$googleapis" \
  --include_imports --include_source_info -o "$tmp/image.binpb" "${protos[@]}"

paths=()
for p in "${protos[@]}"; do paths+=(--path "$p"); done
"$buf" lint "$tmp/image.binpb#format=binpb" --config buf.yaml "${paths[@]}"
echo "buf lint: ${#protos[@]} files OK"
