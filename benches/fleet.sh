#!/usr/bin/env bash
# `argomap run` (release build) on the test control plane against a fake Argo CD, with its
# memory sampled from /proc: the soak and worst-case figures of BENCHMARKS.md.
#
#   bash benches/fleet.sh soak    30 instances x 5000 applications, 10 s interval, 10 minutes,
#                                 RSS every 15 s
#   bash benches/fleet.sh worst   8 instances (the chart's maxConcurrentChecks) against a hostile
#                                 Argo CD whose lists hold as much text as argomap keeps: 240
#                                 clusters with 8 KiB URLs, 12 000 applications aimed at distinct
#                                 1 KiB URLs; 10 s interval, 2 minutes, RSS every second
#
# Starts the control plane if needed (make controlplane-up) and leaves it running; everything
# else it starts (fake Argo CD, argomap, a namespace of its own) is stopped at the end.
# Bounded: every loop has a deadline, and only loopback addresses are used. BENCH_SECONDS
# overrides the duration.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
case "$mode" in
  soak) instances=30 apps=5000 clusters=100 url_len=0 duration=600 every=15 ;;
  worst) instances=8 apps=12000 clusters=240 url_len=8192 duration=120 every=1 ;;
  *) echo "usage: $0 soak|worst" >&2; exit 2 ;;
esac
duration="${BENCH_SECONDS:-$duration}"

work="$(mktemp -d)"
fake_pid="" op_pid=""
cleanup() {
  for p in $op_pid $fake_pid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --locked --quiet --workspace --bins
make --no-print-directory controlplane-up >/dev/null
set -a; . target/controlplane/env; set +a
kubectl="kubectl --kubeconfig $KUBECONFIG"

python3 - "$apps" "$clusters" "$url_len" "$mode" >"$work/seed.json" <<'PY'
import json, sys
apps, clusters, url_len, mode = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def server(i, length):
    base = f"https://c{i:05d}.k8s.example.com"
    return base if length == 0 else base + "/" + "p" * (length - len(base) - 1)
seed = {"version": "v3.6.1", "account": "argomap",
        "clusters": [{"server": server(i, url_len), "name": f"cluster-{i:05d}"} for i in range(clusters)]}
if mode == "worst":
    # Every application aimed at a destination of its own, unlisted: the tally's worst case.
    seed["applications"] = [{"name": f"app-{i:07d}", "destServer": server(100000 + i, 1024), "destNamespace": "a"}
                            for i in range(apps)]
else:
    seed["applications"] = [{"name": f"app-{i:07d}", "destServer": server(i % clusters, 0), "destNamespace": "a"}
                            for i in range(apps)]
json.dump(seed, sys.stdout)
PY
target/release/fake-argocd --seed "$work/seed.json" --url-file "$work/url" --token-file "$work/token" \
  >"$work/fake.log" 2>&1 &
fake_pid=$!
for _ in $(seq 1 600); do [ -s "$work/url" ] && break; sleep 0.1; done
[ -s "$work/url" ] || { echo "fake-argocd did not start" >&2; cat "$work/fake.log" >&2; exit 1; }

ns="bench-$mode-$(printf '%06x' $((RANDOM * RANDOM % 16777216)))"
$kubectl create namespace "$ns" >/dev/null
$kubectl -n "$ns" create secret generic argocd-token --from-file=token="$work/token" >/dev/null
$kubectl -n "$ns" label secret argocd-token argomap.io/credentials=true >/dev/null
for i in $(seq 1 "$instances"); do
  cat <<EOF
apiVersion: argomap.io/v1alpha1
kind: ArgoCdInstance
metadata: {name: argocd-$i, namespace: $ns}
spec:
  url: $(cat "$work/url")
  interval: 10s
  timeout: 30s
  credentials: {secretRef: {name: argocd-token}}
  agentCluster: {id: 0b9f6a1e-2c1d-4e4f-9a4b-1f2e3d4c5b6a, name: Bench, cloudProvider: AWS, type: MANAGED}
---
EOF
done >"$work/instances.yaml"
$kubectl apply -f "$work/instances.yaml" >/dev/null

target/release/argomap run --namespace "$ns" --http-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 \
  --max-concurrent-checks 8 --deny-url-cidrs= >"$work/argomap.log" 2>&1 &
op_pid=$!
echo "mode=$mode instances=$instances applications=$apps clusters=$clusters namespace=$ns"
start=$SECONDS
peak=0
while [ $((SECONDS - start)) -lt "$duration" ]; do
  sleep "$every"
  kill -0 "$op_pid" 2>/dev/null || { echo "argomap exited" >&2; tail -20 "$work/argomap.log" >&2; exit 1; }
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$op_pid/status")
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$op_pid/status")
  [ "$hwm" -gt "$peak" ] && peak=$hwm
  if [ "$mode" = soak ] || [ $(((SECONDS - start) % 15)) -lt "$every" ]; then
    printf 't=%4ss rss=%6.1f MiB peak=%6.1f MiB\n' "$((SECONDS - start))" "$(echo "$rss/1024" | bc -l)" "$(echo "$hwm/1024" | bc -l)"
  fi
done
checks=$(grep -c -E "check (succeeded|failed)" "$work/argomap.log" || true)
cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$op_pid/stat")
printf 'after %ss: peak RSS %.1f MiB, %s checks finished, %.1f s CPU\n' "$duration" "$(echo "$peak/1024" | bc -l)" "$checks" "$cpu"
grep -m3 -E "check failed" "$work/argomap.log" | cut -c1-300 || true
