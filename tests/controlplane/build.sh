#!/usr/bin/env bash
# Builds the test control plane binaries (kube-apiserver, etcd, helm) from the wrapper Go
# modules in this folder and caches them outside the repo, keyed by version:
#   ${ARGOMAP_CACHE:-$HOME/.cache/argomap}/controlplane/<versions>/bin/
# A binary that is already there is not rebuilt, so on a warm machine this does nothing.
#
# Usage: build.sh [--print-bin-dir] [kube-apiserver|etcd|helm ...]
#   no names:        build every missing binary
#   names:           build only those (if missing)
#   --print-bin-dir: print the bin dir and exit, building nothing
# The last line of stdout is always the bin dir; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"

cache_root="${ARGOMAP_CACHE:-$HOME/.cache/argomap}"
key="k8s-${KUBE_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}"
bin_dir="$cache_root/controlplane/$key/bin"

print_only=0
targets=()
for arg in "$@"; do
  case "$arg" in
    --print-bin-dir) print_only=1 ;;
    kube-apiserver | etcd | helm) targets+=("$arg") ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done
if [ "$print_only" = 1 ]; then
  echo "$bin_dir"
  exit 0
fi
[ "${#targets[@]}" -gt 0 ] || targets=(kube-apiserver etcd helm)

# Fast path: everything already built.
missing=()
for t in "${targets[@]}"; do
  [ -x "$bin_dir/$t" ] || missing+=("$t")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "$bin_dir"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: go is not installed" >&2; exit 1; }
mkdir -p "$bin_dir"

# Serialise concurrent builds of the same cache dir.
if command -v flock >/dev/null; then
  exec 9>"$bin_dir/.build.lock"
  if ! flock -n 9; then
    echo "build.sh: another build holds $bin_dir/.build.lock, waiting..." >&2
    flock 9
  fi
fi

export CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off
export GOFLAGS="-mod=readonly -buildvcs=false"

tmp=""
cleanup() { if [ -n "$tmp" ]; then rm -f "$tmp"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# build NAME MODULE_DIR PACKAGE [LDFLAGS]
build() {
  local name="$1" dir="$2" pkg="$3" ldflags="${4:-}" start
  if [ -x "$bin_dir/$name" ]; then
    echo "build.sh: $name already built" >&2
    return 0
  fi
  echo "build.sh: building $name ($pkg) with $(go env GOVERSION)..." >&2
  start=$SECONDS
  tmp="$bin_dir/.$name.tmp.$$"
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg")
  mv -f "$tmp" "$bin_dir/$name"
  tmp=""
  echo "build.sh: built $name in $((SECONDS - start))s" >&2
}

for t in "${missing[@]}"; do
  case "$t" in
    kube-apiserver)
      minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
      build kube-apiserver "$here/apiserver" k8s.io/kubernetes/cmd/kube-apiserver \
        "-X k8s.io/component-base/version.gitVersion=${KUBE_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean"
      ;;
    etcd)
      build etcd "$here/etcd" go.etcd.io/etcd/server/v3
      ;;
    helm)
      # Same stamping as helm's Makefile: its version, and the Kubernetes version it assumes
      # (derived from the client-go it is built with; without it a source build assumes 1.20).
      cg="$(cd "$here/helm" && go list -m -f '{{.Version}}' k8s.io/client-go)"
      cg="${cg#v0.}"
      k8s_major=1 k8s_minor="${cg%%.*}"
      build helm "$here/helm" helm.sh/helm/v3/cmd/helm \
        "-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.metadata= -X helm.sh/helm/v3/internal/version.gitTreeState=clean -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=${k8s_major} -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${k8s_minor} -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=${k8s_major} -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${k8s_minor}"
      ;;
  esac
done

echo "$bin_dir"
