#!/usr/bin/env bash
# Stops the argocd-server and redis started by argocd-up.sh: exactly the PIDs recorded in
# ${ARGOMAP_ARGOCD_DIR:-<control plane dir>/argocd}/*.pid (TERM, KILL after 15 s).
# Idempotent: does nothing if they are not running. Logs are left for inspection; the objects
# in namespace argocd stay in the control plane (down.sh discards them with it).
set -euo pipefail
exec </dev/null
# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

# Without ARGOMAP_ARGOCD_DIR, also the servers the real-Argo-CD suite started per test (under
# <control plane dir>/argocd-per-test/), should a killed test run have left any.
if [ -z "${ARGOMAP_ARGOCD_DIR:-}" ] && [ -d "$cp_state/argocd-per-test" ]; then
  for d in "$cp_state"/argocd-per-test/*/; do
    [ -d "$d" ] && ARGOMAP_ARGOCD_DIR="${d%/}" bash "${BASH_SOURCE[0]}" >/dev/null 2>&1 || true
  done
fi

# lib.sh's helpers work on $cp_state: point them at argocd-up.sh's state dir.
cp_state="${ARGOMAP_ARGOCD_DIR:-$cp_state/argocd}"

if [ ! -d "$cp_state" ]; then
  echo "argocd: not running (no $cp_state)" >&2
  exit 0
fi
cp_stop argocd-server
cp_stop redis
rm -f "$cp_state/env"
echo "argocd: down" >&2
