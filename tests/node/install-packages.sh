#!/usr/bin/env bash
# Installs the node's Debian packages once: containerd, runc, the CNI plugins, iptables and
# conntrack (kube-proxy), buildah (builds the images from the Dockerfile), busybox-static
# (the test images' shell). A no-op when they are there.
set -euo pipefail
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v buildah >/dev/null || need+=(buildah)
[ -x /bin/busybox ] || need+=(busybox-static)
[ "${#need[@]}" -eq 0 ] && exit 0
echo "node: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends "${need[@]}" >&2
