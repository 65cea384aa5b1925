#!/bin/sh
# Installs the storage emulators used by tests/storage_cloud_test.ts and bench/storage.ts,
# pinned, into ${PLANETARY_CACHE:-$HOME/.cache/planetary}. Idempotent: when everything is
# cached it only checks three paths and exits (well under a second).
#
#   moto (S3)              -> $CACHE/moto-$MOTO_VERSION/bin/moto_server      (Python venv, PyPI)
#   azurite (Azure Blob)   -> $CACHE/azurite-$AZURITE_VERSION/node_modules/  (npm; run by node)
#   fake-gcs-server (GCS)  -> $CACHE/fake-gcs-server-$FAKE_GCS_VERSION/fake-gcs-server (Go proxy)
#
# Usage: sh tests/emulators/install.sh [moto|azurite|gcs ...]   (no argument: all three)
set -eu

MOTO_VERSION=5.2.5
AZURITE_VERSION=3.37.0
FAKE_GCS_VERSION=v1.56.1

CACHE="${PLANETARY_CACHE:-$HOME/.cache/planetary}"
mkdir -p "$CACHE"

log() { echo "emulators: $*" >&2; }

install_moto() {
  dir="$CACHE/moto-$MOTO_VERSION"
  # The marker is written last, so an interrupted install is redone.
  if [ -f "$dir/.installed" ]; then return 0; fi
  log "installing moto[server]==$MOTO_VERSION into $dir"
  rm -rf "$dir"
  python3 -m venv "$dir" # in place: a venv records its own path in its scripts
  "$dir/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  touch "$dir/.installed"
}

install_azurite() {
  dir="$CACHE/azurite-$AZURITE_VERSION"
  if [ -f "$dir/.installed" ]; then return 0; fi
  log "installing azurite@$AZURITE_VERSION into $dir"
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  if command -v npm >/dev/null 2>&1; then
    npm install --silent --no-audit --no-fund --prefix "$dir.tmp" "azurite@$AZURITE_VERSION" >&2
  else
    # No node/npm: let Deno fetch the package into its own cache; the harness runs it with
    # `deno run -A npm:azurite@$AZURITE_VERSION/azurite-blob`.
    deno cache "npm:azurite@$AZURITE_VERSION/azurite-blob" >&2
  fi
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  touch "$dir/.installed"
}

install_gcs() {
  dir="$CACHE/fake-gcs-server-$FAKE_GCS_VERSION"
  if [ -f "$dir/.installed" ]; then return 0; fi
  log "building fake-gcs-server@$FAKE_GCS_VERSION into $dir (Go)"
  mkdir -p "$dir"
  GOBIN="$dir" GOFLAGS=-mod=mod CGO_ENABLED=0 \
    go install "github.com/fsouza/fake-gcs-server@$FAKE_GCS_VERSION"
  touch "$dir/.installed"
}

if [ "$#" -eq 0 ]; then set -- moto azurite gcs; fi
for what in "$@"; do
  case "$what" in
    moto) install_moto ;;
    azurite) install_azurite ;;
    gcs) install_gcs ;;
    *) echo "unknown emulator: $what (expected moto, azurite or gcs)" >&2; exit 2 ;;
  esac
done
