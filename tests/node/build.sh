#!/usr/bin/env bash
# Builds the node's binaries and caches them outside the repo, keyed by version:
#   ${ARGOMAP_CACHE:-$HOME/.cache/argomap}/node/k8s-<v>_coredns-<v>/bin/
#     kubelet kube-controller-manager kube-scheduler kube-proxy   (kube/go.mod, one `go build`)
#     coredns                                                     (coredns/go.mod)
#     pause                                                       (pause.c, static)
# A binary that is already there is not rebuilt, so on a warm machine this does nothing.
# The last line of stdout is the bin dir; progress goes to stderr.
# Usage: build.sh [--print-bin-dir]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../controlplane/versions.env
. "$here/../controlplane/versions.env"
cache_root="${ARGOMAP_CACHE:-$HOME/.cache/argomap}"
pause_sum="$(sha256sum "$here/pause.c" | cut -c1-12)"
bin_dir="$cache_root/node/k8s-${KUBE_VERSION}_coredns-${COREDNS_VERSION}/bin"
if [ "${1:-}" = --print-bin-dir ]; then echo "$bin_dir"; exit 0; fi

kube=(kubelet kube-controller-manager kube-scheduler kube-proxy)
missing() { local b; for b in "${kube[@]}" coredns "pause-$pause_sum"; do [ -x "$bin_dir/$b" ] || return 0; done; return 1; }
if ! missing; then echo "$bin_dir"; exit 0; fi

mkdir -p "$bin_dir"
exec {lock_fd}>"$bin_dir/.build.lock"
flock "$lock_fd"

export CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false"
tmp="$(mktemp -d "$bin_dir/.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

todo=()
for b in "${kube[@]}"; do [ -x "$bin_dir/$b" ] || todo+=("k8s.io/kubernetes/cmd/$b"); done
if [ "${#todo[@]}" -gt 0 ]; then
  minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  echo "build.sh: building ${todo[*]##*/} (${KUBE_VERSION})..." >&2
  start=$SECONDS
  # One `go build` for all: the packages compile once and the links run in parallel.
  (cd "$here/kube" && nice -n 10 go build -trimpath -ldflags "-s -w \
      -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} -X k8s.io/component-base/version.gitMajor=1 \
      -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean" \
      -o "$tmp/" "${todo[@]}")
  for p in "${todo[@]}"; do mv -f "$tmp/${p##*/}" "$bin_dir/"; done
  echo "build.sh: built them in $((SECONDS - start))s" >&2
fi
if [ ! -x "$bin_dir/coredns" ]; then
  echo "build.sh: building coredns (${COREDNS_VERSION})..." >&2
  start=$SECONDS
  (cd "$here/coredns" && nice -n 10 go build -trimpath -ldflags "-s -w" -o "$tmp/coredns" github.com/coredns/coredns)
  mv -f "$tmp/coredns" "$bin_dir/coredns"
  echo "build.sh: built coredns in $((SECONDS - start))s" >&2
fi
if [ ! -x "$bin_dir/pause-$pause_sum" ]; then
  gcc -Os -static -o "$tmp/pause" "$here/pause.c"
  strip "$tmp/pause"
  mv -f "$tmp/pause" "$bin_dir/pause-$pause_sum"
fi
echo "$bin_dir"
