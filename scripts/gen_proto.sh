#!/usr/bin/env bash
# Generates Python stubs and type stubs from proto/ into the folder given.
# Used by `make proto` and by the test that fails when generated/ is stale.
set -euo pipefail
python=${1:?python interpreter}
out=${2:?output folder}
cd "$(dirname "$0")/.."
# google/type and google/rpc protos ship in the googleapis-common-protos wheel.
googleapis=$("$python" -c 'import google.type.date_pb2 as m, pathlib; print(pathlib.Path(m.__file__).parents[2])')
rm -rf "$out/microfin"
mkdir -p "$out"
mapfile -t protos < <(cd proto && find microfin -name '*.proto' | sort)
"$python" -m grpc_tools.protoc -I proto -I "$googleapis" \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" "${protos[@]}"
# Regular packages, so setuptools and type checkers see them.
find "$out/microfin" -type d -exec touch {}/__init__.py \;
