#!/bin/sh
# Installs the pinned Schemathesis (an OpenAPI fuzzer) into a cached virtualenv, outside the repo:
#   ~/.cache/planetary/schemathesis-<version>/
# Idempotent: a complete venv (marked by .ok) is reused. Prints the path of its `st` command.
set -eu
SCHEMATHESIS_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
CACHE="${PLANETARY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/planetary}"
VENV="$CACHE/schemathesis-$SCHEMATHESIS_VERSION"
if [ ! -f "$VENV/.ok" ]; then
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" >&2
  touch "$VENV/.ok"
fi
echo "$VENV/bin/st"
