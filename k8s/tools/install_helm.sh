#!/usr/bin/env bash
# Installs a pinned Helm 3 built from the Go module proxy (no download host needed) into
#   ${PLANETARY_CACHE:-$HOME/.cache/planetary}/helm-<version>/bin/helm
# Idempotent: when that binary exists and reports the pinned version, it returns at once.
#
# Usage:
#   k8s/tools/install_helm.sh              install (no-op when cached); prints the binary path
#   k8s/tools/install_helm.sh --print-bin  print the binary path and exit
#
# Tests find helm through PLANETARY_HELM, then the cache path above, then PATH.
set -euo pipefail

HELM_VERSION="v3.21.4"
CACHE="${PLANETARY_CACHE:-$HOME/.cache/planetary}"
BIN_DIR="${CACHE}/helm-${HELM_VERSION}/bin"
HELM="${BIN_DIR}/helm"

if [ "${1:-}" = "--print-bin" ]; then
  echo "$HELM"
  exit 0
fi

if [ -x "$HELM" ] && "$HELM" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION" &&
  [ -f "${BIN_DIR}/.complete" ]; then
  echo "$HELM"
  exit 0
fi

start=$(date +%s)
echo "==> building helm ${HELM_VERSION} into ${BIN_DIR}" >&2
mkdir -p "$BIN_DIR"
# -ldflags as helm's Makefile sets them: the version `helm version` reports, and the Kubernetes
# version `helm template`/`lint` assume (1.<client-go minor>; a plain `go install` says 1.20)
K8S_MINOR="${HELM_K8S_MINOR:-36}" # helm v3.21.4 requires k8s.io/client-go v0.36.x
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
for pkg in pkg/chartutil pkg/lint/rules; do
  ldflags+=" -X helm.sh/helm/v3/${pkg}.k8sVersionMajor=1 -X helm.sh/helm/v3/${pkg}.k8sVersionMinor=${K8S_MINOR}"
done
GOBIN="$BIN_DIR" GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--trimpath}" \
  go install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
"$HELM" version --short >&2
touch "${BIN_DIR}/.complete"
echo "<== helm ${HELM_VERSION}: $(($(date +%s) - start))s" >&2
echo "$HELM"
