#!/usr/bin/env bash
# Checks that proto/ as it is in this tree does not break the last released
# contract: `buf breaking` (rules in buf.yaml: FILE) of this tree's proto/
# against the proto/ of a git commit. Used by `make lint`.
#
#   scripts/buf_breaking.sh PYTHON [REF]
#
# REF defaults to the commit named in proto/BASELINE (the last released
# contract; move it forward when a contract is released). Any git ref works
# for an ad-hoc check, e.g. `make lint BUF_BREAKING_AGAINST=HEAD` for the
# uncommitted changes only.
#
# As in buf_lint.sh, buf cannot fetch google/type/date.proto from the BSR
# here, so each side is compiled into an image by protoc with the googleapis
# protos of the googleapis-common-protos wheel, and buf compares the images.
# The baseline's files come from `git archive`, never from a checkout: the
# working tree is not touched. --exclude-imports leaves the google files out
# of the comparison; the comparison is not limited with --path, so deleting
# one of our files is reported (FILE_NO_DELETE).
set -euo pipefail
python=${1:?python interpreter}
ref=${2:-}
cd "$(dirname "$0")/.."

fail() {
  echo "buf_breaking.sh: $*" >&2
  exit 1
}

if [[ -z $ref ]]; then
  [[ -r proto/BASELINE ]] || fail "proto/BASELINE is missing"
  ref=$(grep -v '^[[:space:]]*\(#\|$\)' proto/BASELINE | head -n 1 | tr -d '[:space:]')
  [[ -n $ref ]] || fail "proto/BASELINE names no commit"
fi

git rev-parse --is-inside-work-tree >/dev/null 2>&1 \
  || fail "not a git clone: the baseline contract ($ref) is read from git history"
if ! commit=$(git rev-parse --verify --quiet "$ref^{commit}"); then
  # A shallow clone may lack the baseline: fetch that one commit if we can.
  if git remote get-url origin >/dev/null 2>&1; then
    git fetch --quiet --depth=1 origin "$ref" >&2 || true
  fi
  commit=$(git rev-parse --verify --quiet "$ref^{commit}") \
    || fail "commit $ref is not in this clone (a shallow clone? clone with full history)"
fi

BUF_VERSION=1.75.0
buf=.tools/node_modules/.bin/buf
if [[ ! -x $buf ]] || [[ "$("$buf" --version 2>/dev/null)" != "$BUF_VERSION" ]]; then
  command -v npm >/dev/null || fail "npm is needed to install buf $BUF_VERSION into .tools/"
  echo "buf_breaking.sh: installing buf $BUF_VERSION into .tools/" >&2
  npm install --no-save --no-audit --no-fund --ignore-scripts --loglevel=error \
    --prefix .tools "@bufbuild/buf@$BUF_VERSION" >&2
fi

googleapis=$("$python" -c 'import google.type.date_pb2 as m, pathlib; print(pathlib.Path(m.__file__).parents[2])')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# image ROOT OUT: every .proto under ROOT (the proto/ folder of one side).
image() {
  local root=$1 out=$2 protos
  mapfile -t protos < <(cd "$root" && find . -name '*.proto' | sed 's|^\./||' | sort)
  [[ ${#protos[@]} -gt 0 ]] || fail "no .proto files under $root"
  "$python" -m grpc_tools.protoc -I "$root" -I "$googleapis" \
    --include_imports --include_source_info -o "$out" "${protos[@]}"
}

mkdir "$tmp/baseline"
git archive --format=tar "$commit" -- proto | tar -x -C "$tmp/baseline" \
  || fail "commit $ref has no proto/"
image "$tmp/baseline/proto" "$tmp/against.binpb"
image proto "$tmp/current.binpb"

"$buf" breaking "$tmp/current.binpb#format=binpb" \
  --against "$tmp/against.binpb#format=binpb" \
  --config buf.yaml --exclude-imports
echo "buf breaking: proto/ is compatible with the contract at ${commit:0:12} (FILE)"
