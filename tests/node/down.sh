#!/usr/bin/env bash
# Stops the node that up.sh started and removes what it touched on the host: processes (by
# PID file), pods' containers and network namespaces, mounts under the state dir, the links
# knode0/kcni0 and the pods' veths, KUBE-* iptables rules and chains, the FORWARD drop rule,
# the kubepods cgroups, ip_forward. Safe to run when nothing is up.
set -uo pipefail
# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

k() { kubectl --kubeconfig "$node_state/kubeconfig" "$@"; }
node_bin="$(bash "$node_here/build.sh" --print-bin-dir)"

# Pods first, while the kubelet can still tear down their sandboxes (CNI DEL, cgroups).
if cp_pid kubelet >/dev/null && k get --raw /readyz >/dev/null 2>&1; then
  cp_stop kube-controller-manager
  cp_stop kube-scheduler
  k delete pods --all -A --grace-period=1 --wait=true --timeout=60s >/dev/null 2>&1 || true
  for _ in $(seq 60); do [ -z "$(node_ctr tasks ls -q 2>/dev/null)" ] && break; sleep 1; done
fi
cp_stop kubelet
cp_stop kube-proxy
[ -x "$node_bin/kube-proxy" ] && "$node_bin/kube-proxy" --cleanup >/dev/null 2>&1
if cp_pid containerd >/dev/null; then
  for t in $(node_ctr tasks ls -q 2>/dev/null); do node_ctr tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
  for _ in $(seq 20); do [ -z "$(node_ctr tasks ls -q 2>/dev/null)" ] && break; sleep 0.5; done
  for t in $(node_ctr tasks ls -q 2>/dev/null); do node_ctr tasks delete -f "$t" >/dev/null 2>&1; done
  for ctn in $(node_ctr containers ls -q 2>/dev/null); do node_ctr containers delete "$ctn" >/dev/null 2>&1; done
fi
# The apiserver before etcd (else it retries its endpoint lease for ~20 s).
for p in containerd kube-controller-manager kube-scheduler kube-apiserver etcd; do cp_stop "$p"; done
# Leftover shims (containerd-shim-runc-v2 outlives containerd by design).
pkill -f "containerd-shim-runc-v2 .*-address $node_state/" 2>/dev/null
mount | awk -v d="$node_state/" 'index($3, d) == 1 {print $3}' | sort -r | while read -r m; do umount -l "$m"; done
for n in /run/netns/cni-*; do [ -e "$n" ] && { umount "$n" 2>/dev/null; rm -f "$n"; }; done
for l in "$POD_LINK" "$NODE_LINK"; do ip link del "$l" 2>/dev/null; done
for v in $(ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
  ip link show "$v" 2>/dev/null | grep -q "master $POD_LINK" && ip link del "$v"
done
for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
  [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
done
for ipt in iptables ip6tables; do
  command -v "$ipt" >/dev/null || continue
  for t in filter nat mangle; do
    "$ipt" -t "$t" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' | grep -vE '^-A KUBE-' | sed 's/^-A/-D/' |
      while read -r r; do eval "$ipt -t $t $r"; done
    for ch in $("$ipt" -t "$t" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do "$ipt" -t "$t" -F "$ch"; done
    for ch in $("$ipt" -t "$t" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do "$ipt" -t "$t" -X "$ch"; done
  done
done
while iptables -D FORWARD -i "$POD_LINK" ! -o "$POD_LINK" -j DROP 2>/dev/null; do :; done
# The bridge plugin turned forwarding on; a machine that had it off gets it back off.
if [ -f "$node_state/ip_forward.before" ]; then
  cat "$node_state/ip_forward.before" >/proc/sys/net/ipv4/ip_forward
  rm -f "$node_state/ip_forward.before"
fi
rm -rf "$node_state/etcd-data" "$node_state/cni/ipam" "$node_state/kubelet-root" "$node_state/containerd" "$node_state/env"
node_log "down"
exit 0
