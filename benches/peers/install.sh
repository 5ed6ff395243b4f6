#!/usr/bin/env bash
# Installs the Python peer's pinned requirements into a cached venv (once per requirements
# file content); prints the venv's python on the last line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="${ARGOMAP_CACHE:-$HOME/.cache/argomap}/bench-peer"
stamp="$(sha256sum "$here/requirements.txt" | cut -c1-16)"
venv="$root/venv-$stamp"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  mkdir -p "$root"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
