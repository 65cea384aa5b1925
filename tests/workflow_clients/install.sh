#!/bin/sh
# Installs the pinned workflow clients that tests/snakemake_test.ts and tests/toil_test.ts run
# against `planetary serve`, each into its own cached virtualenv outside the repo:
#   $PLANETARY_CACHE/snakemake-<version>-tes-<version>/   (default ~/.cache/planetary)
#   $PLANETARY_CACHE/toil-<version>-tes-<version>-py-tes-<version>/
# The cache must not be under /tmp: tasks on the host runtime get a private /tmp and run the
# clients' programs from these folders. Idempotent: a complete venv (marked by .ok) is reused.
# Needs python3 (3.11+, with venv) and rsync (Snakemake's fs storage plugin copies with it).
set -eu
SNAKEMAKE_VERSION="9.27.1"
SNAKEMAKE_TES_VERSION="0.1.3"
SNAKEMAKE_FS_VERSION="1.1.3"
TOIL_VERSION="7.0.0"
TOIL_TES_VERSION="2.0.0"
PY_TES_VERSION="1.1.4"
CACHE="${PLANETARY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/planetary}"
case "$CACHE" in
/tmp | /tmp/*) echo "install.sh: PLANETARY_CACHE must not be under /tmp (tasks see a private /tmp)" >&2; exit 1 ;;
esac

venv() { # venv DIR PACKAGE... [-- PIP-ARGS...]: a venv with the pinned PACKAGEs, then PIP-ARGS
  dir=$1
  shift
  [ -f "$dir/.ok" ] && return 0
  rm -rf "$dir"
  mkdir -p "$CACHE"
  python3 -m venv "$dir" >&2
  first=""
  for arg in "$@"; do
    shift
    [ "$arg" = -- ] && break
    first="$first $arg"
  done
  # shellcheck disable=SC2086 # the pinned requirements hold no spaces
  "$dir/bin/pip" install --quiet --disable-pip-version-check $first >&2
  if [ $# -gt 0 ]; then "$dir/bin/pip" install --quiet --disable-pip-version-check "$@" >&2; fi
  touch "$dir/.ok"
}

# snakemake-executor-plugin-tes 0.1.3 pulls py-tes 0.4.2, which imports `six` without
# declaring it. The plugin implies no shared file system, so Snakemake needs a storage plugin:
# `fs` copies (rsync) between the job and a folder both see at the same path.
venv "$CACHE/snakemake-$SNAKEMAKE_VERSION-tes-$SNAKEMAKE_TES_VERSION" \
  "snakemake==$SNAKEMAKE_VERSION" \
  "snakemake-executor-plugin-tes==$SNAKEMAKE_TES_VERSION" \
  "snakemake-storage-plugin-fs==$SNAKEMAKE_FS_VERSION" \
  "six==1.17.0"
# toil-batch-system-tes 2.0.0 requires toil[aws]>=7,<8 and py-tes<1; py-tes 0.4.x knows only
# TES 1.0's service-info and raises on a TES 1.1 one (`id`, `type`, …), so the plugin is installed
# without its dependencies next to py-tes 1.1.4, whose API it uses unchanged.
venv "$CACHE/toil-$TOIL_VERSION-tes-$TOIL_TES_VERSION-py-tes-$PY_TES_VERSION" \
  "toil[aws]==$TOIL_VERSION" \
  "py-tes==$PY_TES_VERSION" \
  -- --no-deps "toil-batch-system-tes==$TOIL_TES_VERSION"
echo "$CACHE/snakemake-$SNAKEMAKE_VERSION-tes-$SNAKEMAKE_TES_VERSION"
echo "$CACHE/toil-$TOIL_VERSION-tes-$TOIL_TES_VERSION-py-tes-$PY_TES_VERSION"
