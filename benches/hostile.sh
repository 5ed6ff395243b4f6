#!/usr/bin/env bash
# The worst case of the memory bound (docs/how-it-works.md, "Memory"), with the chart's defaults
# (8 check slots, --max-watch-bytes 64 MiB): `argomap run` (release build) on the test control
# plane against two hostile fake Argo CDs at argomap's caps, at once:
#   - 8 Poll instances whose lists hold as much text as a check keeps: 240 clusters with 8 KiB
#     URLs and 12 000 applications aimed at distinct 1 KiB URLs;
#   - 8 Watch instances whose Argo CD has 100 000 applications of 160 bytes each (a full index,
#     about 25 MiB charged each: the budget holds two), holds every list open 3 s and floods
#     every stream with 4 MB events.
# Interval 10 s; RSS sampled every second for BENCH_SECONDS (default 180). Prints the peak, the
# bound, and where each Watch instance's stream stands.
#
#   bash benches/hostile.sh
#
# Starts the control plane if needed (make controlplane-up) and leaves it running; everything
# else it starts (fakes, argomap, a namespace of its own) is stopped at the end. Only loopback
# addresses are used.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${BENCH_SECONDS:-180}"

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --locked --quiet --workspace --bins
make --no-print-directory controlplane-up >/dev/null
set -a; . target/controlplane/env; set +a
kubectl="kubectl --kubeconfig $KUBECONFIG"

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def server(i, length):
    base = f"https://c{i:05d}.k8s.example.com"
    return base if length == 0 else base + "/" + "p" * (length - len(base) - 1)
poll = {"version": "v3.6.1", "account": "argomap",
        "clusters": [{"server": server(i, 8192), "name": f"cluster-{i:05d}"} for i in range(240)],
        "applications": [{"name": f"app-{i:07d}", "destServer": server(100000 + i, 1024), "destNamespace": "a"}
                         for i in range(12000)]}
# Key "argocd/<name>" (7 + 96 bytes) and a 57-byte URL: 160 bytes an application, 16 000 000 in
# all, under the index's 16 MiB of text.
watch = {"version": "v3.6.1", "account": "argomap",
         "clusters": [{"server": server(i, 0), "name": f"cluster-{i:05d}"} for i in range(100)],
         "applications": [{"name": f"app-{i:07d}-" + "n" * 84, "namespace": "argocd",
                           "destServer": server(i % 100, 57), "destNamespace": "a"} for i in range(100000)]}
json.dump(poll, open(f"{work}/poll.json", "w"))
json.dump(watch, open(f"{work}/watch.json", "w"))
PY
for side in poll watch; do
  hostile=()
  [ "$side" = watch ] && hostile=(--hostile "watch:50:4000000:3")
  target/release/fake-argocd --seed "$work/$side.json" --url-file "$work/$side.url" \
    --token-file "$work/$side.token" "${hostile[@]}" >"$work/$side.log" 2>&1 &
  pids+=("$!")
done
for side in poll watch; do
  for _ in $(seq 1 600); do [ -s "$work/$side.url" ] && break; sleep 0.1; done
  [ -s "$work/$side.url" ] || { echo "fake-argocd ($side) did not start" >&2; cat "$work/$side.log" >&2; exit 1; }
done

ns="bench-hostile-$(printf '%06x' $((RANDOM * RANDOM % 16777216)))"
$kubectl create namespace "$ns" >/dev/null
for side in poll watch; do
  $kubectl -n "$ns" create secret generic "token-$side" --from-file=token="$work/$side.token" >/dev/null
  $kubectl -n "$ns" label secret "token-$side" argomap.io/credentials=true >/dev/null
  mode=Poll
  [ "$side" = watch ] && mode=Watch
  for i in $(seq 1 8); do
    cat <<EOF
apiVersion: argomap.io/v1alpha1
kind: ArgoCdInstance
metadata: {name: $side-$i, namespace: $ns}
spec:
  url: $(cat "$work/$side.url")
  interval: 10s
  timeout: 30s
  applications: {mode: $mode}
  credentials: {secretRef: {name: token-$side}}
  agentCluster: {id: 0b9f6a1e-2c1d-4e4f-9a4b-1f2e3d4c5b6a, name: Bench, cloudProvider: AWS, type: MANAGED}
---
EOF
  done
done >"$work/instances.yaml"
$kubectl apply -f "$work/instances.yaml" >/dev/null

target/release/argomap run --namespace "$ns" --http-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 \
  --deny-url-cidrs= >"$work/argomap.log" 2>&1 &
op_pid=$!
pids+=("$op_pid")
echo "8 Poll + 8 Watch hostile instances, namespace=$ns, ${duration}s"
start=$SECONDS
peak=0
while [ $((SECONDS - start)) -lt "$duration" ]; do
  sleep 1
  kill -0 "$op_pid" 2>/dev/null || { echo "argomap exited" >&2; tail -20 "$work/argomap.log" >&2; exit 1; }
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$op_pid/status")
  [ "$hwm" -gt "$peak" ] && peak=$hwm
  if [ $(((SECONDS - start) % 15)) -eq 0 ]; then
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$op_pid/status")
    printf 't=%4ss rss=%6.1f MiB peak=%6.1f MiB\n' "$((SECONDS - start))" "$(echo "$rss/1024" | bc -l)" "$(echo "$hwm/1024" | bc -l)"
  fi
done
checks=$(grep -c -E "check (succeeded|failed)" "$work/argomap.log" || true)
cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$op_pid/stat")
printf 'after %ss: peak RSS %.1f MiB (the stated bound: 503 MiB), %s checks finished, %.1f s CPU\n' \
  "$duration" "$(echo "$peak/1024" | bc -l)" "$checks" "$cpu"
echo "ApplicationStream of the Watch instances:"
$kubectl -n "$ns" get argocdinstances -o \
  jsonpath='{range .items[*]}{.metadata.name}{" "}{.status.connection.status}{" "}{.status.conditions[?(@.type=="ApplicationStream")].reason}{"\n"}{end}' |
  awk '/^watch-/ {print $2, $3}' | sort | uniq -c
$kubectl delete namespace "$ns" --wait=false >/dev/null
