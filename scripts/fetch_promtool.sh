#!/usr/bin/env bash
# Puts promtool (Prometheus's rule checker) at .tools/bin/promtool, for
# tests/test_monitoring.py. It comes from Debian's `prometheus` package: the
# .deb is downloaded and only promtool is unpacked, so nothing is installed
# system-wide and no Prometheus server is started. Used by `make test`; where
# apt is not available it says so and exits 1 (the test then skips, except
# under CI=true, where it fails).
set -euo pipefail
cd "$(dirname "$0")/.."

target=.tools/bin/promtool
if [[ -x $target ]]; then
  exit 0
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
  echo "fetch_promtool.sh: apt-get/dpkg-deb not found; install promtool by hand" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fetch_promtool.sh: fetching Debian's prometheus package for promtool" >&2
(cd "$work" && apt-get download -qq prometheus 2>/dev/null)
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
mkdir -p "$(dirname "$target")"
install -m 0755 "$work/root/usr/bin/promtool" "$target"
"$target" --version | head -1 >&2
