#!/usr/bin/env bash
# `make demo`: argomap against a real kube-apiserver and two fake Argo CD servers.
#
# From a fresh clone it:
#   1. builds argomap and the fake Argo CD (cargo), and kube-apiserver + etcd if they are not
#      cached yet (Go; see tests/controlplane/README.md);
#   2. starts its own control plane in target/demo/controlplane (never the one `make
#      controlplane-up` or the cluster tests use, so stopping the demo never stops theirs);
#   3. starts two fake Argo CD servers seeded from tests/demo/argocd-{prod,staging}.json;
#   4. applies tests/demo/manifests.yaml (namespace argomap-demo) with the fakes' URLs, and the
#      token and CA Secrets;
#   5. runs `argomap run` (log: target/demo/argomap.log) and waits until both ArgoCdInstances and
#      every ClusterMapping have a status;
#   6. prints `kubectl get argocdinstances,clustermappings -o wide`, then things to try, and
#      runs until Ctrl-C. Then it stops everything it started.
#
# Usage: tests/demo/demo.sh [--once]
#   --once (or DEMO_NONINTERACTIVE=1): exit right after printing the table: 0 when both
#   instances are connected and every mapping has a state, 1 otherwise (for CI).
# Environment: DEMO_WAIT_SECONDS (default 60) bounds the wait for status; RUST_LOG and
# ARGOMAP_HTTP_ADDR and ARGOMAP_ADMIN_ADDR (default 127.0.0.1:0, free ports) are passed to argomap.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
here="$root/tests/demo"
demo_dir="$root/target/demo"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
ns="argomap-demo"
export ARGOMAP_CONTROLPLANE_DIR="$demo_dir/controlplane"

once=0
[ "${DEMO_NONINTERACTIVE:-0}" = 1 ] && once=1
for arg in "$@"; do
  case "$arg" in
    --once) once=1 ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done
wait_budget="${DEMO_WAIT_SECONDS:-60}"

if [ -t 2 ]; then bold=$'\033[1m' red=$'\033[31m' off=$'\033[0m'; else bold='' red='' off=''; fi
t0=$SECONDS
say() { echo "${bold}demo [$((SECONDS - t0))s]: $*${off}" >&2; }
warn() { echo "${red}demo: $*${off}" >&2; }
# show_log FILE: the tail of a log, framed.
show_log() {
  [ -f "$1" ] || return 0
  echo "----- last 30 lines of ${1#"$root"/} -----" >&2
  tail -n 30 "$1" >&2
  echo "-----" >&2
}
die() {
  warn "error: $*"
  exit 1
}

for c in cargo curl openssl sed; do
  command -v "$c" >/dev/null || die "$c is not installed (prerequisites: Rust, Go, curl, openssl)"
done

# Process handling. Every process started here records its PID in target/demo/NAME.pid.
alive() { # PID: running and not a zombie
  local st
  st="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null)" || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}
ours() { # PID: a process of a demo (its command line names the demo's namespace or dir)
  [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qE -- "$ns|$demo_dir/"
}
stop() { # NAME: stop the process in NAME.pid (TERM, KILL after 10 s)
  local f="$demo_dir/$1.pid" pid i
  [ -s "$f" ] || return 0
  pid="$(cat "$f")"
  rm -f "$f"
  if ! alive "$pid" || ! ours "$pid"; then return 0; fi
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    warn "$1 (pid $pid) ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
names=(argomap fake-prod fake-staging)

# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  say "stopping argomap, the fake Argo CD servers and the control plane..."
  for n in "${names[@]}"; do stop "$n"; done
  "$root/tests/controlplane/down.sh" || warn "tests/controlplane/down.sh failed"
  say "stopped (logs: ${demo_dir#"$root"/}/)"
  exit "$rc"
}

mkdir -p "$demo_dir"
# Leftovers of a demo that was killed hard.
for n in "${names[@]}"; do stop "$n"; done

say "building argomap and fake-argocd (cargo build)..."
cargo build --locked --workspace --bin argomap --bin fake-argocd || die "cargo build failed (above)"
argomap="$target_dir/debug/argomap"
fake="$target_dir/debug/fake-argocd"

say "building kube-apiserver and etcd if not cached (tests/controlplane/build.sh)..."
"$root/tests/controlplane/build.sh" kube-apiserver etcd >/dev/null

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting the control plane (tests/controlplane/up.sh)..."
# Always from scratch: a control plane left by a demo that was killed hard holds stale status.
"$root/tests/controlplane/down.sh" 2>/dev/null
"$root/tests/controlplane/up.sh"
kubeconfig="$ARGOMAP_CONTROLPLANE_DIR/kubeconfig"
bin_dir="$(sed -n 's/^ARGOMAP_TEST_BIN_DIR=//p' "$ARGOMAP_CONTROLPLANE_DIR/env")"
if [ -n "$bin_dir" ] && [ -x "$bin_dir/kubectl" ]; then
  kubectl_bin="$bin_dir/kubectl"
else
  kubectl_bin="$(command -v "${KUBECTL:-kubectl}")" || die "kubectl is not installed"
fi
kctl() { "$kubectl_bin" --kubeconfig "$kubeconfig" "$@"; }

# start NAME LOG CMD...: run CMD in the background, logging to LOG, PID in NAME.pid.
start() {
  local name="$1" log="$2"
  shift 2
  "$@" >"$log" 2>&1 </dev/null &
  echo $! >"$demo_dir/$name.pid"
}

# start_fake NAME SEED EXTRA_ARGS...: start a fake and wait for its URL file (10 s).
start_fake() {
  local name="$1" seed="$2" deadline
  shift 2
  rm -f "$demo_dir/$name.url"
  start "fake-$name" "$demo_dir/fake-$name.log" \
    "$fake" --seed "$seed" --url-file "$demo_dir/$name.url" "$@"
  deadline=$((SECONDS + 10))
  until [ -s "$demo_dir/$name.url" ]; do
    if ! alive "$(cat "$demo_dir/fake-$name.pid")"; then
      show_log "$demo_dir/fake-$name.log"
      die "the fake Argo CD '$name' exited"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "the fake Argo CD '$name' wrote no URL within 10s"
    sleep 0.1
  done
}

say "starting two fake Argo CD servers..."
start_fake prod "$here/argocd-prod.json" \
  --token-file "$demo_dir/prod.token" --ca-file "$demo_dir/prod-ca.crt"
start_fake staging "$here/argocd-staging.json"
prod_url="$(cat "$demo_dir/prod.url")"
staging_url="$(cat "$demo_dir/staging.url")"
say "  prod-argocd:    $prod_url   (HTTPS, API token)"
say "  staging-argocd: $staging_url   (HTTP, username/password login)"

say "applying tests/demo/manifests.yaml to namespace $ns..."
apply_secret() { # NAME --from-file=KEY=PATH: create or replace a Secret, opted in for argomap
  kctl -n "$ns" create secret generic "$1" "$2" --dry-run=client -o yaml |
    kctl label --local -f - argomap.io/credentials=true -o yaml | kctl apply -f - >/dev/null
}
# Namespace and Secrets first, so the very first check finds its credentials.
kctl create namespace "$ns" --dry-run=client -o yaml | kctl apply -f - >/dev/null
apply_secret prod-argocd-token --from-file=token="$demo_dir/prod.token"
apply_secret prod-argocd-ca --from-file=ca.crt="$demo_dir/prod-ca.crt"
sed -e "s|@PROD_ARGOCD_URL@|$prod_url|g" -e "s|@STAGING_ARGOCD_URL@|$staging_url|g" \
  "$here/manifests.yaml" | kctl apply -f -
want_instances="$(grep -c '^kind: ArgoCdInstance$' "$here/manifests.yaml")"
want_mappings="$(grep -c '^kind: ClusterMapping$' "$here/manifests.yaml")"

say "starting argomap run (log: ${demo_dir#"$root"/}/argomap.log)..."
start argomap "$demo_dir/argomap.log" \
  env KUBECONFIG="$kubeconfig" RUST_LOG="${RUST_LOG:-info,kube=warn}" NO_COLOR=1 \
  ARGOMAP_HTTP_ADDR="${ARGOMAP_HTTP_ADDR:-127.0.0.1:0}" ARGOMAP_ADMIN_ADDR="${ARGOMAP_ADMIN_ADDR:-127.0.0.1:0}" \
  "$argomap" run --namespace "$ns" --deny-url-cidrs=
argomap_pid="$(cat "$demo_dir/argomap.pid")"

# Status reached: every instance has status.connection.status, every mapping a state that is
# not Pending. Prints what it saw last (for the timeout message).
statuses() {
  kctl -n "$ns" get argocdinstances,clustermappings -o jsonpath='{range .items[*]}{.kind}/{.metadata.name}={.status.connection.status}{.status.state}{"\n"}{end}'
}
status_reached() {
  local seen
  seen="$(statuses 2>/dev/null)" || return 1
  [ "$(grep -cE '^ArgoCdInstance/[^=]+=.+' <<<"$seen")" -ge "$want_instances" ] &&
    [ "$(grep -E '^ClusterMapping/[^=]+=.+' <<<"$seen" | grep -cv '=Pending$')" -ge "$want_mappings" ]
}
say "waiting for status (at most ${wait_budget}s)..."
deadline=$((SECONDS + wait_budget))
until status_reached; do
  if ! alive "$argomap_pid"; then
    show_log "$demo_dir/argomap.log"
    die "argomap exited before writing status"
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    statuses >&2 || true
    show_log "$demo_dir/argomap.log"
    die "no status on every resource after ${wait_budget}s (above: kind/name=status)"
  fi
  sleep 0.25
done
say "every resource has a status"

echo
kctl get argocdinstances,clustermappings -o wide -n "$ns"
echo

problems=0
not_connected="$(statuses | grep -E '^ArgoCdInstance/' | grep -v '=connected$' || true)"
if [ -n "$not_connected" ]; then
  warn "not connected: $(tr '\n' ' ' <<<"$not_connected")(see the REASON column)"
  problems=1
fi
if grep -qE '\bWARN\b' "$demo_dir/argomap.log"; then
  warn "argomap logged warnings:"
  grep -E '\bWARN\b' "$demo_dir/argomap.log" | tail -n 20 >&2
fi
if grep -qE '\bERROR\b' "$demo_dir/argomap.log"; then
  warn "argomap logged errors:"
  grep -E '\bERROR\b' "$demo_dir/argomap.log" | tail -n 20 >&2
  problems=1
fi

if [ "$once" = 1 ]; then
  [ "$problems" = 0 ] || { show_log "$demo_dir/argomap.log"; exit 1; }
  say "ok: both instances connected, every mapping has a state (--once: stopping)"
  exit 0
fi

rel_kubeconfig="${kubeconfig#"$root"/}"
# The operator's admin server (health, metrics) listens on a free port; its log says which.
http_addr="$(sed -n 's/.*HTTP server listening addr=\([0-9.:]*\) server=admin.*/\1/p' "$demo_dir/argomap.log" | tail -n 1)"
metrics_hint=""
[ -z "$http_addr" ] || metrics_hint="
  curl -s http://$http_addr/metrics | grep '^argomap_'    # the operator's metrics
"
cat <<EOF
${bold}The demo is running. In another terminal, from $root:${off}

  export KUBECONFIG=$rel_kubeconfig
  kubectl -n $ns get aci,clm -o wide
  kubectl -n $ns get aci prod-argocd -o yaml                 # the full status: linked, unlinked, orphaned
  kubectl -n $ns get events

  # Ask for a check now (echoed in status.lastHandledRefreshAt):
  kubectl -n $ns annotate aci prod-argocd argomap.io/refresh-requested-at="\$(date -Is)" --overwrite

  # Point the orphaned mapping at the unlinked AKS cluster: Orphaned -> Linked, UNLINKED 2 -> 1:
  kubectl -n $ns patch clm decommissioned-eu-central-1 --type merge \\
    -p '{"spec":{"argocdClusterUrl":"https://aks-data-westeurope-5d2c8e1f.hcp.westeurope.azmk8s.io"}}'

  # Delete the older of the two conflicting mappings: team-payments-prod-eu takes over the URL:
  kubectl -n $ns delete clm prod-eu-west-1

  # Break the token (AuthenticationFailed), then restore it (connected), without a restart:
  kubectl -n $ns patch secret prod-argocd-token -p '{"stringData":{"token":"revoked"}}'
  kubectl -n $ns create secret generic prod-argocd-token --from-file=token=target/demo/prod.token --dry-run=client -o yaml | kubectl label --local -f - argomap.io/credentials=true -o yaml | kubectl apply -f -

  # One check from the command line, as the controller does it (without -f FILE giving the
  # mappings, every destination but in-cluster shows as unlinked):
  target/debug/argomap check --url $prod_url --token-file target/demo/prod.token --ca-file target/demo/prod-ca.crt
$metrics_hint
  tail -f target/demo/argomap.log

${bold}Press Ctrl-C to stop everything.${off}
EOF

# Run until Ctrl-C (the INT trap exits, and the EXIT trap cleans up) or until argomap dies.
while alive "$argomap_pid"; do
  wait "$argomap_pid" 2>/dev/null || true
done
show_log "$demo_dir/argomap.log"
die "argomap exited on its own"
