#!/usr/bin/env bash
# The Grafana dashboard (charts/argomap/dashboards/*.json) against the dashboard schema of the
# pinned Grafana Foundation SDK (tests/dashboard/validate, built by
# tests/tools/install-dashboard-validate.sh): strict decoding, the schema's constraints and the
# schemaVersion it declares. Then proves the check bites: copies with an unknown panel field, a
# wrong type, another schemaVersion, and an unknown Prometheus query field must each fail.
# Whether every panel's PromQL returns data is tested against a real Prometheus in
# tests/cluster/metrics.rs.
set -euo pipefail
exec </dev/null

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
validate="$(bash "$root/tests/tools/install-dashboard-validate.sh" | tail -n1)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
for f in "$root"/charts/argomap/dashboards/*.json; do
  if out="$("$validate" "$f" 2>&1)"; then
    passed=$((passed + 1)); echo "ok   $out"
  else
    failed=$((failed + 1)); echo "FAIL $out"
  fi
done

# mutate NAME PYTHON-STATEMENT: a broken copy of the dashboard (d is the parsed JSON).
dashboard="$root/charts/argomap/dashboards/argomap.json"
mutate() {
  python3 -c "import json, sys; d = json.load(open(sys.argv[1])); $2; json.dump(d, open(sys.argv[2], 'w'))" \
    "$dashboard" "$work/$1.json"
}
mutate unknown-panel-field 'd["panels"][1]["colour"] = "red"'
mutate wrong-type 'd["panels"][1]["gridPos"]["w"] = "wide"'
mutate other-schema-version 'd["schemaVersion"] = 41'
mutate unknown-query-field 'd["panels"][1]["targets"][0]["promql"] = "up"'
for bad in unknown-panel-field wrong-type other-schema-version unknown-query-field; do
  if out="$("$validate" "$work/$bad.json" 2>&1)"; then
    failed=$((failed + 1)); echo "FAIL a dashboard with $bad was accepted"
  else
    passed=$((passed + 1)); echo "ok   refused ($bad): ${out#"$work/"}"
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
