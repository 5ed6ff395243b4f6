#!/usr/bin/env bash
# helm lint --strict of charts/argomap with the default values and with each values file in
# tests/chart/values/ (one watched namespace; every optional object on). helm is the pinned
# v3.22.0 built by tests/controlplane/build.sh (cached; built on first use). Then packages the
# chart with `helm package` into target/chart/ (what a release publishes), and lints and renders
# the package: it must hold the dashboard and the test hook, and render as the folder does.
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
# helm package, then the package itself.
out="$root/target/chart"
rm -rf "$out" && mkdir -p "$out"
if pkg="$("$helm" package "$root/charts/argomap" --destination "$out" 2>&1)"; then
  tgz="$(ls "$out"/argomap-*.tgz)"
  echo "$pkg" >&2
  "$helm" lint --strict --kube-version "$kube_version" "$tgz" || status=1
  files="$(tar -tzf "$tgz")"
  for f in argomap/Chart.yaml argomap/values.schema.json argomap/dashboards/argomap.json \
    argomap/templates/tests/readyz.yaml argomap/templates/dashboards.yaml argomap/crds/argocdinstances.yaml; do
    grep -qx "$f" <<<"$files" || { echo "helm-lint.sh: $f missing from $tgz" >&2; status=1; }
  done
  # The package renders exactly as the chart folder (nothing left out by .helmignore).
  render() { "$helm" template argomap "$1" --kube-version "$kube_version" --include-crds --set dashboards.enabled=true; }
  if ! diff <(render "$root/charts/argomap") <(render "$tgz") >&2; then
    echo "helm-lint.sh: $tgz renders differently from charts/argomap" >&2
    status=1
  fi
else
  echo "$pkg" >&2
  status=1
fi
exit "$status"
