#!/usr/bin/env bash
# Installs the tools the cluster suite's metrics and read-API tests run (tests/cluster/metrics.rs,
# tests/cluster/read_api.rs):
#   - Debian package `prometheus`: `promtool` (check metrics) and the `prometheus` server, in
#     /usr/bin. Installed with apt-get (root), `apt-get update` only when it is missing. The
#     package's own service is never left running: service starts are denied while it installs,
#     and one found running afterwards is stopped.
#   - schemathesis (PyPI, pinned below) in a venv:
#       ${ARGOMAP_CACHE:-$HOME/.cache/argomap}/tools/venv/bin/schemathesis
#
# Idempotent and cached: when both are there it does nothing (well under a second). Never
# reads stdin (CI-safe). Concurrent runs are serialised with a lock. Prints where the tools are;
# the tests find them the same way (or through ARGOMAP_TEST_PROMTOOL, ARGOMAP_TEST_PROMETHEUS,
# ARGOMAP_TEST_SCHEMATHESIS).
set -euo pipefail
exec </dev/null

SCHEMATHESIS_VERSION=4.32.5

cache_root="${ARGOMAP_CACHE:-$HOME/.cache/argomap}"
tools="$cache_root/tools"
venv="$tools/venv"
stamp="$venv/.argomap-installed"
want_stamp="schemathesis==$SCHEMATHESIS_VERSION"

log() { echo "tools: $*" >&2; }

prometheus_ok() {
  dpkg-query -W -f='${Status}' prometheus 2>/dev/null | grep -q 'install ok installed' &&
    [ -x /usr/bin/promtool ] && [ -x /usr/bin/prometheus ]
}

venv_ok() {
  [ -x "$venv/bin/schemathesis" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want_stamp" ]
}

report() {
  echo "promtool:     /usr/bin/promtool ($(/usr/bin/promtool --version 2>&1 | head -n1))"
  echo "prometheus:   /usr/bin/prometheus"
  echo "schemathesis: $venv/bin/schemathesis ($SCHEMATHESIS_VERSION)"
}

# Fast path: nothing to do.
if prometheus_ok && venv_ok; then
  report
  exit 0
fi

mkdir -p "$tools"
exec 9>"$tools/.install.lock"
if ! flock -n 9; then
  log "another install holds $tools/.install.lock, waiting..."
  flock 9
fi

if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo -n); fi
export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    "${sudo[@]}" apt-get update -qq
    apt_updated=1
  fi
  log "apt-get install $*"
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >/dev/null
}

# Stops the package's service if its install started one (only that one: the init script's
# pid file, or the systemd unit), and disables it.
stop_prometheus_service() {
  if [ -d /run/systemd/system ] && systemctl is-active --quiet prometheus.service 2>/dev/null; then
    log "stopping and disabling the prometheus.service the package started"
    "${sudo[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
  # Nor enabled for the next boot.
  "${sudo[@]}" update-rc.d prometheus disable >/dev/null 2>&1 || true
  "${sudo[@]}" deb-systemd-helper disable prometheus.service >/dev/null 2>&1 || true
  local pidfile=/run/prometheus/prometheus.pid
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    log "stopping the prometheus service the package started (pid $(cat "$pidfile"))"
    "${sudo[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  fi
}

if ! prometheus_ok; then
  # invoke-rc.d and deb-systemd-invoke ask /usr/sbin/policy-rc.d; exit 101 = "do not start".
  # A policy already there (Docker images have one) is left alone.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# Temporary, from argomap tests/tools/install.sh: no service starts.\nexit 101\n' |
      "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    own_policy=1
    trap '[ "$own_policy" = 1 ] && "${sudo[@]}" rm -f "$policy"' EXIT
  fi
  apt_install prometheus
  if [ "$own_policy" = 1 ]; then
    "${sudo[@]}" rm -f "$policy"
    own_policy=0
  fi
  stop_prometheus_service
  prometheus_ok || { log "prometheus did not install"; exit 1; }
fi

if ! venv_ok; then
  python="${PYTHON:-python3}"
  if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3-venv
  fi
  log "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "schemathesis==$SCHEMATHESIS_VERSION"
  "$venv/bin/schemathesis" --version >/dev/null
  # Written last: an interrupted install is redone next time.
  echo "$want_stamp" >"$stamp"
fi

report
