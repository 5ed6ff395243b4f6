# Shared by the node profile's scripts (sourced, not run).
# shellcheck shell=bash

node_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
node_root="$(git -C "$node_here" rev-parse --show-toplevel 2>/dev/null || (cd "$node_here/../.." && pwd))"
# State: PKI, kubeconfigs, logs, PIDs, containerd's root, the kubelet's root. One node per
# machine (iptables, cgroups, /run/netns are host-global), so one state dir.
node_state="${ARGOMAP_NODE_DIR:-$node_root/target/node}"
node_cache="${ARGOMAP_CACHE:-$HOME/.cache/argomap}/node"

# The node's fixed addresses: a port-less bridge carries the node IP (this kernel has no dummy
# links), pods get 10.244.0.0/24 on the CNI bridge, Services 10.0.0.0/24.
NODE_IP=10.250.0.1
NODE_LINK=knode0
POD_LINK=kcni0
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.0.0.0/24
DNS_IP=10.0.0.10
KUBELET_PORT="${ARGOMAP_NODE_KUBELET_PORT:-10250}"

# The control plane's helpers (process start/stop by PID file, free ports), on our state dir.
cp_state="$node_state"
# shellcheck source=../controlplane/lib.sh
. "$node_here/../controlplane/lib.sh"
cp_state="$node_state"

node_log() { echo "node: $*" >&2; }

# ctr against our own containerd (the system one, if any, is never used).
node_ctr() { ctr -a "$node_state/containerd/containerd.sock" -n k8s.io "$@"; }
log() { node_log "$@"; }
