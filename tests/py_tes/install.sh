#!/bin/sh
# Installs the pinned py-tes client into a cached virtualenv, outside the repo:
#   ~/.cache/planetary/py-tes-<version>/
# Idempotent: a complete venv (marked by .ok) is reused. Prints the venv's python path.
set -eu
PY_TES_VERSION="${PY_TES_VERSION:-1.1.4}"
CACHE="${PLANETARY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/planetary}"
VENV="$CACHE/py-tes-$PY_TES_VERSION"
if [ ! -f "$VENV/.ok" ]; then
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "py-tes==$PY_TES_VERSION" >&2
  touch "$VENV/.ok"
fi
echo "$VENV/bin/python"
