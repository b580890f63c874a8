#!/usr/bin/env bash
# Regenerates src/gen/ (ignored by git) from the repository's proto/ with buf
# and ts-proto, both from node_modules (run `npm ci` first; `make ts-client`
# does both).
#
# buf builds the protos from a staged copy, build/proto/ (ignored): proto/
# itself, plus google/type/date.proto from the google-proto-files package.
# The root buf.yaml would resolve that import from the BSR, which is not
# reachable here, and a buf module cannot point outside its own folder.
# google/protobuf/*.proto (Timestamp) are built into buf.
set -euo pipefail
cd "$(dirname "$0")/.."

stage=build/proto
rm -rf build src/gen
mkdir -p "$stage/google/type"
cp -R ../../proto/. "$stage/"
cp node_modules/google-proto-files/google/type/date.proto "$stage/google/type/"
node_modules/.bin/buf generate "$stage" --template buf.gen.yaml
echo "generate: $(find src/gen -name '*.ts' | wc -l) files in src/gen from proto/"
