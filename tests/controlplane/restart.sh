#!/usr/bin/env bash
# Stops, or starts again, one process of a control plane started by up.sh, with the very
# command line up.sh gave it (same ports, same data dir, same certificates): the fault matrix
# takes kube-apiserver or etcd away with it and brings it back.
#
#   restart.sh stop NAME       NAME: kube-apiserver or etcd
#   restart.sh start NAME      returns once kube-apiserver answers /readyz again (<= 60 s)
#
# Works on the control plane of ARGOMAP_CONTROLPLANE_DIR (default target/controlplane).
set -euo pipefail
# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
log() { echo "controlplane: $*" >&2; }

action="${1:-}" name="${2:-}"
case "$name" in etcd | kube-apiserver) ;; *) log "usage: $0 stop|start etcd|kube-apiserver"; exit 2 ;; esac
[ -s "$cp_state/$name.cmd" ] || { log "no $cp_state/$name.cmd: not started by up.sh"; exit 1; }

case "$action" in
  stop) cp_stop "$name" ;;
  start)
    if ! cp_pid "$name" >/dev/null; then
      mapfile -d '' cmd <"$cp_state/$name.cmd"
      # shellcheck disable=SC2016
      setsid bash -c 'trap "" HUP; echo $$ >"$0"; exec "$@"' "$cp_state/$name.pid" "${cmd[@]}" \
        >>"$cp_state/$name.log" 2>&1 </dev/null &
    fi
    token="$(cat "$cp_state/admin-token")"
    url="$(cat "$cp_state/apiserver-url")"
    for _ in $(seq 1 240); do
      if curl -fsS --max-time 2 --cacert "$cp_state/pki/ca.crt" -H "Authorization: Bearer $token" \
        "$url/readyz" >/dev/null 2>&1; then
        log "$name is back; $url is ready"
        exit 0
      fi
      sleep 0.25
    done
    fail "$name" "the API server was not ready 60 s after starting $name again"
    ;;
  *) log "usage: $0 stop|start etcd|kube-apiserver"; exit 2 ;;
esac
