# Shared by up.sh, down.sh, argocd-up.sh and argocd-down.sh (sourced, not run).
# shellcheck shell=bash

cp_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cp_root="$(git -C "$cp_here" rev-parse --show-toplevel 2>/dev/null || (cd "$cp_here/../.." && pwd))"
cp_state="${ARGOMAP_CONTROLPLANE_DIR:-$cp_root/target/controlplane}"

# cp_pid NAME: the PID recorded for NAME if that process is still running and is ours
# (its command line names our state dir, so a recycled PID is never mistaken for it).
cp_pid() {
  local f="$cp_state/$1.pid" pid
  [ -s "$f" ] || return 1
  pid="$(cat "$f")"
  case "$pid" in '' | *[!0-9]*) return 1 ;; esac
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$cp_state/" || return 1
  echo "$pid"
}

# cp_alive PID: the process exists and is not a zombie.
cp_alive() {
  local st
  st="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null)" || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

# cp_stop NAME: stop the process recorded in NAME.pid (TERM, then KILL after 15 s) and
# remove the pid file. Does nothing if it is not running.
cp_stop() {
  local name="$1" pid i
  if pid="$(cp_pid "$name")"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
      cp_alive "$pid" || break
      sleep 0.1
    done
    if cp_alive "$pid"; then
      echo "controlplane: $name (pid $pid) did not stop after SIGTERM, sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do cp_alive "$pid" || break; sleep 0.1; done
    fi
    echo "controlplane: stopped $name (pid $pid)" >&2
  fi
  rm -f "$cp_state/$name.pid"
}

cp_stop_all() {
  cp_stop kube-apiserver
  cp_stop etcd
}

# fail NAME MESSAGE: report that process NAME failed, with the tail of its log in $cp_state
# (the caller's `log` prints the report), and exit.
fail() {
  log "$1 failed: $2"
  if [ -f "$cp_state/$1.log" ]; then
    echo "----- last 40 lines of $cp_state/$1.log -----" >&2
    tail -n 40 "$cp_state/$1.log" >&2
    echo "-----" >&2
  fi
  exit 1
}

# cp_free_ports N [PORT...]: sets the array `ports` to the given PORTs, then free loopback ports
# (none listening, below the ephemeral range so outgoing connections don't take them) up to N.
cp_free_ports() {
  local n="$1" p used
  shift
  used="$(ss -Htan 2>/dev/null | awk '{print $4}' | sed -E 's/.*:([0-9]+)$/\1/' | sort -u || true)"
  ports=("$@")
  while [ "${#ports[@]}" -lt "$n" ]; do
    p=$((20000 + RANDOM % 12000))
    if ! grep -qx "$p" <<<"$used" && ! printf '%s\n' "${ports[@]}" | grep -qx "$p"; then
      ports+=("$p")
    fi
  done
}
