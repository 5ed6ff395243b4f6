#!/usr/bin/env bash
# The controller at fleet scale: `argomap run` (release build, one replica) on the test control
# plane with INSTANCES ArgoCdInstances (default 200), each checking a fake Argo CD of APPS
# applications (5 000) over DESTINATIONS clusters (2 000), every 60 s, with 5 linked
# ClusterMappings per instance. BENCHMARKS.md's "Controller at scale" figures.
#
#   bash benches/scale.sh [--status-heartbeat DURATION]
#
# Measures: idle RSS (no instance), RSS and CPU over a steady window of WINDOW seconds (300)
# after every instance connected and one full interval passed, Argo CD requests per check
# (the fake's own counts), status writes seen by a watch on both kinds in the window (count
# and bytes of the statuses written), then the delay from creating a ClusterMapping to the
# instance's status showing it linked (5 times).
#
# Starts the control plane if needed (make controlplane-up) and leaves it running; everything
# else it starts is stopped at the end. Every wait has a deadline; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
instances="${INSTANCES:-200}" apps="${APPS:-5000}" destinations="${DESTINATIONS:-2000}"
window="${WINDOW:-300}" interval=60
extra=("$@")

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

python3 benches/fleet.py --destinations "$destinations" --apps "$apps" --by-name 0.2 --odd 0.05 >"$work/seed.json"
echo "instances=$instances applications=$apps destinations=$destinations window=${window}s flags: ${extra[*]:-none}"
target/release/fake-argocd --seed "$work/seed.json" --url-file "$work/url" --token-file "$work/token" \
  --stats-file "$work/stats.json" >"$work/fake.log" 2>&1 &
fake_pid=$!
pids+=("$fake_pid")
for _ in $(seq 1 600); do [ -s "$work/url" ] && break; sleep 0.1; done
[ -s "$work/url" ] || { echo "fake-argocd did not start" >&2; cat "$work/fake.log" >&2; exit 1; }
url="$(cat "$work/url")"

ns="bench-scale-$(printf '%06x' $((RANDOM * RANDOM % 16777216)))"
$kubectl create namespace "$ns" >/dev/null
$kubectl -n "$ns" create secret generic argocd-token --from-file=token="$work/token" >/dev/null
$kubectl -n "$ns" label secret argocd-token argomap.io/credentials=true >/dev/null

rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
hwm_mib() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }

target/release/argomap run --namespace "$ns" --http-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 \
  --deny-url-cidrs= "${extra[@]}" >"$work/argomap.log" 2>&1 &
op_pid=$!
pids+=("$op_pid")
for _ in $(seq 1 300); do grep -q "watches synced" "$work/argomap.log" && break; sleep 0.1; done
grep -q "watches synced" "$work/argomap.log" || { echo "argomap did not become ready" >&2; tail "$work/argomap.log" >&2; exit 1; }
sleep 10 # idle: nothing to do; let allocations settle before sampling
echo "idle (no instances): RSS $(rss_mib $op_pid) MiB, CPU so far $(cpu_s $op_pid) s"

# Status writes as a watch sees them: one line per event, with the size of the status.
watch_kind() {
  $kubectl get --raw "/apis/argomap.io/v1alpha1/namespaces/$ns/$1?watch=1&allowWatchBookmarks=false" |
    python3 -u -c '
import json, sys, time
for line in sys.stdin:
    e = json.loads(line)
    o = e["object"]
    status = json.dumps(o.get("status") or {}, separators=(",", ":"))
    print("%.3f\t%s\t%s\t%d" % (time.time(), e["type"], o["metadata"]["name"], len(status)), flush=True)
' >"$work/watch-$1.tsv"
}
watch_kind argocdinstances & pids+=("$!")
watch_kind clustermappings & pids+=("$!")

python3 - "$instances" "$ns" "$url" "$destinations" >"$work/objects.yaml" <<'PY'
import sys
instances, ns, url, destinations = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
for i in range(1, instances + 1):
    print(f"""apiVersion: argomap.io/v1alpha1
kind: ArgoCdInstance
metadata: {{name: argocd-{i}, namespace: {ns}}}
spec:
  url: {url}
  interval: 60s
  timeout: 30s
  credentials: {{secretRef: {{name: argocd-token}}}}
  agentCluster: {{id: 0b9f6a1e-2c1d-4e4f-9a4b-1f2e3d4c5b6a, name: Bench, cloudProvider: AWS, type: MANAGED}}
---""")
    for j in range(5):
        c = (i * 5 + j) % destinations
        print(f"""apiVersion: argomap.io/v1alpha1
kind: ClusterMapping
metadata: {{name: argocd-{i}-m{j}, namespace: {ns}}}
spec:
  instanceRef: {{name: argocd-{i}}}
  argocdClusterUrl: https://c{c:05d}.k8s.example.com:6443
  cluster: {{id: 6a1e0b9f-2c1d-4e4f-9a4b-{c:012d}, name: Cluster {c}, cloudProvider: AWS, type: MANAGED}}
---""")
PY
$kubectl apply --server-side -f "$work/objects.yaml" >/dev/null
start=$SECONDS
connected() {
  $kubectl -n "$ns" get argocdinstances -o jsonpath='{range .items[*]}{.status.connection.status}{"\n"}{end}' | grep -c '^connected$' || true
}
until [ "$(connected)" -eq "$instances" ]; do
  [ $((SECONDS - start)) -lt 600 ] || { echo "not every instance connected within 600 s: $(connected)/$instances" >&2; exit 1; }
  sleep 2
done
echo "all $instances instances connected after $((SECONDS - start)) s; RSS $(rss_mib $op_pid) MiB"
sleep "$interval" # one full interval: first writes (conditions, mappings) are done

t0=$(date +%s.%N) cpu0=$(cpu_s $op_pid) checks0=$(grep -c "check succeeded" "$work/argomap.log" || true)
peak=0
for _ in $(seq 1 $((window / 5))); do
  sleep 5
  r=$(rss_mib $op_pid)
  peak=$(python3 -c "print(max($peak, $r))")
done
t1=$(date +%s.%N) cpu1=$(cpu_s $op_pid) checks1=$(grep -c "check succeeded" "$work/argomap.log" || true)
checks=$((checks1 - checks0))
python3 - "$work" "$t0" "$t1" "$cpu0" "$cpu1" "$checks" "$instances" "$window" "$peak" "$(rss_mib $op_pid)" <<'PY'
import sys
work, t0, t1, cpu0, cpu1, checks, instances, window, peak, rss = sys.argv[1:]
t0, t1, cpu, checks, instances = float(t0), float(t1), float(cpu1) - float(cpu0), int(checks), int(instances)
def events(kind):
    rows = [l.rstrip("\n").split("\t") for l in open(f"{work}/watch-{kind}.tsv")]
    return [r for r in rows if r[1] == "MODIFIED" and t0 <= float(r[0]) < t1]
inst, maps = events("argocdinstances"), events("clustermappings")
cycles = checks / instances
hour = 3600 / (t1 - t0)
print(f"steady window {t1 - t0:.0f} s: RSS {rss} MiB at the end, peak of the samples {float(peak):.1f} MiB")
print(f"checks {checks} ({cycles:.2f} per instance), CPU {cpu:.2f} s: {cpu / max(cycles, 1e-9):.2f} s per cycle of {instances}, "
      f"{1000 * cpu / max(checks, 1):.1f} ms per check")
print(f"instance status writes {len(inst)} ({len(inst) / max(checks, 1):.2f} per check), "
      f"{sum(int(r[3]) for r in inst)} bytes of status: {sum(int(r[3]) for r in inst) * hour / 2**20:.1f} MiB per hour")
print(f"ClusterMapping status writes {len(maps)}")
PY

# A mapping created for an unlinked destination: how long until the instance shows it linked.
for k in 1 2 3 4 5; do
  i=$((k * 37 % instances + 1)) c=$(((k * 7919 + 1000) % destinations))
  before=$($kubectl -n "$ns" get argocdinstance "argocd-$i" -o jsonpath='{.status.summary.linkedClusters}')
  t=$(date +%s%N)
  cat <<YAML | $kubectl apply --server-side -f - >/dev/null
apiVersion: argomap.io/v1alpha1
kind: ClusterMapping
metadata: {name: argocd-$i-new-$k, namespace: $ns}
spec:
  instanceRef: {name: argocd-$i}
  argocdClusterUrl: https://c$(printf '%05d' $c).k8s.example.com:6443
  cluster: {id: 9f6a1e0b-2c1d-4e4f-9a4b-$(printf '%012d' $c), name: New $k, cloudProvider: AWS, type: MANAGED}
YAML
  deadline=$((SECONDS + 30))
  until [ "$($kubectl -n "$ns" get argocdinstance "argocd-$i" -o jsonpath='{.status.summary.linkedClusters}')" -gt "$before" ]; do
    [ $SECONDS -lt $deadline ] || { echo "mapping $k not linked within 30 s" >&2; exit 1; }
    sleep 0.05
  done
  echo "mapping $k linked in status after $(( ($(date +%s%N) - t) / 1000000 )) ms (kubectl apply included)"
done

kill "$fake_pid"; wait "$fake_pid" 2>/dev/null || true
total_checks=$(grep -c "check succeeded" "$work/argomap.log" || true)
python3 - "$work/stats.json" "$total_checks" <<'PY'
import json, sys
s, checks = json.load(open(sys.argv[1])), int(sys.argv[2])
print(f"Argo CD requests over the run: {s} for {checks} checks: "
      f"{(s['clusters'] + s['applications']) / checks:.2f} list requests per check, "
      f"{sum(v for v in s.values() if isinstance(v, int)) / checks:.3f} requests of any kind per check")
PY
echo "peak RSS over the whole run (VmHWM): $(hwm_mib $op_pid) MiB; failed checks: $(grep -c 'check failed' "$work/argomap.log" || true)"
$kubectl delete namespace "$ns" --wait=false >/dev/null
