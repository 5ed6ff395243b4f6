#!/usr/bin/env bash
# What argomap's watches cost the API server and the process: the open WATCH requests per
# resource (kube-apiserver's apiserver_longrunning_requests) and argomap's peak RSS, for one
# namespace holding a suspended ArgoCdInstance and MAPPINGS ClusterMappings, once every mapping
# has a state. Needs the test control plane (make controlplane-up).
#
#   bash benches/watches.sh [MAPPINGS] [BINARY...]   (default 3000 mappings; target/debug/argomap,
#   built here; pass binaries of other commits to compare, each is run in turn, three times)
set -euo pipefail
cd "$(dirname "$0")/.."
mappings="${1:-3000}"
shift || true
if [ "$#" -eq 0 ]; then
  cargo build --locked --quiet --bin argomap
  set -- target/debug/argomap
fi
set -a; . "${ARGOMAP_CONTROLPLANE_DIR:-target/controlplane}/env"; set +a
ns=argomap-bench-watches
work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

python3 - "$ns" "$mappings" >"$work/objects.yaml" <<'PY'
import sys
ns, n = sys.argv[1], int(sys.argv[2])
docs = [f"""apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}""", f"""apiVersion: argomap.io/v1alpha1
kind: ArgoCdInstance
metadata: {{name: a, namespace: {ns}}}
spec:
  url: https://argocd.invalid
  suspend: true
  credentials: {{secretRef: {{name: a-token}}}}
  agentCluster: {{id: f0dc1ac9-f973-4c07-9608-e87516cb3332, name: agent, cloudProvider: AWS, type: MANAGED}}"""]
for i in range(n):
    docs.append(f"""apiVersion: argomap.io/v1alpha1
kind: ClusterMapping
metadata: {{name: m{i}, namespace: {ns}}}
spec:
  instanceRef: {{name: a}}
  argocdClusterUrl: https://cluster-{i}.example.com
  cluster: {{id: 0b9f6a1e-0000-4000-8000-{i:012d}, name: cluster-{i}, cloudProvider: AWS, type: MANAGED}}""")
print("\n---\n".join(docs))
PY
kubectl apply --server-side -f "$work/objects.yaml" >/dev/null

watches() {
  kubectl get --raw /metrics | grep '^apiserver_longrunning_requests' | grep 'verb="WATCH"' \
    | sed -E 's/.*resource="([^"]*)".*scope="([^"]*)".* ([0-9]+)$/\1 (\2) \3/' | grep -v ' 0$' | sort
}
before="$(watches)"
for run in 1 2 3; do
  for bin in "$@"; do
    RUST_LOG=warn "$bin" run --namespace "$ns" --http-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 \
      --deny-url-cidrs= 2>"$work/argomap.log" &
    pid=$!
    stated=0
    for _ in $(seq 1 240); do
      stated="$(kubectl -n "$ns" get clustermappings -o jsonpath='{range .items[*]}{.status.state}{"\n"}{end}' | grep -c . || true)"
      [ "$stated" -ge "$mappings" ] && break
      sleep 0.5
    done
    peak=0
    for _ in $(seq 1 10); do
      rss="$(awk '/VmRSS/{print $2}' "/proc/$pid/status")"
      [ "$rss" -gt "$peak" ] && peak="$rss"
      sleep 1
    done
    opened="$(comm -13 <(echo "$before") <(watches) | tr '\n' ';')"
    echo "run $run, $bin: $stated of $mappings mappings with a state; peak RSS over 10 s $((peak / 1024)) MiB; watches it opened: $opened"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  done
done
