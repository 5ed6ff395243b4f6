#!/usr/bin/env bash
# Starts a real Kubernetes control plane (etcd + kube-apiserver, no kubelet/scheduler/
# controller-manager) on loopback for the tests, as described in CONTROLPLANE.md.
#
# State goes to target/controlplane/ at the repo root:
#   kubeconfig           admin (group system:masters)
#   kubeconfig-operator  the operator's identity: system:serviceaccount:argomap-system:argomap
#   env                  KEY=value lines: KUBECONFIG, apiserver URL, bin dir, ...
#   *.log, *.pid         process logs and PIDs (down.sh stops exactly those PIDs)
# CRDs in crds/*.yaml at the repo root (or $ARGOMAP_CRDS_DIR) are applied and waited for.
# Idempotent: if the control plane is already up and healthy, it does nothing.
# The binaries come from build.sh (only etcd and kube-apiserver; a no-op when they are cached).
set -euo pipefail
# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
# shellcheck source=versions.env
. "$cp_here/versions.env"

t0=$SECONDS
log() { echo "controlplane: $*" >&2; }

kubeconfig="$cp_state/kubeconfig"
curl_api() { # curl_api URL_PATH TOKEN
  curl -fsS --max-time 5 --cacert "$cp_state/pki/ca.crt" -H "Authorization: Bearer $2" \
    "$(cat "$cp_state/apiserver-url")$1"
}

# Already up and healthy? Then do nothing.
if cp_pid etcd >/dev/null && cp_pid kube-apiserver >/dev/null &&
  [ -s "$cp_state/admin-token" ] && [ -s "$cp_state/apiserver-url" ] && [ -s "$cp_state/env" ] &&
  curl_api /readyz "$(cat "$cp_state/admin-token")" >/dev/null 2>&1; then
  log "already up at $(cat "$cp_state/apiserver-url") (KUBECONFIG=$kubeconfig)"
  exit 0
fi

bin_dir="$("$cp_here/build.sh" etcd kube-apiserver | tail -n1)"
for b in etcd kube-apiserver; do
  [ -x "$bin_dir/$b" ] || { log "missing $bin_dir/$b (run build.sh)"; exit 1; }
done
if [ -x "$bin_dir/kubectl" ]; then kubectl="$bin_dir/kubectl"; else kubectl="${KUBECTL:-kubectl}"; fi
for c in openssl curl "$kubectl"; do
  command -v "$c" >/dev/null || { log "$c is not installed"; exit 1; }
done

# Something half up (or stale): stop what we recorded, then start from scratch.
cp_stop_all
rm -rf "$cp_state"
mkdir -p "$cp_state/pki"
chmod 700 "$cp_state"

started=()
ok=0
on_exit() {
  if [ "$ok" != 1 ] && [ "${#started[@]}" -gt 0 ]; then
    log "start failed; stopping what was started"
    cp_stop_all
    rm -f "$cp_state/env"
  fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# 1. Three free loopback ports, below the ephemeral range so outgoing connections don't take them.
cp_free_ports 3
etcd_port="${ports[0]}" peer_port="${ports[1]}" api_port="${ports[2]}"
etcd_url="http://127.0.0.1:$etcd_port"
peer_url="http://127.0.0.1:$peer_port"
api_url="https://127.0.0.1:$api_port"
echo "$api_url" >"$cp_state/apiserver-url"

# 2. A throw-away CA, a serving cert for 127.0.0.1/localhost, a service-account key pair.
pki="$cp_state/pki"
cat >"$pki/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = argomap-test
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[serving]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
authorityKeyIdentifier = keyid
CNF
{
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -config "$pki/openssl.cnf" \
    -extensions ca -subj "/CN=argomap-test-ca" -keyout "$pki/ca.key" -out "$pki/ca.crt"
  openssl req -new -newkey rsa:2048 -nodes -config "$pki/openssl.cnf" \
    -subj "/CN=kube-apiserver" -keyout "$pki/serving.key" -out "$pki/serving.csr"
  openssl x509 -req -days 3650 -in "$pki/serving.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -extfile "$pki/openssl.cnf" -extensions serving \
    -out "$pki/serving.crt"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key"
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
} >"$pki/openssl.log" 2>&1 || { cat "$pki/openssl.log" >&2; log "openssl failed"; exit 1; }

# 3. Static tokens: an admin, and the operator's own identity (for tests that run it with
#    only the chart's RBAC).
admin_token="$(openssl rand -hex 24)"
operator_token="$(openssl rand -hex 24)"
operator_user="system:serviceaccount:argomap-system:argomap"
echo "$admin_token" >"$cp_state/admin-token"
echo "$operator_token" >"$cp_state/operator-token"
cat >"$cp_state/tokens.csv" <<CSV
$admin_token,admin,admin,"system:masters"
$operator_token,$operator_user,argomap-operator,"system:serviceaccounts,system:serviceaccounts:argomap-system"
CSV

# start NAME ARGS...: run ARGS in a new session (so it outlives this script and gets no
# SIGHUP), logging to NAME.log; the process writes its own PID (exec keeps it) to NAME.pid.
start() {
  local name="$1" i
  shift
  # The exact command line, so restart.sh can bring the process back as it was.
  printf '%s\0' "$@" >"$cp_state/$name.cmd"
  # shellcheck disable=SC2016
  setsid bash -c 'trap "" HUP; echo $$ >"$0"; exec "$@"' "$cp_state/$name.pid" "$@" \
    >"$cp_state/$name.log" 2>&1 </dev/null &
  started+=("$name")
  for ((i = 0; i < 50; i++)); do
    [ -s "$cp_state/$name.pid" ] && return 0
    sleep 0.1
  done
  fail "$name" "did not start"
}

# wait_for NAME SECONDS CHECK...: poll CHECK until it succeeds, failing if NAME dies or time runs out.
wait_for() {
  local name="$1" budget="$2" deadline
  shift 2
  deadline=$((SECONDS + budget))
  until "$@" >/dev/null 2>&1; do
    cp_pid "$name" >/dev/null || fail "$name" "process exited"
    [ "$SECONDS" -lt "$deadline" ] || fail "$name" "not ready after ${budget}s ($*)"
    sleep 0.25
  done
}

# 4. etcd.
start etcd "$bin_dir/etcd" \
  --name default \
  --data-dir "$cp_state/etcd-data" \
  --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
  --listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
  --initial-cluster "default=$peer_url" \
  --unsafe-no-fsync \
  --log-level warn
wait_for etcd 30 curl -fsS --max-time 2 "$etcd_url/health"
log "etcd ready at $etcd_url ($((SECONDS - t0))s)"

# 5. kube-apiserver.
start kube-apiserver "$bin_dir/kube-apiserver" \
  --etcd-servers "$etcd_url" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
  --cert-dir "$cp_state/pki" \
  --tls-cert-file "$pki/serving.crt" --tls-private-key-file "$pki/serving.key" \
  --token-auth-file "$cp_state/tokens.csv" \
  --authorization-mode=RBAC \
  --service-account-issuer="$api_url" \
  --service-account-key-file "$pki/sa.pub" \
  --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range=10.0.0.0/24 \
  --allow-privileged=true \
  --disable-admission-plugins=ServiceAccount \
  --endpoint-reconciler-type=none

# 6. Kubeconfigs and env file; wait for /readyz, then for namespace default.
ca_data="$(base64 -w0 <"$pki/ca.crt")"
write_kubeconfig() { # FILE USER TOKEN
  umask 077
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: argomap-test
  cluster:
    server: $api_url
    certificate-authority-data: $ca_data
users:
- name: $2
  user:
    token: $3
contexts:
- name: argomap-test
  context:
    cluster: argomap-test
    user: $2
current-context: argomap-test
KC
}
write_kubeconfig "$kubeconfig" admin "$admin_token"
write_kubeconfig "$cp_state/kubeconfig-operator" argomap-operator "$operator_token"

wait_for kube-apiserver 90 curl_api /readyz "$admin_token"
log "kube-apiserver ready at $api_url ($((SECONDS - t0))s)"
wait_for kube-apiserver 30 "$kubectl" --kubeconfig "$kubeconfig" get namespace default

# 7. CRDs, if the repo has any (ARGOMAP_CRDS_DIR overrides the folder).
crds_dir="${ARGOMAP_CRDS_DIR:-$cp_root/crds}"
shopt -s nullglob
crds=("$crds_dir"/*.yaml "$crds_dir"/*.yml)
shopt -u nullglob
for f in "${crds[@]}"; do
  "$kubectl" --kubeconfig "$kubeconfig" apply --server-side --force-conflicts -f "$f" >&2 ||
    fail kube-apiserver "applying $f"
  "$kubectl" --kubeconfig "$kubeconfig" wait --for=condition=Established --timeout=60s -f "$f" >&2 ||
    fail kube-apiserver "CRDs in $f not Established"
done

# 8. The ClusterProfile CRD (SIG-Multicluster's Cluster Inventory API), as its Go module ships it:
# argomap reads profiles with --cluster-profiles. `go mod download` takes the module from the
# module proxy once (GOMODCACHE keeps it).
profile_crd="$(cd /tmp && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOWORK=off \
  go mod download -json "sigs.k8s.io/cluster-inventory-api@${CLUSTER_INVENTORY_API_VERSION}" |
  sed -nE 's/^[[:space:]]*"Dir":[[:space:]]*"([^"]+)".*$/\1/p')/config/crd/bases/multicluster.x-k8s.io_clusterprofiles.yaml"
[ -f "$profile_crd" ] || fail kube-apiserver "no ClusterProfile CRD from sigs.k8s.io/cluster-inventory-api@${CLUSTER_INVENTORY_API_VERSION}"
"$kubectl" --kubeconfig "$kubeconfig" apply --server-side --force-conflicts -f "$profile_crd" >&2 ||
  fail kube-apiserver "applying $profile_crd"
"$kubectl" --kubeconfig "$kubeconfig" wait --for=condition=Established --timeout=60s -f "$profile_crd" >&2 ||
  fail kube-apiserver "the ClusterProfile CRD is not Established"

{
  printf 'KUBECONFIG=%q\n' "$kubeconfig"
  printf 'ARGOMAP_TEST_KUBECONFIG=%q\n' "$kubeconfig"
  printf 'ARGOMAP_TEST_KUBECONFIG_OPERATOR=%q\n' "$cp_state/kubeconfig-operator"
  printf 'ARGOMAP_TEST_APISERVER_URL=%q\n' "$api_url"
  printf 'ARGOMAP_TEST_CA_FILE=%q\n' "$pki/ca.crt"
  printf 'ARGOMAP_TEST_ETCD_URL=%q\n' "$etcd_url"
  printf 'ARGOMAP_TEST_OPERATOR_USER=%q\n' "$operator_user"
  printf 'ARGOMAP_TEST_BIN_DIR=%q\n' "$bin_dir"
} >"$cp_state/env"

ok=1
log "up in $((SECONDS - t0))s: $api_url"
log "  export KUBECONFIG=$kubeconfig   (or: set -a; . $cp_state/env; set +a)"
