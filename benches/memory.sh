#!/usr/bin/env bash
# Peak memory of one check (`argomap check`, release build) against the fake Argo CD serving a
# generated fleet: the figures of BENCHMARKS.md's "Memory per check" table.
#
#   bash benches/memory.sh [APPS] [CLUSTERS]     (default 800000 apps over 2000 clusters: a
#   119 MB projected list, under the default 128 MiB cap)
#
# Prints the body size of the projected application list and argomap's peak RSS
# (/usr/bin/time -v) over three runs; argomap asks for gzip, as it always does.
set -euo pipefail
cd "$(dirname "$0")/.."
apps="${1:-800000}"
clusters="${2:-2000}"
work="$(mktemp -d)"
pid=""
cleanup() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT

cargo build --release --locked --quiet --workspace --bins
python3 - "$apps" "$clusters" >"$work/seed.json" <<'PY'
import json, sys
apps, clusters = int(sys.argv[1]), int(sys.argv[2])
seed = {
    "version": "v3.6.1", "account": "argomap",
    "clusters": [{"server": f"https://c{i:05d}.k8s.example.com:6443", "name": f"cluster-{i:05d}"} for i in range(clusters)],
    "applications": [{"name": f"app-{i:07d}", "destServer": f"https://c{i % clusters:05d}.k8s.example.com:6443",
                      "destNamespace": "apps"} for i in range(apps)],
}
json.dump(seed, sys.stdout)
PY
target/release/fake-argocd --seed "$work/seed.json" --url-file "$work/url" --token-file "$work/token" >"$work/fake.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do [ -s "$work/url" ] && break; sleep 0.1; done
[ -s "$work/url" ] || { echo "fake-argocd did not start" >&2; cat "$work/fake.log" >&2; exit 1; }
url="$(cat "$work/url")"
fields="items.metadata.name,items.metadata.namespace,items.spec.destination"
bytes="$(curl -sf -H "Authorization: Bearer $(cat "$work/token")" "$url/api/v1/applications?fields=$fields" | wc -c)"
gz="$(curl -sf --compressed -H "Authorization: Bearer $(cat "$work/token")" -o /dev/null -w '%{size_download}' "$url/api/v1/applications?fields=$fields")"
echo "applications: $apps over $clusters clusters; projected list: $bytes bytes ($gz bytes as gzip)"
for run in 1 2 3; do
  /usr/bin/time -v target/release/argomap check --url "$url" --token-file "$work/token" --timeout 5m -o json \
    >"$work/out.json" 2>"$work/time.txt" || { cat "$work/time.txt" >&2; exit 1; }
  rss="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")"
  wall="$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")"
  cpu="$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u+s}' "$work/time.txt")"
  counted="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"]["summary"]["applications"])' "$work/out.json")"
  echo "run $run: peak RSS $((rss / 1024)) MiB, CPU ${cpu} s, wall $wall, applications counted $counted"
done
