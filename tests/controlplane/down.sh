#!/usr/bin/env bash
# Stops the test control plane started by up.sh: exactly the PIDs recorded in
# target/controlplane/*.pid. Idempotent: does nothing if it is not running.
# The state dir (logs, kubeconfigs) is left for inspection; up.sh recreates it.
set -euo pipefail
# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

if [ ! -d "$cp_state" ]; then
  echo "controlplane: not running (no $cp_state)" >&2
  exit 0
fi
cp_stop_all
rm -f "$cp_state/env"
echo "controlplane: down" >&2
