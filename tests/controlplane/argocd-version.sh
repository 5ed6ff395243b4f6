# Which Argo CD to build and start, and with what (sourced after versions.env by
# gen-argocd-gomod.sh, build.sh and argocd-up.sh; not run).
# shellcheck shell=bash
#
# argocd_select [VERSION] sets:
#   argocd_version    VERSION, else $ARGOMAP_ARGOCD_VERSION (`make argocd-test ARGOCD_VERSION=...`
#                     exports it), else ARGOCD_VERSION from versions.env
#   argocd_minor      vMAJOR.MINOR of it
#   argocd_module     the wrapper module for that minor: tests/controlplane/argocd-vMAJOR.MINOR
#   argocd_toolchain  GOTOOLCHAIN for its go commands: ARGOCD_GOTOOLCHAIN_<MAJOR>_<MINOR> from
#                     versions.env, else local (the machine's Go)
# argocd_check_module: fails, naming the generator command, unless $argocd_module pins exactly
# $argocd_version (one patch per minor is pinned at a time).

# shellcheck disable=SC2034 # the variables are for the scripts that source this
argocd_select() {
  local here major minor var
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  argocd_version="${1:-${ARGOMAP_ARGOCD_VERSION:-$ARGOCD_VERSION}}"
  if ! [[ "$argocd_version" =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
    echo "argocd: version '$argocd_version' is not vMAJOR.MINOR.PATCH" >&2
    return 1
  fi
  major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"
  argocd_minor="v$major.$minor"
  argocd_module="$here/argocd-$argocd_minor"
  var="ARGOCD_GOTOOLCHAIN_${major}_${minor}"
  argocd_toolchain="${!var:-local}"
}

argocd_check_module() {
  if [ ! -f "$argocd_module/go.mod" ]; then
    echo "argocd: no wrapper module for Argo CD $argocd_minor ($argocd_module/go.mod):" \
      "run tests/controlplane/gen-argocd-gomod.sh $argocd_version" >&2
    return 1
  fi
  if ! grep -qE "^[[:space:]]*(require[[:space:]]+)?github\.com/argoproj/argo-cd/v3[[:space:]]+${argocd_version//./\\.}([[:space:]]|$)" \
    "$argocd_module/go.mod"; then
    echo "argocd: $argocd_module/go.mod does not pin github.com/argoproj/argo-cd/v3 $argocd_version:" \
      "run tests/controlplane/gen-argocd-gomod.sh $argocd_version" >&2
    return 1
  fi
}

