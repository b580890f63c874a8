#!/usr/bin/env bash
# Generates Python stubs, type stubs and a descriptor set from proto/ into the
# folder given.
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
# The same files with their comments (source info), which the descriptors
# compiled into the stubs lack, for server reflection (loanbilling/api/reflection.py).
# Without --include_imports: google/type/date.proto would then come from the
# googleapis-common-protos wheel installed, whose version is not pinned.
"$python" -m grpc_tools.protoc -I proto -I "$googleapis" --include_source_info \
  --descriptor_set_out="$out/microfin/descriptor_set.binpb" "${protos[@]}"
# Regular packages, so setuptools and type checkers see them.
find "$out/microfin" -type d -exec touch {}/__init__.py \;
