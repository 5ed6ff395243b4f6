#!/usr/bin/env bash
# Proves the Helm chart (charts/argomap) against helm v3.22 and the test control plane's real
# kube-apiserver v1.37.2 (tests/controlplane). `make chart-test` runs it after controlplane-up.
#
#  1. helm lint --strict: default values and every file in tests/chart/values/.
#  2. helm template renders each variant; the Deployment's args are parsed by the argomap binary
#     itself (`argomap <args> --help` exits 0 only if every flag and value is accepted).
#  3. Values the chart must refuse fail the render with their message (a namespace listed twice,
#     two replicas without leader election, an unknown value, a bad log format); two watched
#     namespaces render a Role and a RoleBinding in each.
#  4. kubectl apply --dry-run=server --validate=strict of each render (CRDs included) into a
#     namespace labelled pod-security.kubernetes.io/warn=restricted: any schema error, unknown
#     field or Pod Security "restricted" warning fails.
#     ServiceMonitor and PrometheusRule are rendered apart: their CRDs (Prometheus Operator) are
#     not on the bare apiserver, and this repo does not carry them. They get client-side checks
#     instead: kind/apiVersion/selector, and `promtool check rules` on the PrometheusRule's
#     groups (skipped with a note when promtool is missing; `make tools` installs it).
#     helm install --dry-run=server of the chart too (helm's own checks, NOTES.txt).
#     The dashboard ConfigMap as the apiserver stores it equals dashboards/argomap.json; the
#     `helm test` Pod (GET /readyz) is admitted under restricted. It cannot run: this control
#     plane has no kubelet.
#  5. The RBAC, applied for real under release name argomap-chart-test (its own ServiceAccount,
#     ClusterRoles and bindings, so nothing the other tests use is touched), checked with
#     `kubectl auth can-i --as` for every verb argomap needs and a few it must not have.
#
# Needs the control plane env (target/controlplane/env, sourced here when present) unless run
# with --offline (steps 1-3 and the client-side checks only). Never touches the cluster the
# caller's KUBECONFIG points at: only ARGOMAP_TEST_KUBECONFIG is used.
#
# Usage: tests/chart/render-test.sh [--offline]
set -euo pipefail
exec </dev/null

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
chart="$root/charts/argomap"
kube_version=1.37.2
release=argomap-chart-test
ns=argomap-chart
watched=argomap-chart-watched

offline=0
for arg in "$@"; do
  case "$arg" in
    --offline) offline=1 ;;
    -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "render-test.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
note() { echo "note $*"; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

helm="$(bash "$root/tests/controlplane/build.sh" helm | tail -n1)/helm"
[ -x "$helm" ] || { echo "render-test.sh: no helm at $helm" >&2; exit 1; }

if [ "$offline" = 0 ]; then
  env_file="${ARGOMAP_CONTROLPLANE_DIR:-$root/target/controlplane}/env"
  if [ -z "${ARGOMAP_TEST_KUBECONFIG:-}" ] && [ -f "$env_file" ]; then
    set -a
    # shellcheck source=/dev/null
    . "$env_file"
    set +a
  fi
  if [ -z "${ARGOMAP_TEST_KUBECONFIG:-}" ]; then
    echo "render-test.sh: no control plane: run 'make controlplane-up' (or pass --offline)" >&2
    exit 1
  fi
  kubectl_bin="${KUBECTL:-kubectl}"
  if [ -n "${ARGOMAP_TEST_BIN_DIR:-}" ] && [ -x "$ARGOMAP_TEST_BIN_DIR/kubectl" ]; then
    kubectl_bin="$ARGOMAP_TEST_BIN_DIR/kubectl"
  fi
  kc() { "$kubectl_bin" --kubeconfig "$ARGOMAP_TEST_KUBECONFIG" "$@"; }
fi

# The argomap binary that parses the rendered args.
argomap_bin="${ARGOMAP_BIN:-}"
if [ -z "$argomap_bin" ]; then
  (cd "$root" && cargo build --quiet --locked --bin argomap)
  argomap_bin="$root/target/debug/argomap"
fi

# render NAME [helm args...]: helm template into $work/NAME.yaml.
render() {
  local name="$1"
  shift
  "$helm" template "$release" "$chart" --namespace "$ns" --kube-version "$kube_version" "$@" \
    >"$work/$name.yaml" 2>"$work/$name.err"
}

# deployment_args FILE: the container args of the rendered Deployment, one a line.
deployment_args() {
  awk '
    /^# Source: argomap\/templates\/deployment.yaml/ { in_dep = 1; next }
    /^# Source: / { in_dep = 0 }
    in_dep && /^ +args:$/ { in_args = 1; next }
    in_args && /^ +- / { sub(/^ +- /, ""); gsub(/^"|"$/, ""); print; next }
    in_args { in_args = 0 }
  ' "$1"
}

# --- 1. helm lint --strict ------------------------------------------------------------------
value_files=("$here"/values/*.yaml)
if out="$("$helm" lint --strict --kube-version "$kube_version" "$chart" 2>&1)"; then
  ok "helm lint --strict (default values)"
else
  bad "helm lint --strict (default values)"; echo "$out"
fi
for f in "${value_files[@]}"; do
  if out="$("$helm" lint --strict --kube-version "$kube_version" "$chart" -f "$f" 2>&1)"; then
    ok "helm lint --strict -f ${f#"$root"/}"
  else
    bad "helm lint --strict -f ${f#"$root"/}"; echo "$out"
  fi
done

# --- 2. renders and the binary accepts the args -----------------------------------------------
variants=(default all-namespaces)
render default --include-crds || { bad "helm template (default)"; cat "$work/default.err"; }
render all-namespaces --set watchAllNamespaces=true ||
  { bad "helm template (all-namespaces)"; cat "$work/all-namespaces.err"; }
for f in "${value_files[@]}"; do
  v="$(basename "$f" .yaml)"
  variants+=("$v")
  render "$v" --include-crds -f "$f" \
    --set serviceMonitor.enabled=false --set prometheusRule.enabled=false ||
    { bad "helm template ($v)"; cat "$work/$v.err"; }
done
render monitoring -f "$here/values/all-features.yaml" \
  --show-only templates/servicemonitor.yaml --show-only templates/prometheusrule.yaml ||
  { bad "helm template (monitoring)"; cat "$work/monitoring.err"; }

for v in "${variants[@]}"; do
  [ -s "$work/$v.yaml" ] || continue
  ok "helm template ($v): $(grep -c '^kind: ' "$work/$v.yaml") objects"
  mapfile -t args < <(deployment_args "$work/$v.yaml")
  if [ "${#args[@]}" -gt 0 ] && [ "${args[0]}" = run ] && out="$("$argomap_bin" "${args[@]}" --help 2>&1)"; then
    ok "argomap accepts the args of ($v): ${args[*]}"
  else
    bad "argomap rejects the args of ($v): ${args[*]}"; echo "$out" | tail -n5
  fi
done

# Facts each render must hold.
expect() { # expect VARIANT DESCRIPTION EXTENDED-REGEX
  if grep -Eq -- "$3" "$work/$1.yaml"; then ok "($1) $2"; else bad "($1) $2: no match for /$3/"; fi
}
expect_not() {
  if grep -Eq -- "$3" "$work/$1.yaml"; then bad "($1) $2: unexpected /$3/"; else ok "($1) $2"; fi
}
if [ -s "$work/default.yaml" ]; then
  expect default "2 replicas" '^  replicas: 2$'
  expect default "leader election on" '^ +- --leader-election$'
  # Least privilege by default: the release namespace only, no Secret read elsewhere.
  expect default "the release namespace only" "^ +- --namespace=$ns\$"
  if [ "$(grep -c '^kind: ClusterRole$' "$work/default.yaml")" = 3 ]; then
    ok "(default) no ClusterRole but the reviews, metrics-reader and namespaces ones"
  else
    bad "(default) a cluster-wide ClusterRole is rendered"
  fi
  expect default "readOnlyRootFilesystem" 'readOnlyRootFilesystem: true'
  expect default "runAsUser 65532" 'runAsUser: 65532'
  expect default "drop ALL" '^ +- ALL$'
  expect default "liveness /healthz" 'path: /healthz'
  expect default "readiness /readyz" 'path: /readyz'
  expect default "PodDisruptionBudget" '^kind: PodDisruptionBudget$'
  expect default "both CRDs" 'name: clustermappings.argomap.io'
  expect_not default "no NetworkPolicy by default" '^kind: NetworkPolicy$'
  expect default "authenticated scraping on by default" '^ +- --metrics-auth$'
  expect default "the metrics-reader ClusterRole" "^  name: $release-metrics-reader\$"
  expect default "it grants get on /metrics only" '^  - nonResourceURLs: \["/metrics"\]$'
  expect default "read-API tokens for the argomap audience" '^ +- --read-api-audience=argomap$'
  expect_not default "no dashboard ConfigMap by default" 'name: argomap-chart-test-dashboards$'
  # The helm test hook: a Pod that asks the Service's admin port (8081) for /readyz.
  expect default "helm test hook Pod" '^    helm.sh/hook: test$'
  expect default "the hook asks /readyz of the Service's admin port" \
    "^ +- http://$release\\.$ns\\.svc:8081/readyz\$"
fi
if [ -s "$work/all-features.yaml" ]; then
  expect all-features "--cluster-profiles with clusterProfiles.enabled" '^ +- --cluster-profiles$'
  expect all-features "ClusterProfiles read-only" '^    resources: \["clusterprofiles"\]$'
fi
expect_not default "no ClusterProfile access by default" 'clusterprofiles'
if [ -s "$work/all-namespaces.yaml" ]; then
  expect all-namespaces "ClusterRole for all namespaces" "^  name: $release\$"
  expect_not all-namespaces "no --namespace" '--namespace='
fi
if [ -s "$work/watch-namespace.yaml" ]; then
  expect watch-namespace "--namespace" "^ +- --namespace=$watched\$"
  expect watch-namespace "Role in the watched namespace" "^  namespace: $watched\$"
  # Cluster-scoped by nature, and granting argomap nothing it reads: the reviews, and the
  # scrapers' /metrics (a non-resource URL, only in a ClusterRole).
  if [ "$(awk '/^kind: ClusterRole$/ { getline; getline; print }' "$work/watch-namespace.yaml" |
    sed 's/.*-//' | sort | tr '\n' ' ')" = "namespaces reader reviews " ]; then
    ok "(watch-namespace) the only ClusterRoles are the reviews, metrics-reader and namespaces ones"
  else
    bad "(watch-namespace) a ClusterRole other than -reviews, -metrics-reader and -namespaces is rendered"
  fi
  expect watch-namespace "namespaces read by name only" "^      - $watched\$"
fi
if [ -s "$work/all-features.yaml" ]; then
  expect all-features "NetworkPolicy" '^kind: NetworkPolicy$'
  expect all-features "metricsAuth.readers bound to the metrics-reader" '^    name: prometheus-k8s$'
  expect all-features "the read API's TLS Secret mounted" '^            secretName: argomap-read-api-tls$'
  expect all-features "and given to argomap" '^ +- --read-api-tls-cert-file=/etc/argomap/read-api-tls/tls.crt$'
  expect all-features "egress rules" '^  egress:$'
  expect all-features "lease name from values" '^ +- --lease-name=argomap-chart-lease$'
  expect all-features "image by digest" 'image: "registry.example.com/argomap@sha256:0123'
  expect all-features "test image by digest" 'image: "registry.example.com/curl@sha256:fedc'
  expect all-features "priorityClassName" '^      priorityClassName: system-cluster-critical$'
  expect all-features "topologySpreadConstraints" '^      topologySpreadConstraints:$'
  expect all-features "dashboard ConfigMap with the sidecar label" '^    grafana_dashboard: "1"$'
  expect all-features "dashboard ConfigMap annotation" '^    grafana_folder: Platform$'
  # commonLabels and commonAnnotations on every object of the render (CRDs aside: helm
  # installs crds/ as they are).
  objects="$(grep -c '^kind: ' "$work/all-features.yaml")"
  crds="$(grep -c '^kind: CustomResourceDefinition$' "$work/all-features.yaml")"
  labelled="$(grep -c '^    example.com/cost-center: platform$' "$work/all-features.yaml")"
  annotated="$(grep -c '^    example.com/owner: platform-team$' "$work/all-features.yaml")"
  if [ "$labelled" -ge $((objects - crds)) ] && [ "$annotated" = $((objects - crds)) ]; then
    ok "(all-features) commonLabels on $labelled, commonAnnotations on $annotated of $((objects - crds)) objects"
  else
    bad "(all-features) commonLabels on $labelled, commonAnnotations on $annotated of $((objects - crds)) objects"
  fi
fi

# --- 3. values the chart refuses ---------------------------------------------------------------
refuse() { # refuse DESCRIPTION MESSAGE-REGEX helm-args...
  local what="$1" msg="$2"
  shift 2
  if "$helm" template "$release" "$chart" --namespace "$ns" --kube-version "$kube_version" "$@" \
    >/dev/null 2>"$work/refuse.err"; then
    bad "refuses $what: it rendered"
  elif grep -Eq -- "$msg" "$work/refuse.err"; then
    ok "refuses $what"
  else
    bad "refuses $what, but not with /$msg/:"; cat "$work/refuse.err"
  fi
}
refuse "a namespace listed twice" 'watchNamespaces' --set 'watchNamespaces={a,a}'
refuse "watchAllNamespaces with watchNamespaces" 'both set' --set watchAllNamespaces=true --set 'watchNamespaces={a}'
# Two watched namespaces: one --namespace=a,b, and a Role + RoleBinding in each, no ClusterRole
# but the reviews, metrics-reader and namespaces ones (tests/cluster/rbac.rs runs argomap under exactly these).
if "$helm" template "$release" "$chart" --namespace "$ns" --kube-version "$kube_version" \
  --set 'watchNamespaces={a,b}' >"$work/two-namespaces.yaml" 2>&1 &&
  grep -Eq -- '^ +- --namespace=a,b$' "$work/two-namespaces.yaml" &&
  [ "$(awk '/^kind: (Role|RoleBinding)$/ { k = $2 } k && /^  namespace: / { print k, $2; k = "" }' \
    "$work/two-namespaces.yaml" | grep -E ' (a|b)$' | sort | tr '\n' ' ')" = "Role a Role b RoleBinding a RoleBinding b " ] &&
  [ "$(grep -c '^kind: ClusterRole$' "$work/two-namespaces.yaml")" = 3 ]; then
  ok "two watched namespaces: --namespace=a,b, a Role and a RoleBinding in each"
else
  bad "two watched namespaces"; cat "$work/two-namespaces.yaml"
fi
refuse "2 replicas without leader election" 'leaderElection.enabled is false' \
  --set leaderElection.enabled=false
refuse "an unknown value (typo)" "additional properties 'watchNamespace' not allowed" \
  --set watchNamespace=a
refuse "logFormat xml" 'logFormat' --set logFormat=xml
refuse "an invalid namespace name" 'watchNamespaces' --set 'watchNamespaces={Bad_Name}'
if "$helm" template "$release" "$chart" --namespace "$ns" --kube-version "$kube_version" \
  --set leaderElection.enabled=false --set replicaCount=1 >"$work/single.yaml" 2>&1 &&
  ! grep -q -- '--leader-election' "$work/single.yaml" && ! grep -q '^kind: PodDisruptionBudget$' "$work/single.yaml" &&
  ! grep -q 'leader-election$' "$work/single.yaml"; then
  ok "1 replica without leader election: no Lease RBAC, no PodDisruptionBudget"
else
  bad "1 replica without leader election"; cat "$work/single.yaml"
fi

# --- client-side checks of ServiceMonitor and PrometheusRule ------------------------------------
if [ -s "$work/monitoring.yaml" ]; then
  if grep -q '^apiVersion: monitoring.coreos.com/v1$' "$work/monitoring.yaml" &&
    grep -q '^kind: ServiceMonitor$' "$work/monitoring.yaml" &&
    grep -q '^kind: PrometheusRule$' "$work/monitoring.yaml" &&
    grep -Eq '^    - port: admin$' "$work/monitoring.yaml" &&
    grep -Eq '^      honorLabels: true$' "$work/monitoring.yaml" &&
    grep -Eq '^      bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token$' "$work/monitoring.yaml"; then
    ok "ServiceMonitor + PrometheusRule render (monitoring.coreos.com/v1, port admin, honorLabels, Prometheus' token)"
  else
    bad "ServiceMonitor/PrometheusRule render"; cat "$work/monitoring.yaml"
  fi
  for alert in ArgomapInstanceDown ArgomapUnlinkedDestination ArgomapOrphanedMapping ArgomapDanglingDestination \
    ArgomapCredentialsExpiring ArgomapChecksStale ArgomapApplicationStreamDown ArgomapReconcileErrors; do
    if grep -q "alert: $alert\$" "$work/monitoring.yaml"; then ok "alert $alert"; else bad "alert $alert missing"; fi
  done
  # The PrometheusRule's spec is a Prometheus rules file (groups: ...), two spaces deeper.
  awk '
    /^# Source: argomap\/templates\/prometheusrule.yaml/ { in_rule = 1; next }
    /^(---|# Source: )/ { in_rule = 0 }
    in_rule && /^spec:$/ { in_spec = 1; next }
    in_rule && in_spec { sub(/^  /, ""); print }
  ' "$work/monitoring.yaml" >"$work/rules.yaml"
  promtool="${ARGOMAP_TEST_PROMTOOL:-$(command -v promtool || true)}"
  if [ -n "$promtool" ] && [ -x "$promtool" ]; then
    if out="$("$promtool" check rules "$work/rules.yaml" 2>&1)"; then
      ok "promtool check rules: $(echo "$out" | grep -Eo 'SUCCESS: [0-9]+ rules found' || echo SUCCESS)"
    else
      bad "promtool check rules"; echo "$out"; cat "$work/rules.yaml"
    fi
  else
    note "promtool not found: PromQL of the alerts not checked (make tools installs it)"
  fi
fi

if [ "$offline" = 1 ]; then
  echo "(--offline: no apiserver checks)"
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
  exit
fi

# --- 4. kubectl apply --dry-run=server ---------------------------------------------------------
for n in "$ns" "$watched"; do
  kc create namespace "$n" --dry-run=client -o yaml | kc apply -f - >/dev/null
  # Pod Security "restricted" as warnings: a workload whose pod template breaks it is reported.
  kc label namespace "$n" --overwrite \
    pod-security.kubernetes.io/warn=restricted pod-security.kubernetes.io/warn-version=latest >/dev/null
done
ok "namespaces $ns and $watched exist (pod-security warn=restricted)"

for v in "${variants[@]}"; do
  [ -s "$work/$v.yaml" ] || continue
  if out="$(kc apply --server-side --force-conflicts --field-manager argomap-chart-test \
    --dry-run=server --validate=strict -f "$work/$v.yaml" 2>&1)"; then
    if grep -qi 'warning' <<<"$out"; then
      bad "kubectl apply --dry-run=server ($v) warns:"; grep -i warning <<<"$out"
    else
      ok "kubectl apply --dry-run=server ($v): $(grep -c 'server dry run' <<<"$out") objects accepted"
    fi
  else
    bad "kubectl apply --dry-run=server ($v)"; echo "$out"
  fi
done

# helm's own install path against the apiserver (CRD handling, ownership checks, NOTES.txt),
# under another release name so it never meets the RBAC objects applied below.
for f in "" "$here/values/watch-namespace.yaml"; do
  v="${f:+$(basename "$f" .yaml)}"
  v="${v:-default}"
  if out="$("$helm" install argomap-dry "$chart" --kubeconfig "$ARGOMAP_TEST_KUBECONFIG" --namespace "$ns" \
    --dry-run=server ${f:+-f "$f"} 2>&1)" && grep -q '^NOTES:' <<<"$out"; then
    ok "helm install --dry-run=server ($v): $(grep -E '^It watches' <<<"$out")"
  else
    bad "helm install --dry-run=server ($v)"; echo "$out" | tail -n 20
  fi
done

# The dashboard ConfigMap, as the apiserver stores it, holds exactly the dashboard file.
render dashboards --set dashboards.enabled=true --show-only templates/dashboards.yaml ||
  { bad "helm template (dashboards)"; cat "$work/dashboards.err"; }
if [ -s "$work/dashboards.yaml" ] &&
  kc apply --dry-run=server -f "$work/dashboards.yaml" -o jsonpath='{.data.argomap\.json}' >"$work/dashboard.json" 2>"$work/dashboard.err" &&
  cmp -s "$work/dashboard.json" "$chart/dashboards/argomap.json"; then
  ok "the dashboard ConfigMap (server dry-run) holds dashboards/argomap.json byte for byte"
else
  bad "the dashboard ConfigMap differs from dashboards/argomap.json"; cat "$work/dashboard.err" 2>/dev/null
  diff "$work/dashboard.json" "$chart/dashboards/argomap.json" | head -n 10
fi

# The helm test Pod under Pod Security restricted. The control plane has no kubelet, so it
# cannot run here: the server dry-run is what proves it would be admitted.
render hook --show-only templates/tests/readyz.yaml || { bad "helm template (hook)"; cat "$work/hook.err"; }
if out="$(kc apply --dry-run=server --validate=strict -f "$work/hook.yaml" 2>&1)" && ! grep -qi warning <<<"$out"; then
  ok "the helm test Pod is admitted under Pod Security restricted (server dry-run): $out"
else
  bad "the helm test Pod (server dry-run)"; echo "$out"
fi

# The restricted check really bites: a render with a weakened securityContext must warn.
render weak --set securityContext.allowPrivilegeEscalation=true --set securityContext.readOnlyRootFilesystem=false \
  --show-only templates/deployment.yaml || true
out="$(kc apply --dry-run=server -f "$work/weak.yaml" 2>&1 || true)"
if grep -q 'would violate PodSecurity "restricted' <<<"$out"; then
  ok "a weakened securityContext is reported by Pod Security (the check is live)"
else
  bad "a weakened securityContext was not reported by Pod Security"
fi

# --- 5. RBAC: apply for real, then can-i as the ServiceAccount --------------------------------
if [ -s "$work/all-namespaces.yaml" ] && [ -s "$work/watch-namespace.yaml" ]; then
  sa="system:serviceaccount:$ns:$release"
  # can VERB RESOURCE[/NAME][:SUBRESOURCE] NAMESPACE(or - for all) [yes|no]
  can() {
    local want="${4:-yes}" got resource="${2%%:*}" args=(--all-namespaces)
    [ "$3" = - ] || args=(--namespace "$3")
    [ "$2" = "$resource" ] || args+=(--subresource "${2#*:}")
    got="$(kc auth can-i "$1" "$resource" "${args[@]}" --as "$sa" 2>/dev/null || true)"
    if [ "$got" = "$want" ]; then ok "can-i $1 $2 in ${3/#-/all namespaces}: $got"
    else bad "can-i $1 $2 in ${3/#-/all namespaces}: $got, want $want"; fi
  }
  apply_rbac() { # the RBAC objects of a render, applied for real
    awk '
      /^# Source: argomap\/templates\/(rbac|serviceaccount)/ { keep = 1; print "---"; next }
      /^# Source: / { keep = 0 }
      keep && !/^---$/ { print }
    ' "$work/$1.yaml" >"$work/$1-rbac.yaml"
    kc apply --server-side --force-conflicts --field-manager argomap-chart-test -f "$work/$1-rbac.yaml" >/dev/null
  }
  lease="$(grep -Eo -- '--lease-name=[^ ]+' "$work/all-namespaces.yaml" | cut -d= -f2)"
  # Start clean: what a previous run left (nothing is ever deleted with the namespaces here).
  kc delete rolebinding,role "$release" -n "$watched" --ignore-not-found >/dev/null
  kc delete clusterrolebinding,clusterrole "$release" "$release-namespaces" --ignore-not-found >/dev/null

  # Cluster-wide (watchAllNamespaces).
  apply_rbac all-namespaces
  for verb in get list watch; do
    can "$verb" argocdinstances.argomap.io -
    can "$verb" clustermappings.argomap.io -
    can "$verb" secrets -
  done
  can patch argocdinstances.argomap.io:status -
  can patch clustermappings.argomap.io:status -
  can create events.events.k8s.io default
  can patch events.events.k8s.io default
  can create leases.coordination.k8s.io "$ns"
  can get "leases.coordination.k8s.io/$lease" "$ns"
  can patch "leases.coordination.k8s.io/$lease" "$ns"
  can watch "leases.coordination.k8s.io/$lease" "$ns"
  can create tokenreviews.authentication.k8s.io -
  can create subjectaccessreviews.authorization.k8s.io -
  can watch namespaces -
  # ... and nothing more.
  can update argocdinstances.argomap.io - no
  can patch argocdinstances.argomap.io - no
  can delete clustermappings.argomap.io - no
  can update argocdinstances.argomap.io:status - no
  can create secrets "$ns" no
  can patch secrets default no
  can get leases.coordination.k8s.io/another-lease "$ns" no
  can update "leases.coordination.k8s.io/$lease" "$ns" no
  can delete "leases.coordination.k8s.io/$lease" "$ns" no
  can create leases.coordination.k8s.io default no
  can create events "$ns" no
  can list pods "$ns" no

  # One watched namespace: the same release switched to a Role. Remove the cluster-wide
  # binding first, as helm upgrade would.
  kc delete clusterrolebinding,clusterrole "$release" "$release-namespaces" --ignore-not-found >/dev/null
  apply_rbac watch-namespace
  can list secrets "$watched"
  can watch argocdinstances.argomap.io "$watched"
  can patch clustermappings.argomap.io:status "$watched"
  can create events.events.k8s.io "$watched"
  can list secrets - no
  can list secrets default no
  can list argocdinstances.argomap.io default no
  can create events.events.k8s.io default no
  can create tokenreviews.authentication.k8s.io -
  can get "namespaces/$watched" -
  can get namespaces/default - no
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
