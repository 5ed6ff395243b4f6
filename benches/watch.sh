#!/usr/bin/env bash
# What Argo CD serves to argomap in Poll and in Watch mode: BENCHMARKS.md's "Poll and Watch".
#
#   bash benches/watch.sh            (make bench-watch; WINDOW=600 by default)
#
# One `argomap run` (release build) on the test control plane, and two fake Argo CDs serving the
# same generated fleet (APPS applications, default 5 000, over DESTINATIONS clusters, 100), each
# moving CHURN applications a minute to another destination (50: 1% a minute). Instance `poll`
# (spec.applications.mode Poll) checks the first, `watch` (Watch) the second, both every 60 s.
# Once both are connected and the watch is streaming, the fakes' own counts (requests and bytes
# on the wire per endpoint, from --stats-file) are read at the start and end of a window of
# WINDOW seconds and given per hour, with argomap's RSS at both ends. Counts, not times: they
# do not depend on the machine's load. At the end both statuses must count every application,
# and their unlinked destinations (the same fleet, the same churn schedule) must agree.
#
# Starts the control plane if needed (make controlplane-up) and leaves it running; everything
# else it starts is stopped at the end. Every wait has a deadline; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
apps="${APPS:-5000}" destinations="${DESTINATIONS:-100}" churn="${CHURN:-50}" window="${WINDOW:-600}"

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
echo "applications=$apps destinations=$destinations churn=${churn}/min window=${window}s interval=60s"

for mode in poll watch; do
  target/release/fake-argocd --seed "$work/seed.json" --url-file "$work/$mode.url" \
    --token-file "$work/$mode.token" --stats-file "$work/$mode.stats.json" \
    --churn-per-minute "$churn" >"$work/$mode.fake.log" 2>&1 &
  pids+=("$!")
done
for mode in poll watch; do
  for _ in $(seq 1 600); do [ -s "$work/$mode.url" ] && break; sleep 0.1; done
  [ -s "$work/$mode.url" ] || { echo "fake-argocd ($mode) did not start" >&2; cat "$work/$mode.fake.log" >&2; exit 1; }
done

ns="bench-watch-$(printf '%06x' $((RANDOM * RANDOM % 16777216)))"
$kubectl create namespace "$ns" >/dev/null
for mode in poll watch; do
  $kubectl -n "$ns" create secret generic "$mode-token" --from-file=token="$work/$mode.token" >/dev/null
  $kubectl -n "$ns" label secret "$mode-token" argomap.io/credentials=true >/dev/null
  cat <<YAML >>"$work/objects.yaml"
apiVersion: argomap.io/v1alpha1
kind: ArgoCdInstance
metadata: {name: $mode, namespace: $ns}
spec:
  url: $(cat "$work/$mode.url")
  interval: 60s
  timeout: 30s
  applications: {mode: $([ "$mode" = poll ] && echo Poll || echo Watch)}
  credentials: {secretRef: {name: $mode-token}}
  agentCluster: {id: 0b9f6a1e-2c1d-4e4f-9a4b-1f2e3d4c5b6a, name: Bench, cloudProvider: AWS, type: MANAGED}
---
YAML
done

rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
ARGOMAP_LOG_FORMAT=text target/release/argomap run --namespace "$ns" --http-addr 127.0.0.1:0 \
  --admin-addr 127.0.0.1:0 >"$work/argomap.log" 2>&1 &
op_pid=$!
pids+=("$op_pid")
$kubectl apply --server-side -f "$work/objects.yaml" >/dev/null

get() { $kubectl -n "$ns" get argocdinstance "$1" -o jsonpath="$2"; }
stream_reason='{.status.conditions[?(@.type=="ApplicationStream")].reason}'
start=$SECONDS
until [ "$(get poll '{.status.connection.status}')" = connected ] &&
  [ "$(get watch '{.status.connection.status}')" = connected ] &&
  [ "$(get watch "$stream_reason")" = Streaming ]; do
  [ $((SECONDS - start)) -lt 180 ] || { echo "not connected and streaming within 180 s" >&2; tail "$work/argomap.log" >&2; exit 1; }
  sleep 1
done
echo "both connected, watch streaming, after $((SECONDS - start)) s"

cp "$work/poll.stats.json" "$work/poll.t0.json"
cp "$work/watch.stats.json" "$work/watch.t0.json"
t0=$(date +%s.%N) rss0=$(rss_mib $op_pid)
# The window is the measurement; the stream must stay open through it.
end=$((SECONDS + window))
while [ $SECONDS -lt "$end" ]; do
  sleep 5
  reason="$(get watch "$stream_reason")"
  [ "$reason" = Streaming ] || echo "note: the watch's stream is $reason at $((window - end + SECONDS)) s" >&2
done
t1=$(date +%s.%N) rss1=$(rss_mib $op_pid)
# The fakes rewrite their stats every second: wait for a file newer than the window's end.
for mode in poll watch; do
  for _ in $(seq 1 50); do
    [ "$(stat -c %Y "$work/$mode.stats.json")" -gt "${t1%.*}" ] && break
    sleep 0.1
  done
  cp "$work/$mode.stats.json" "$work/$mode.t1.json"
done
admin="$(grep 'HTTP server listening' "$work/argomap.log" | grep -w 'server=admin' | sed 's/.*addr=\([^ ]*\).*/\1/' | head -1)"
relists=$(curl -sf "http://$admin/metrics" | awk '$1 ~ /^argomap_stream_relists_total/ {print $2}')

python3 - "$work" "$t0" "$t1" "$rss0" "$rss1" "${relists:-?}" <<'PY'
import json, sys
work, t0, t1, rss0, rss1, relists = sys.argv[1:]
hour = 3600 / (float(t1) - float(t0))
rows = {}
for mode in ("poll", "watch"):
    a, b = (json.load(open(f"{work}/{mode}.{t}.json")) for t in ("t0", "t1"))
    rows[mode] = {
        ep: ((b[ep] - a[ep]) * hour, (b["bytes"][ep] - a["bytes"][ep]) * hour)
        for ep in ("clusters", "applications", "stream", "version", "canI")
    }
print(f"window {float(t1) - float(t0):.0f} s; per hour (the window's counts × {hour:.2f}):")
print("| mode | cluster lists | application lists | streams opened | MiB: clusters | MiB: application lists | MiB: stream | MiB in all | requests in all |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
total = {}
for mode, r in rows.items():
    mib = {ep: v[1] / 2**20 for ep, v in r.items()}
    req = sum(v[0] for v in r.values())
    total[mode] = (sum(mib.values()), req)
    print(f"| {mode} | {r['clusters'][0]:.0f} | {r['applications'][0]:.0f} | {r['stream'][0]:.0f} | "
          f"{mib['clusters']:.2f} | {mib['applications']:.2f} | {mib['stream']:.3f} | {total[mode][0]:.2f} | {req:.0f} |")
print(f"Poll/Watch: {total['poll'][0] / max(total['watch'][0], 1e-9):.1f}x the bytes, "
      f"{total['poll'][1] / max(total['watch'][1], 1e-9):.1f}x the requests")
print(f"argomap RSS: {rss0} MiB at the window's start, {rss1} MiB at its end; watch relists so far: {relists}")
PY

# Both statuses count every application and name the same unlinked destinations. (Counts per
# destination are not compared: with a change every 1.2 s, a poll's status is always some
# changes behind the watch's.)
apps_of() { get "$1" '{.status.summary.applications}'; }
unlinked_of() { get "$1" '{range .status.unlinkedClusters[*]}{.argocdClusterUrl}{"\n"}{end}' | sort; }
[ "$(apps_of poll)" = "$apps" ] && [ "$(apps_of watch)" = "$apps" ] ||
  { echo "applications counted: poll $(apps_of poll), watch $(apps_of watch); want $apps" >&2; exit 1; }
start=$SECONDS
until [ "$(unlinked_of poll)" = "$(unlinked_of watch)" ]; do
  [ $((SECONDS - start)) -lt 120 ] || { echo "poll and watch disagree on the unlinked destinations" >&2; diff <(unlinked_of poll) <(unlinked_of watch) >&2; exit 1; }
  sleep 1
done
echo "both count $apps applications and name the same $(unlinked_of poll | grep -c . || true) unlinked destinations"
$kubectl delete namespace "$ns" --wait=false >/dev/null
