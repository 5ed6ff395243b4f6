#!/usr/bin/env bash
# Builds the test control plane binaries (kube-apiserver, etcd, helm) from the wrapper Go
# modules in this folder and caches them outside the repo, keyed by version:
#   ${ARGOMAP_CACHE:-$HOME/.cache/argomap}/controlplane/<versions>/bin/
# A binary that is already there is not rebuilt, so on a warm machine this does nothing.
# argocd (Argo CD's multi-call binary, plus an `argocd-server -> argocd` symlink) is only built
# when named, into its own dir ${ARGOMAP_CACHE:-$HOME/.cache/argomap}/controlplane/argocd-<version>/bin/:
# ARGOCD_VERSION from versions.env, or $ARGOMAP_ARGOCD_VERSION; from the wrapper module of its
# minor (argocd-vMAJOR.MINOR/), with the GOTOOLCHAIN versions.env gives that minor (v3.6 needs a
# newer Go); the other builds use GOTOOLCHAIN=local.
# kstatus (a wrapper printing what sigs.k8s.io/cli-utils' kstatus computes for an object, for the
# cluster suite) goes into the main bin dir, stamped by the version in kstatus/go.mod:
# kstatus-<version> plus a `kstatus` symlink, so a new pin builds a new binary.
#
# Usage: build.sh [--print-bin-dir] [kube-apiserver|etcd|helm|kstatus|argocd ...]
#   no names:        build every missing binary (kube-apiserver, etcd, helm; not argocd)
#   names:           build only those (if missing)
#   --print-bin-dir: print the bin dir and exit, building nothing
# The last line of stdout is always the bin dir (argocd's when argocd is the only name; with
# argocd and others, argocd's dir comes on the line before); progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"
# shellcheck source=argocd-version.sh
. "$here/argocd-version.sh"
argocd_select ""

cache_root="${ARGOMAP_CACHE:-$HOME/.cache/argomap}"
key="k8s-${KUBE_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}"
bin_dir="$cache_root/controlplane/$key/bin"
argocd_bin_dir="$cache_root/controlplane/argocd-${argocd_version}/bin"

print_only=0
targets=()
for arg in "$@"; do
  case "$arg" in
    --print-bin-dir) print_only=1 ;;
    kube-apiserver | etcd | helm | kstatus | argocd) targets+=("$arg") ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done
want_argocd=0
others=()
for t in ${targets[@]+"${targets[@]}"}; do
  if [ "$t" = argocd ]; then want_argocd=1; else others+=("$t"); fi
done
# print_dirs: the bin dir(s) for the names given, as described above.
print_dirs() {
  if [ "$want_argocd" = 1 ]; then
    echo "$argocd_bin_dir"
    [ "${#others[@]}" -gt 0 ] || return 0
  fi
  echo "$bin_dir"
}
if [ "$print_only" = 1 ]; then
  print_dirs
  exit 0
fi
[ "${#targets[@]}" -gt 0 ] || others=(kube-apiserver etcd helm kstatus)

# Fast path: everything already built.
# kstatus' binary carries the cli-utils version it was built from (read from its go.mod).
kstatus_version="$(awk '$1 == "sigs.k8s.io/cli-utils" {print $2}' "$here/kstatus/go.mod")"
kstatus_ok() { [ -x "$bin_dir/kstatus-$kstatus_version" ] && [ "$(readlink "$bin_dir/kstatus" 2>/dev/null)" = "kstatus-$kstatus_version" ]; }
missing=()
for t in ${others[@]+"${others[@]}"}; do
  if [ "$t" = kstatus ]; then kstatus_ok || missing+=(kstatus); continue; fi
  [ -x "$bin_dir/$t" ] || missing+=("$t")
done
argocd_ok() { [ -x "$argocd_bin_dir/argocd" ] && [ -L "$argocd_bin_dir/argocd-server" ]; }
if [ "$want_argocd" = 1 ]; then
  argocd_check_module # the wrapper of its minor must pin this very version
  argocd_ok || missing+=(argocd)
fi
if [ "${#missing[@]}" -eq 0 ]; then
  print_dirs
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: go is not installed" >&2; exit 1; }

# lock DIR: serialise concurrent builds of the same cache dir.
lock() {
  mkdir -p "$1"
  command -v flock >/dev/null || return 0
  local fd
  exec {fd}>"$1/.build.lock"
  if ! flock -n "$fd"; then
    echo "build.sh: another build holds $1/.build.lock, waiting..." >&2
    flock "$fd"
  fi
}
if [ "${#others[@]}" -gt 0 ]; then lock "$bin_dir"; fi
if [ "$want_argocd" = 1 ]; then lock "$argocd_bin_dir"; fi

export CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off
export GOFLAGS="-mod=readonly -buildvcs=false"

tmp=""
cleanup() { if [ -n "$tmp" ]; then rm -f "$tmp"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# build NAME MODULE_DIR PACKAGE [LDFLAGS] [OUT_DIR] [GOTOOLCHAIN]
build() {
  local name="$1" dir="$2" pkg="$3" ldflags="${4:-}" out="${5:-$bin_dir}" toolchain="${6:-local}" start
  if [ -x "$out/$name" ]; then
    echo "build.sh: $name already built" >&2
    return 0
  fi
  echo "build.sh: building $name ($pkg) with $(cd "$dir" && GOTOOLCHAIN="$toolchain" go env GOVERSION)..." >&2
  start=$SECONDS
  tmp="$out/.$name.tmp.$$"
  (cd "$dir" && GOTOOLCHAIN="$toolchain" go build -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg")
  mv -f "$tmp" "$out/$name"
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
    kstatus)
      build "kstatus-$kstatus_version" "$here/kstatus" . "-s -w"
      ln -sfn "kstatus-$kstatus_version" "$bin_dir/.kstatus.tmp.$$"
      mv -fT "$bin_dir/.kstatus.tmp.$$" "$bin_dir/kstatus"
      ;;
    argocd)
      # Stamped like argo-cd's Makefile does for a clean tagged release, so it reports
      # exactly ${argocd_version} (GetVersion uses gitTag when gitCommit is set and the tree is
      # clean). A module zip has no commit id: gitCommit says so. buildDate is the tag's time
      # from the module proxy (reproducible); kubectlVersion is the client-go it is built with.
      pkg=github.com/argoproj/argo-cd/v3/common
      cg="$(cd "$argocd_module" && GOTOOLCHAIN="$argocd_toolchain" go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' k8s.io/client-go)"
      built="$(cd "$argocd_module" && GOTOOLCHAIN="$argocd_toolchain" go list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' "github.com/argoproj/argo-cd/v3")"
      build argocd "$argocd_module" github.com/argoproj/argo-cd/v3/cmd \
        "-s -w -X ${pkg}.version=${argocd_version#v} -X ${pkg}.gitTag=${argocd_version} -X ${pkg}.gitCommit=unknown-go-module-${argocd_version} -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${built:-1970-01-01T00:00:00Z} -X ${pkg}.kubectlVersion=${cg}" \
        "$argocd_bin_dir" "$argocd_toolchain"
      # The binary picks its role from argv[0]: argocd-server is a symlink to it
      # (made atomically, also for a binary built before the link existed).
      if [ ! -L "$argocd_bin_dir/argocd-server" ]; then
        ln -sfn argocd "$argocd_bin_dir/.argocd-server.tmp.$$"
        mv -fT "$argocd_bin_dir/.argocd-server.tmp.$$" "$argocd_bin_dir/argocd-server"
      fi
      ;;
  esac
done

print_dirs
