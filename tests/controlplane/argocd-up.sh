#!/usr/bin/env bash
# Starts a real argocd-server (Argo CD ARGOCD_VERSION from versions.env, or
# $ARGOMAP_ARGOCD_VERSION; built by `build.sh argocd`) with Debian's redis-server, against the
# test control plane started by up.sh (which must already be up). Everything listens on
# 127.0.0.1 only, plain HTTP.
#
# State goes to ${ARGOMAP_ARGOCD_DIR:-<control plane dir>/argocd}/ (the control plane dir is
# ${ARGOMAP_CONTROLPLANE_DIR:-target/controlplane}):
#   env          KEY=value lines: ARGOMAP_TEST_ARGOCD_URL, ports, pids, admin password,
#                an API token for the `argomap` account (role:readonly), ...
#   token        that token; redis.conf, static/ (the UI placeholder), *.log, *.pid
# In namespace argocd it applies the Application, AppProject and ApplicationSet CRDs
# (server-side) and creates argocd-cm, argocd-secret and argocd-rbac-cm.
# Idempotent: if it is already up (same control plane, same version) and healthy, it does nothing.
#
# Optional settings (the real-Argo-CD suite starts one server per test with them):
#   ARGOMAP_ARGOCD_NAMESPACE        its namespace (default argocd): settings, clusters, apps
#   ARGOMAP_ARGOCD_TLS=1            serve HTTPS (no --insecure): plain HTTP then gets 307
#   ARGOMAP_ARGOCD_TLS_CERT/_KEY    PEM files put into Secret argocd-server-tls before start
#   ARGOMAP_ARGOCD_ROOTPATH         --rootpath (the URL in env carries it)
#   ARGOMAP_ARGOCD_APP_NAMESPACES   --application-namespaces
#   ARGOMAP_ARGOCD_POLICY_CSV       argocd-rbac-cm policy.csv (default: g, argomap, role:readonly)
#   ARGOMAP_ARGOCD_PORT             a fixed server port (a restart keeps its URL)
#   ARGOMAP_ARGOCD_SECRET_KEY       server.secretkey to keep (a restart keeps its tokens valid)
# argocd-down.sh stops exactly the recorded PIDs. Run it before down.sh: up.sh wipes this dir
# when it restarts the control plane.
set -euo pipefail
exec </dev/null
# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
# shellcheck source=versions.env
. "$cp_here/versions.env"
# shellcheck source=argocd-version.sh
. "$cp_here/argocd-version.sh"
argocd_select ""

t0=$SECONDS
log() { echo "argocd: $*" >&2; }

cp_dir="$cp_state"
# lib.sh's cp_pid/cp_stop work on $cp_state: point them at our own state dir, so a PID is only
# taken for ours if its command line names this dir.
cp_state="${ARGOMAP_ARGOCD_DIR:-$cp_dir/argocd}"
state="$cp_state"
ns="${ARGOMAP_ARGOCD_NAMESPACE:-argocd}"
account=argomap
tls="${ARGOMAP_ARGOCD_TLS:-0}"
rootpath="${ARGOMAP_ARGOCD_ROOTPATH:-}"
rootpath="${rootpath%/}"
[ -z "$rootpath" ] || [ "${rootpath#/}" != "$rootpath" ] || rootpath="/$rootpath"
policy_csv="${ARGOMAP_ARGOCD_POLICY_CSV-"g, $account, role:readonly"}"

# 0. The control plane must be up.
if [ ! -s "$cp_dir/env" ]; then
  log "the control plane is not up ($cp_dir/env is missing): run tests/controlplane/up.sh first"
  exit 1
fi
set -a
# shellcheck disable=SC1091
. "$cp_dir/env"
set +a
if [ -x "${ARGOMAP_TEST_BIN_DIR:-}/kubectl" ]; then kubectl="$ARGOMAP_TEST_BIN_DIR/kubectl"; else kubectl="${KUBECTL:-kubectl}"; fi
for c in curl openssl ss "$kubectl"; do
  command -v "$c" >/dev/null || { log "$c is not installed"; exit 1; }
done
k() { "$kubectl" --kubeconfig "$KUBECONFIG" "$@"; }
k get --raw /readyz >/dev/null 2>&1 || {
  log "the control plane at ${ARGOMAP_TEST_APISERVER_URL:-?} does not answer /readyz: run tests/controlplane/up.sh"
  exit 1
}

# /healthz is served at the root even with --rootpath; -k: our own loopback server's cert.
healthz() { [ "$(curl -kfsS --max-time 3 "$1/healthz" 2>/dev/null)" = ok ]; }

# Already up against this control plane and healthy? Then do nothing.
if cp_pid redis >/dev/null && cp_pid argocd-server >/dev/null && [ -s "$state/env" ] &&
  [ "$(cat "$state/apiserver-url" 2>/dev/null)" = "$ARGOMAP_TEST_APISERVER_URL" ] &&
  [ "$(cat "$state/version" 2>/dev/null)" = "$argocd_version" ] &&
  healthz "$(cat "$state/origin" 2>/dev/null)"; then
  log "already up at $(cat "$state/url"), $argocd_version (set -a; . $state/env; set +a)"
  exit 0
fi

# 1. Binaries: argocd from build.sh (a no-op when cached, a ~20 min build otherwise), redis
#    from Debian.
argocd_bin="$("$cp_here/build.sh" argocd | tail -n1)"
[ -x "$argocd_bin/argocd" ] && [ -L "$argocd_bin/argocd-server" ] ||
  { log "missing $argocd_bin/argocd-server (run build.sh argocd)"; exit 1; }

redis_ok() { [ -x /usr/bin/redis-server ] && [ -x /usr/bin/redis-cli ]; }
install_redis() {
  local -a sudo
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo -n); fi
  mkdir -p "${ARGOMAP_CACHE:-$HOME/.cache/argomap}/tools"
  exec 7>"${ARGOMAP_CACHE:-$HOME/.cache/argomap}/tools/.install.lock"
  flock 7
  if redis_ok; then exec 7>&-; return 0; fi
  # invoke-rc.d and deb-systemd-invoke ask policy-rc.d; exit 101 = "do not start". A policy
  # already there (Docker images have one) is left alone.
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# Temporary, from argomap tests/controlplane/argocd-up.sh: no service starts.\nexit 101\n' |
      "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    own_policy=1
  fi
  log "installing redis-server from Debian (apt-get update, apt-get install)"
  export DEBIAN_FRONTEND=noninteractive
  local rc=0
  { "${sudo[@]}" apt-get update -qq &&
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold redis-server >/dev/null; } || rc=$?
  if [ "$own_policy" = 1 ]; then "${sudo[@]}" rm -f "$policy"; fi
  [ "$rc" = 0 ] || { log "apt-get failed ($rc)"; exit 1; }
  # Never leave the package's own service running or enabled.
  if [ -d /run/systemd/system ]; then
    "${sudo[@]}" systemctl disable --now redis-server.service >/dev/null 2>&1 || true
  fi
  "${sudo[@]}" update-rc.d redis-server disable >/dev/null 2>&1 || true
  local pidfile=/run/redis/redis-server.pid
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    log "stopping the redis-server service the package started (pid $(cat "$pidfile"))"
    "${sudo[@]}" /etc/init.d/redis-server stop >/dev/null 2>&1 || true
  fi
  exec 7>&-
  redis_ok || { log "redis-server did not install"; exit 1; }
}
redis_ok || install_redis

# The module's source (for manifests/crds), in the Go module cache since the build.
module_dir() {
  (cd "$argocd_module" && GOTOOLCHAIN="$argocd_toolchain" GOFLAGS=-mod=readonly GOWORK=off \
    go list -m -f '{{.Dir}}' github.com/argoproj/argo-cd/v3 2>/dev/null) || true
}
crds_dir="$(module_dir)/manifests/crds"
if [ ! -f "$crds_dir/application-crd.yaml" ]; then
  (cd "$argocd_module" && GOTOOLCHAIN="$argocd_toolchain" GOFLAGS=-mod=readonly GOWORK=off \
    go mod download github.com/argoproj/argo-cd/v3) >&2
  crds_dir="$(module_dir)/manifests/crds"
fi
for f in application appproject applicationset; do
  [ -f "$crds_dir/$f-crd.yaml" ] || { log "missing $crds_dir/$f-crd.yaml"; exit 1; }
done

# Something half up (or stale): stop what we recorded, then start from scratch.
cp_stop argocd-server
cp_stop redis
rm -rf "$state"
mkdir -p "$state/static"
chmod 700 "$state"

started=0
ok=0
on_exit() {
  if [ "$ok" != 1 ] && [ "$started" = 1 ]; then
    log "start failed; stopping what was started"
    cp_stop argocd-server
    cp_stop redis
    rm -f "$state/env"
  fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# 2. Five free loopback ports (redis, server, metrics, and two nobody listens on: the
#    repo-server and dex clients are lazy and only used by calls argomap never makes).
cp_free_ports 5 ${ARGOMAP_ARGOCD_PORT:+"$ARGOMAP_ARGOCD_PORT"}
if [ -n "${ARGOMAP_ARGOCD_PORT:-}" ]; then
  server_port="${ports[0]}" redis_port="${ports[1]}"
else
  redis_port="${ports[0]}" server_port="${ports[1]}"
fi
metrics_port="${ports[2]}" repo_port="${ports[3]}" dex_port="${ports[4]}"
if [ "$tls" = 1 ]; then scheme=https; else scheme=http; fi
origin="$scheme://127.0.0.1:$server_port"
url="$origin$rootpath"

# start NAME ARGS...: run ARGS in a new session (outlives this script, no SIGHUP), logging to
# NAME.log; the process writes its own PID (exec keeps it) to NAME.pid.
start() {
  local name="$1" i
  shift
  # shellcheck disable=SC2016
  setsid bash -c 'trap "" HUP; echo $$ >"$0"; exec "$@"' "$state/$name.pid" "$@" \
    >"$state/$name.log" 2>&1 </dev/null &
  started=1
  for ((i = 0; i < 50; i++)); do
    [ -s "$state/$name.pid" ] && return 0
    sleep 0.1
  done
  fail "$name" "did not start"
}
wait_for() { # wait_for NAME SECONDS CHECK...: poll CHECK; fail if NAME dies or time runs out.
  local name="$1" budget="$2" deadline
  shift 2
  deadline=$((SECONDS + budget))
  until "$@" >/dev/null 2>&1; do
    cp_pid "$name" >/dev/null || fail "$name" "process exited"
    [ "$SECONDS" -lt "$deadline" ] || fail "$name" "not ready after ${budget}s ($*)"
    sleep 0.25
  done
}

# 3. redis: loopback only, no persistence. set-proc-title no keeps the command line (which names
#    this dir's redis.conf, so cp_pid recognises the process).
cat >"$state/redis.conf" <<CONF
bind 127.0.0.1
port $redis_port
protected-mode yes
daemonize no
save ""
appendonly no
dir $state
logfile ""
set-proc-title no
CONF
start redis /usr/bin/redis-server "$state/redis.conf"
redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping)" = PONG ]; }
wait_for redis 30 redis_ping
log "redis ready at 127.0.0.1:$redis_port ($((SECONDS - t0))s)"

# 4. Namespace, CRDs (server-side: client-side apply's annotation would be too big), settings.
k create namespace "$ns" --dry-run=client -o yaml | k apply --server-side -f - >/dev/null
for f in application appproject applicationset; do
  k apply --server-side --force-conflicts -f "$crds_dir/$f-crd.yaml" >/dev/null ||
    fail argocd-server "applying $crds_dir/$f-crd.yaml"
done
# Polled (kubectl wait errors out when it looks before the CRD has any status).
established() {
  local c
  for c in applications appprojects applicationsets; do
    [ "$(k get crd "$c.argoproj.io" -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}')" = True ] ||
      return 1
  done
}
wait_for redis 60 established # (redis: the process that is up at this point)

secret_key="${ARGOMAP_ARGOCD_SECRET_KEY:-$(openssl rand -base64 32)}"
b64() { printf '%s' "$1" | base64 -w0; }
# argocd-cm must carry the part-of label (the server's informer filters on it).
k apply --server-side --force-conflicts --field-manager argomap-test -f - >/dev/null <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: $ns
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
  accounts.$account: apiKey, login
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-rbac-cm
  namespace: $ns
  labels:
    app.kubernetes.io/name: argocd-rbac-cm
    app.kubernetes.io/part-of: argocd
data:
  policy.default: ""
  policy.csv: |
$(printf '%s\n' "$policy_csv" | sed 's/^/    /')
---
apiVersion: v1
kind: Secret
metadata:
  name: argocd-secret
  namespace: $ns
  labels:
    app.kubernetes.io/name: argocd-secret
    app.kubernetes.io/part-of: argocd
type: Opaque
data:
  server.secretkey: $(b64 "$secret_key")
YAML

# The serving certificate, when the caller brings one (read by the server at start).
if [ -n "${ARGOMAP_ARGOCD_TLS_CERT:-}" ]; then
  k -n "$ns" create secret tls argocd-server-tls --cert "$ARGOMAP_ARGOCD_TLS_CERT" \
    --key "$ARGOMAP_ARGOCD_TLS_KEY" --dry-run=client -o yaml |
    k apply --server-side --force-conflicts --field-manager argomap-test -f - >/dev/null
fi

# 5. argocd-server: the multi-call binary run as argocd-server (symlink), plain HTTP on
#    127.0.0.1. ARGOCD_* variables from the caller's environment are dropped (they change
#    defaults, and ARGOCD_SERVER_METRICS_LISTEN_ADDRESS even renames the --metrics-address flag).
echo '<!doctype html><html><head><title>Argo CD</title></head><body>argomap test argocd-server</body></html>' \
  >"$state/static/index.html"
unset_argocd=()
while IFS= read -r v; do unset_argocd+=(-u "$v"); done < <(compgen -e | grep '^ARGOCD_' || true)
server_flags=()
[ "$tls" = 1 ] || server_flags+=(--insecure)
[ -z "$rootpath" ] || server_flags+=(--rootpath "$rootpath")
[ -z "${ARGOMAP_ARGOCD_APP_NAMESPACES:-}" ] || server_flags+=(--application-namespaces "$ARGOMAP_ARGOCD_APP_NAMESPACES")
start argocd-server env ${unset_argocd[@]+"${unset_argocd[@]}"} "$argocd_bin/argocd-server" \
  ${server_flags[@]+"${server_flags[@]}"} \
  --address 127.0.0.1 --port "$server_port" \
  --metrics-address 127.0.0.1 --metrics-port "$metrics_port" \
  --redis "127.0.0.1:$redis_port" \
  --repo-server "127.0.0.1:$repo_port" \
  --dex-server "http://127.0.0.1:$dex_port" \
  --staticassets "$state/static" \
  --namespace "$ns" \
  --kubeconfig "$KUBECONFIG" \
  --logformat text
wait_for argocd-server 120 healthz "$origin"
log "argocd-server ready at $url ($((SECONDS - t0))s)"

# 6. Admin password (the server generates it on first start) and an API token for $account.
admin_password() {
  k -n "$ns" get secret argocd-initial-admin-secret -o jsonpath='{.data.password}' | base64 -d
}
wait_for argocd-server 30 admin_password
password="$(admin_password)"
json_str() { # json_str KEY: the string value of KEY in the JSON object on stdin
  sed -nE "s/.*\"$1\":\"([^\"]*)\".*/\\1/p"
}
post() { # post PATH BODY [BEARER]: the response body; fails (with the body) unless 2xx
  curl -ksS --fail-with-body --max-time 10 -X POST -H 'Content-Type: application/json' \
    ${3:+-H "Authorization: Bearer $3"} --data-binary "$2" "$url$1"
}
resp="$(post /api/v1/session "{\"username\":\"admin\",\"password\":\"$password\"}")" ||
  fail argocd-server "admin login (POST /api/v1/session) failed: $resp"
session="$(json_str token <<<"$resp")"
[ -n "$session" ] || fail argocd-server "admin login (POST /api/v1/session): no token in $resp"
# A fresh token id each start: ids are kept in argocd-secret, which outlives a restart.
token_id="argomap-test-$(date +%s)-$RANDOM"
resp="$(post "/api/v1/account/$account/token" "{\"name\":\"argomap-test\",\"id\":\"$token_id\"}" "$session")" ||
  fail argocd-server "POST /api/v1/account/$account/token failed: $resp"
token="$(json_str token <<<"$resp")"
[ -n "$token" ] || fail argocd-server "POST /api/v1/account/$account/token: no token in $resp"
(umask 077 && printf '%s\n' "$token" >"$state/token")

echo "$url" >"$state/url"
echo "$origin" >"$state/origin"
echo "$ARGOMAP_TEST_APISERVER_URL" >"$state/apiserver-url"
echo "$argocd_version" >"$state/version"
{
  printf 'ARGOMAP_TEST_ARGOCD_URL=%q\n' "$url"
  printf 'ARGOMAP_TEST_ARGOCD_ORIGIN=%q\n' "$origin"
  printf 'ARGOMAP_TEST_ARGOCD_PORT=%q\n' "$server_port"
  printf 'ARGOMAP_TEST_ARGOCD_METRICS_URL=%q\n' "http://127.0.0.1:$metrics_port/metrics"
  printf 'ARGOMAP_TEST_ARGOCD_REDIS=%q\n' "127.0.0.1:$redis_port"
  printf 'ARGOMAP_TEST_ARGOCD_NAMESPACE=%q\n' "$ns"
  printf 'ARGOMAP_TEST_ARGOCD_ADMIN_PASSWORD=%q\n' "$password"
  printf 'ARGOMAP_TEST_ARGOCD_SECRET_KEY=%q\n' "$secret_key"
  printf 'ARGOMAP_TEST_ARGOCD_ACCOUNT=%q\n' "$account"
  printf 'ARGOMAP_TEST_ARGOCD_TOKEN=%q\n' "$token"
  printf 'ARGOMAP_TEST_ARGOCD_TOKEN_ID=%q\n' "$token_id"
  printf 'ARGOMAP_TEST_ARGOCD_VERSION=%q\n' "$argocd_version"
  printf 'ARGOMAP_TEST_ARGOCD_BIN_DIR=%q\n' "$argocd_bin"
  printf 'ARGOMAP_TEST_ARGOCD_DIR=%q\n' "$state"
  printf 'ARGOMAP_TEST_ARGOCD_SERVER_PID=%q\n' "$(cat "$state/argocd-server.pid")"
  printf 'ARGOMAP_TEST_ARGOCD_REDIS_PID=%q\n' "$(cat "$state/redis.pid")"
} >"$state/env.tmp"
mv -f "$state/env.tmp" "$state/env"

ok=1
log "up in $((SECONDS - t0))s: $url, $argocd_version (argocd-server pid $(cat "$state/argocd-server.pid"), redis pid $(cat "$state/redis.pid"))"
log "  set -a; . $state/env; set +a"
