#!/usr/bin/env bash
# helm lint --strict of charts/argomap with the default values and with each values file in
# tests/chart/values/ (one watched namespace; every optional object on). helm is the pinned
# v3.22.0 built by tests/controlplane/build.sh (cached; built on first use).
set -euo pipefail
exec </dev/null

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
helm="$(bash "$root/tests/controlplane/build.sh" helm | tail -n1)/helm"
kube_version=1.37.2

status=0
for values in "" "$here"/values/*.yaml; do
  args=(lint --strict --kube-version "$kube_version" "$root/charts/argomap")
  [ -z "$values" ] || args+=(-f "$values")
  echo "helm ${args[*]#"$root"/}" >&2
  "$helm" "${args[@]}" || status=1
done
exit "$status"
