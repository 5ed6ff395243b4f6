#!/usr/bin/env bash
# Builds dashboard-validate (tests/dashboard/validate: the Grafana Foundation SDK's dashboard
# schema, a Go module pinned with its go.sum) once, with the machine's Go and only the Go module
# proxy, into a cache dir keyed by the SDK version:
#   ${ARGOMAP_CACHE:-$HOME/.cache/argomap}/tools/dashboard-validate-<sdk version>/dashboard-validate
# A binary already there is reused, so on a warm machine this does nothing.
#
# Usage: install-dashboard-validate.sh      last stdout line = path of the binary
set -euo pipefail
exec </dev/null

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/../dashboard/validate"
version="$(awk '$1 == "require" && $2 == "github.com/grafana/grafana-foundation-sdk/go" { print $3 }' "$src/go.mod")"
[ -n "$version" ] || { echo "install-dashboard-validate.sh: no SDK version in $src/go.mod" >&2; exit 1; }
cache_root="${ARGOMAP_CACHE:-$HOME/.cache/argomap}"
out="$cache_root/tools/dashboard-validate-$version"
bin="$out/dashboard-validate"

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { echo "install-dashboard-validate.sh: go is not installed" >&2; exit 1; }
mkdir -p "$out"
# Serialise concurrent builds into the same dir.
if command -v flock >/dev/null; then
  exec 9>"$out/.build.lock"
  flock 9
  if [ -x "$bin" ]; then
    echo "$bin"
    exit 0
  fi
fi
echo "install-dashboard-validate.sh: building dashboard-validate (grafana-foundation-sdk/go $version)..." >&2
start=$SECONDS
tmp="$out/.dashboard-validate.tmp.$$"
trap 'rm -f "$tmp"' EXIT
(cd "$src" && CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" \
  go build -trimpath -o "$tmp" .)
mv -f "$tmp" "$bin"
echo "install-dashboard-validate.sh: built in $((SECONDS - start))s" >&2
echo "$bin"
