#!/usr/bin/env bash
# Starts a one-node Kubernetes cluster on this machine for the end-to-end tests (tests/e2e/):
# etcd, kube-apiserver (serving pods: node IP on a bridge, lease endpoint reconciler,
# ServiceAccount admission, Node authorization), kube-controller-manager, kube-scheduler,
# containerd (own socket and root), kubelet, kube-proxy and CoreDNS. See README.md here.
#
# State goes to target/node/ (ARGOMAP_NODE_DIR); `env` there has KUBECONFIG and friends.
# Idempotent: if the node is up and Ready, it does nothing. down.sh stops it and removes
# everything it touched on the host.
set -euo pipefail
# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

t0=$SECONDS
kubeconfig="$node_state/kubeconfig"

if cp_pid kubelet >/dev/null && cp_pid kube-apiserver >/dev/null && [ -s "$node_state/env" ] &&
  kubectl --kubeconfig "$kubeconfig" wait --for=condition=Ready node/node1 --timeout=5s >/dev/null 2>&1; then
  node_log "already up (KUBECONFIG=$kubeconfig)"
  exit 0
fi

# 1. Host packages (Debian), then the binaries (built once, cached by version).
bash "$node_here/install-packages.sh"
cp_bin="$(bash "$node_here/../controlplane/build.sh" etcd kube-apiserver helm | tail -n1)"
node_bin="$(bash "$node_here/build.sh" | tail -n1)"

# Something half up or left over: clean it away first.
bash "$node_here/down.sh" >/dev/null 2>&1 || true
rm -rf "$node_state/etcd-data" # a new cluster every time: nothing of an earlier run's objects
mkdir -p "$node_state"/{pki,containerd,cni/net.d,kubelet-root,pod-logs}
chmod 700 "$node_state"
cat /proc/sys/net/ipv4/ip_forward >"$node_state/ip_forward.before"
pki="$node_state/pki"

started=()
ok=0
on_exit() {
  if [ "$ok" != 1 ] && [ "${#started[@]}" -gt 0 ]; then
    node_log "start failed; tearing down"
    for n in "${started[@]}"; do
      [ -f "$node_state/$n.log" ] && { echo "----- $n.log (tail) -----" >&2; tail -n 15 "$node_state/$n.log" >&2; }
    done
    bash "$node_here/down.sh" >&2 || true
  fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

start() {
  local name="$1" i
  shift
  # shellcheck disable=SC2016
  setsid bash -c 'trap "" HUP; echo $$ >"$0"; exec "$@"' "$node_state/$name.pid" "$@" \
    >"$node_state/$name.log" 2>&1 </dev/null &
  started+=("$name")
  for ((i = 0; i < 50; i++)); do
    [ -s "$node_state/$name.pid" ] && return 0
    sleep 0.1
  done
  fail "$name" "did not start"
}
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

# 2. The node IP on a port-less bridge; pods may not leave the machine: anything forwarded
#    from the pod bridge to another link is dropped (pod -> Service -> pod stays on kcni0).
ip link add "$NODE_LINK" type bridge
ip addr add "$NODE_IP/32" dev "$NODE_LINK"
ip link set "$NODE_LINK" up
started+=(links)
iptables -I FORWARD 1 -i "$POD_LINK" ! -o "$POD_LINK" -j DROP

# 3. Free ports: etcd client and peer, apiserver, KCM, scheduler, kubelet healthz,
#    kube-proxy healthz and metrics.
cp_free_ports 8
etcd_url="http://127.0.0.1:${ports[0]}" peer_url="http://127.0.0.1:${ports[1]}"
api_port="${ports[2]}" kcm_port="${ports[3]}" sched_port="${ports[4]}"
kubelet_healthz="${ports[5]}" proxy_healthz="${ports[6]}" proxy_metrics="${ports[7]}"
api_url="https://$NODE_IP:$api_port"

# 4. PKI: a CA; the apiserver's serving cert (node IP, loopback, the kubernetes Service IP and
#    names); the apiserver's client cert for the kubelet; the ServiceAccount key pair.
cat >"$pki/openssl.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = argomap-node
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
[serving]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,IP:$NODE_IP,IP:${SERVICE_CIDR%0/24}1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
CNF
{
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -config "$pki/openssl.cnf" \
    -extensions ca -subj "/CN=argomap-node-ca" -keyout "$pki/ca.key" -out "$pki/ca.crt"
  sign() { # NAME SUBJECT EXTENSIONS
    openssl req -new -newkey rsa:2048 -nodes -config "$pki/openssl.cnf" -subj "$2" \
      -keyout "$pki/$1.key" -out "$pki/$1.csr"
    openssl x509 -req -days 3650 -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
      -set_serial "0x$(openssl rand -hex 8)" -extfile "$pki/openssl.cnf" -extensions "$3" -out "$pki/$1.crt"
  }
  sign serving "/CN=kube-apiserver" serving
  sign kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" client
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key"
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
} >"$pki/openssl.log" 2>&1 || { cat "$pki/openssl.log" >&2; node_log "openssl failed"; exit 1; }

# 5. Static tokens: the built-in RBAC bindings know these user names.
declare -A token
for who in admin kcm scheduler node proxy; do token[$who]="$(openssl rand -hex 24)"; done
cat >"$node_state/tokens.csv" <<CSV
${token[admin]},admin,admin,"system:masters"
${token[kcm]},system:kube-controller-manager,kcm
${token[scheduler]},system:kube-scheduler,scheduler
${token[node]},system:node:node1,node1,"system:nodes"
${token[proxy]},system:kube-proxy,kube-proxy
CSV
ca_data="$(base64 -w0 <"$pki/ca.crt")"
write_kubeconfig() { # FILE USER TOKEN
  (umask 077; cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: node
  cluster: {server: "$api_url", certificate-authority-data: "$ca_data"}
users:
- name: $2
  user: {token: "$3"}
contexts:
- name: node
  context: {cluster: node, user: $2}
current-context: node
KC
  )
}
write_kubeconfig "$kubeconfig" admin "${token[admin]}"
for who in kcm scheduler node proxy; do write_kubeconfig "$node_state/$who.kubeconfig" "$who" "${token[$who]}"; done

# 6. etcd and kube-apiserver (listening on the node IP only: nothing beyond the bridge).
start etcd "$cp_bin/etcd" --name default --data-dir "$node_state/etcd-data" \
  --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
  --listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
  --initial-cluster "default=$peer_url" --unsafe-no-fsync --log-level warn
wait_for etcd 30 curl -fsS --max-time 2 "$etcd_url/health"
start kube-apiserver "$cp_bin/kube-apiserver" --etcd-servers "$etcd_url" \
  --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port="$api_port" \
  --cert-dir "$pki" --tls-cert-file "$pki/serving.crt" --tls-private-key-file "$pki/serving.key" \
  --client-ca-file "$pki/ca.crt" --token-auth-file "$node_state/tokens.csv" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" --allow-privileged=true \
  --kubelet-preferred-address-types=InternalIP,Hostname \
  --kubelet-client-certificate "$pki/kubelet-client.crt" --kubelet-client-key "$pki/kubelet-client.key"
wait_for kube-apiserver 90 kubectl --kubeconfig "$kubeconfig" get --raw /readyz
node_log "kube-apiserver ready at $api_url ($((SECONDS - t0))s)"

# 7. containerd: own socket, root and state; CRI with the pause image built here; no OOM score
#    below its own (this machine's root lacks CAP_SYS_RESOURCE, runc cannot lower it).
c="$node_state/containerd"
cat >"$c/config.toml" <<TOML
version = 2
root = "$c/root"
state = "$c/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$c/containerd.sock"
[ttrpc]
  address = "$c/containerd.sock.ttrpc"
[debug]
  address = "$c/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  enable_selinux = false
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$node_state/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$c/opt"
TOML
cat >"$node_state/cni/net.d/10-bridge.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "nodenet", "plugins": [
  {"type": "bridge", "bridge": "$POD_LINK", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "${POD_CIDR%0/24}1"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$node_state/cni/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
start containerd /usr/bin/containerd --config "$c/config.toml"
wait_for containerd 30 node_ctr version
bash "$node_here/images.sh" node >&2

# 8. kube-controller-manager and kube-scheduler.
start kube-controller-manager "$node_bin/kube-controller-manager" --kubeconfig "$node_state/kcm.kubeconfig" \
  --authentication-kubeconfig "$node_state/kcm.kubeconfig" --authorization-kubeconfig "$node_state/kcm.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$kcm_port" --leader-elect=false \
  --use-service-account-credentials=true \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
  --service-cluster-ip-range "$SERVICE_CIDR"
start kube-scheduler "$node_bin/kube-scheduler" --kubeconfig "$node_state/scheduler.kubeconfig" \
  --authentication-kubeconfig "$node_state/scheduler.kubeconfig" \
  --authorization-kubeconfig "$node_state/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$sched_port" --leader-elect=false

# 9. kubelet (cgroup v1 allowed, cgroupfs: containerd 1.6 cannot report its driver) and
#    kube-proxy (iptables; sysctls left alone).
cat >"$node_state/kubelet-config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$c/containerd.sock
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization:
  mode: Webhook
failSwapOn: false
podLogsDir: $node_state/pod-logs
resolvConf: /etc/resolv.conf
clusterDomain: cluster.local
clusterDNS: ["$DNS_IP"]
registerNode: true
maxPods: 60
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
makeIPTablesUtilChains: false
YAML
start kubelet "$node_bin/kubelet" --config "$node_state/kubelet-config.yaml" \
  --kubeconfig "$node_state/node.kubeconfig" --root-dir "$node_state/kubelet-root" \
  --cert-dir "$node_state/kubelet-root/pki" --hostname-override node1 --node-ip "$NODE_IP" --v=1
cat >"$node_state/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $node_state/proxy.kubeconfig}
hostnameOverride: node1
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:$proxy_healthz
metricsBindAddress: 127.0.0.1:$proxy_metrics
nodePortAddresses: ["$NODE_IP/32"]
iptables: {localhostNodePorts: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
start kube-proxy "$node_bin/kube-proxy" --config "$node_state/kube-proxy.yaml"

k() { kubectl --kubeconfig "$kubeconfig" "$@"; }
wait_for kubelet 90 k wait --for=condition=Ready node/node1 --timeout=5s
wait_for kube-controller-manager 60 k get serviceaccount default -n default
node_log "node Ready ($((SECONDS - t0))s)"

# 10. Cluster DNS (CoreDNS; names outside cluster.local get no answer: nothing leaves here).
sed -e "s#@IMAGE@#$(cat "$node_state/images/coredns.ref")#" -e "s#@DNS_IP@#$DNS_IP#" \
  "$node_here/coredns.yaml" | k apply -f - >&2
wait_for kube-apiserver 90 k -n kube-system rollout status deployment/coredns --timeout=5s

{
  printf 'KUBECONFIG=%q\n' "$kubeconfig"
  printf 'ARGOMAP_NODE_KUBECONFIG=%q\n' "$kubeconfig"
  printf 'ARGOMAP_NODE_HELM=%q\n' "$cp_bin/helm"
  printf 'ARGOMAP_NODE_IMAGES=%q\n' "$node_state/images"
  printf 'ARGOMAP_NODE_STATE=%q\n' "$node_state"
} >"$node_state/env"
ok=1
node_log "up in $((SECONDS - t0))s: $api_url (set -a; . $node_state/env; set +a)"
