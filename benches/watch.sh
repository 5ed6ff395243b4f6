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
# WINDOW seconds and given per hour, with argomap's RSS and the watch's relists and reconnects
# (its metrics) at both ends. Counts, not times: they do not depend on the machine's load. At
# the end both statuses must count every application, and, being the same fleet under the same
# churn schedule, must agree per destination up to the changes made since the poll's last check.
#
# Starts the control plane if needed (make controlplane-up) and leaves it running; everything
# else it starts is stopped at the end. Every wait has a deadline; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
apps="${APPS:-5000}" destinations="${DESTINATIONS:-100}" churn="${CHURN:-50}" window="${WINDOW:-600}"
# HEALTH=1: both instances count their applications by health and sync (spec.applications.health).
# The fakes change HEALTH_CHURN applications' health and sync a minute either way, so the two
# settings are measured against the same Argo CD.
health="${HEALTH:-0}" health_churn="${HEALTH_CHURN:-100}"

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
echo "applications=$apps destinations=$destinations churn=${churn}/min health-churn=${health_churn}/min health=$health window=${window}s interval=60s"

for mode in poll watch; do
  target/release/fake-argocd --seed "$work/seed.json" --url-file "$work/$mode.url" \
    --token-file "$work/$mode.token" --stats-file "$work/$mode.stats.json" \
    --churn-per-minute "$churn" --health-churn-per-minute "$health_churn" >"$work/$mode.fake.log" 2>&1 &
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
  applications: {mode: $([ "$mode" = poll ] && echo Poll || echo Watch), health: $([ "$health" = 1 ] && echo true || echo false)}
  credentials: {secretRef: {name: $mode-token}}
  agentCluster: {id: 0b9f6a1e-2c1d-4e4f-9a4b-1f2e3d4c5b6a, name: Bench, cloudProvider: AWS, type: MANAGED}
---
YAML
done

rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
ARGOMAP_LOG_FORMAT=text target/release/argomap run --namespace "$ns" --http-addr 127.0.0.1:0 \
  --admin-addr 127.0.0.1:0 --deny-url-cidrs= >"$work/argomap.log" 2>&1 &
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

# The fakes rewrite their stats every second: take, for each, the first file written after now.
# Each fake's window runs between its two files' write times (the rename keeps them).
snapshot() { # snapshot NAME: copies poll.stats.json and watch.stats.json to *.NAME.json
  local since m
  since=$(date +%s.%N)
  for mode in poll watch; do
    for _ in $(seq 1 50); do
      m=$(stat -c %.9Y "$work/$mode.stats.json")
      python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)" "$m" "$since" && break
      sleep 0.1
    done
    cp -p "$work/$mode.stats.json" "$work/$mode.$1.json"
    python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)" \
      "$(stat -c %.9Y "$work/$mode.$1.json")" "$since" ||
      { echo "fake-argocd ($mode) stopped writing its stats" >&2; exit 1; }
  done
}
admin="$(grep 'HTTP server listening' "$work/argomap.log" | grep -w 'server=admin' | sed 's/.*addr=\([^ ]*\).*/\1/' | head -1)"
# The watch's relists (every full list it read, the first included) and stream reconnects.
[ -n "$admin" ] || { echo "no admin address in argomap's log" >&2; exit 1; }
metric() { curl -sf --max-time 10 "http://$admin/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {n += $2} END {print n + 0}'; }

# argomap's status writes, as every watcher of the CRD receives them: one line per MODIFIED event.
# (Process substitution, so that "$!" is kubectl's PID and the cleanup stops it.)
$kubectl -n "$ns" get argocdinstances --watch-only --output-watch-events -o json 2>/dev/null \
  > >(python3 -c '
import json, sys
decoder, buf = json.JSONDecoder(), ""
for line in sys.stdin:
    buf += line
    while buf.strip():
        try:
            event, end = decoder.raw_decode(buf.lstrip())
        except ValueError:
            break
        buf = buf.lstrip()[end:]
        obj = event.get("object", {})
        print(event.get("type"), obj.get("metadata", {}).get("name"), len(json.dumps(obj.get("status", {}))), flush=True)
' >>"$work/writes.log") &
pids+=("$!")
snapshot t0
: >"$work/writes.log"
rss0=$(rss_mib $op_pid) relists0=$(metric argomap_stream_relists_total) reconnects0=$(metric argomap_stream_reconnects_total)
# The window is the measurement; the stream must stay open through it.
end=$((SECONDS + window))
while [ $SECONDS -lt "$end" ]; do
  sleep 5
  reason="$(get watch "$stream_reason")"
  [ "$reason" = Streaming ] || echo "note: the watch's stream is $reason at $((window - end + SECONDS)) s" >&2
done
snapshot t1
rss1=$(rss_mib $op_pid) relists1=$(metric argomap_stream_relists_total) reconnects1=$(metric argomap_stream_reconnects_total)

cp "$work/writes.log" "$work/writes.window.log"
python3 - "$work" "$rss0" "$rss1" "$((relists1 - relists0))" "$((reconnects1 - reconnects0))" "$relists1" "$window" <<'PY'
import json, os, sys
work, rss0, rss1, relists, reconnects, relists_all, window = sys.argv[1:]
rows, seconds = {}, {}
for mode in ("poll", "watch"):
    a, b = (json.load(open(f"{work}/{mode}.{t}.json")) for t in ("t0", "t1"))
    seconds[mode] = os.stat(f"{work}/{mode}.t1.json").st_mtime - os.stat(f"{work}/{mode}.t0.json").st_mtime
    hour = 3600 / seconds[mode]
    rows[mode] = {
        ep: ((b[ep] - a[ep]) * hour, (b["bytes"][ep] - a["bytes"][ep]) * hour)
        for ep in ("clusters", "applications", "stream", "version", "session", "userinfo", "canI", "other")
    }
print(f"windows: poll {seconds['poll']:.1f} s, watch {seconds['watch']:.1f} s; per hour (each window's counts × 3600 / its length):")
print("| mode | cluster lists | application lists | streams opened | MiB: clusters | MiB: application lists | MiB: stream | MiB in all | requests in all |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
total = {}
for mode, r in rows.items():
    mib = {ep: v[1] / 2**20 for ep, v in r.items()}
    req = sum(v[0] for v in r.values())
    total[mode] = (sum(mib.values()), req)
    print(f"| {mode} | {r['clusters'][0]:.0f} | {r['applications'][0]:.0f} | {r['stream'][0]:.0f} | "
          f"{mib['clusters']:.2f} | {mib['applications']:.2f} | {mib['stream']:.3f} | {total[mode][0]:.2f} | {req:.0f} |")
other = {m: sum(r[ep][0] for ep in ("version", "session", "userinfo", "canI", "other")) for m, r in rows.items()}
print(f"(requests in all include other endpoints: poll {other['poll']:.0f}/h, watch {other['watch']:.0f}/h)")
print(f"Poll/Watch: {total['poll'][0] / max(total['watch'][0], 1e-9):.2f}x the bytes, "
      f"{total['poll'][1] / max(total['watch'][1], 1e-9):.2f}x the requests")
print(f"watch: {relists} relists and {reconnects} stream reconnects in the window ({relists_all} lists since it started, the first included)")
print(f"argomap RSS: {rss0} MiB at the window's start, {rss1} MiB at its end")
writes = {"poll": [0, 0], "watch": [0, 0]}
for line in open(f"{work}/writes.window.log"):
    kind, name, size = line.split()
    if kind == "MODIFIED" and name in writes:
        writes[name][0] += 1
        writes[name][1] += int(size)
hour = 3600 / float(window)
for mode, (n, size) in writes.items():
    print(f"argomap status writes ({mode}): {n * hour:.0f}/h, {size * hour / 2**20:.2f} MiB of status/h")
PY
[ "$((reconnects1 - reconnects0))" -eq 0 ] || echo "note: the stream reconnected in the window; see argomap_stream_reconnects_total" >&2

# Both statuses must count every application, none unresolved, and agree per destination. Poll's
# status is its last check's list; the watch's follows the stream within a second. Each change
# moves one application, so between the two the per-destination counts differ by at most twice
# the changes made since the poll's check began (its lastCheckedAt, in whole seconds: +2 s). The
# statuses are read just after a poll check, so that bound is a few changes (the watch's status
# may also be up to one publication window, 15 s, behind its stream); a miss is retried on
# the next check (the watch's status write may land late), and a third is a failure.
status_of() { $kubectl -n "$ns" get argocdinstance "$1" -o json; }
checked_of() { get poll '{.status.connection.lastCheckedAt}'; }
agreed=""
for attempt in 1 2 3; do
  before="$(checked_of)" start=$SECONDS
  until [ "$(checked_of)" != "$before" ]; do
    [ $((SECONDS - start)) -lt 120 ] || { echo "the poll instance did not check within 120 s" >&2; exit 1; }
    sleep 0.2
  done
  status_of poll >"$work/poll.status.json"
  status_of watch >"$work/watch.status.json"
  if python3 - "$work" "$apps" "$churn" "$(date +%s.%N)" <<'PY'; then agreed=$attempt; break; fi
import datetime, json, math, sys
work, apps, churn, now = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
st = {m: json.load(open(f"{work}/{m}.status.json"))["status"] for m in ("poll", "watch")}
for m, s in st.items():
    if s["summary"]["applications"] != apps or s["summary"]["unresolvedApplications"] != 0:
        sys.exit(f"{m}: {s['summary']}; want {apps} applications, none unresolved")
checked = datetime.datetime.fromisoformat(st["poll"]["connection"]["lastCheckedAt"].replace("Z", "+00:00")).timestamp()
counts = {m: {c["argocdClusterUrl"]: c["applicationsCount"] for c in s["unlinkedClusters"]} for m, s in st.items()}
urls = set(counts["poll"]) | set(counts["watch"])
apart = sum(abs(counts["poll"].get(u, 0) - counts["watch"].get(u, 0)) for u in urls)
# The watch's status may be a publication window (15 s) behind its stream.
bound = 2 * math.ceil(churn * (now - checked + 2 + 15) / 60)
only = {m: sorted(set(counts[m]) - set(counts[o])) for m, o in (("poll", "watch"), ("watch", "poll"))}
print(f"poll and watch: {len(counts['poll'])} and {len(counts['watch'])} unlinked destinations, "
      f"{len(urls) - len(only['poll']) - len(only['watch'])} in both; per-destination counts {apart} apart in all "
      f"(at most {bound}: {now - checked:.1f} s after the poll's check at {churn}/min)")
sys.exit(0 if apart <= bound else f"only in poll: {only['poll']}, only in watch: {only['watch']}")
PY
done
[ -n "$agreed" ] || { echo "poll and watch disagree on three checks in a row" >&2; exit 1; }
echo "both count $apps applications, none unresolved, and agree per destination (check $agreed)"
$kubectl delete namespace "$ns" --wait=false >/dev/null
