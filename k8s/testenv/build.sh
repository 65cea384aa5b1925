#!/usr/bin/env bash
# Builds the Kubernetes binaries the tests run (kube-apiserver, kube-scheduler,
# kube-controller-manager, etcd, and for the real node kubelet and kubectl) from the Go module
# proxy, once per version, into
#   ${PLANETARY_CACHE:-$HOME/.cache/planetary}/k8s-<version>/bin
# and the node's sandbox image (pause.c of the k8s.io/kubernetes module, `gcc -static`, written
# as a docker-archive tar that `ctr images import` takes) into
#   ${PLANETARY_CACHE:-$HOME/.cache/planetary}/k8s-<version>/images/pause-<tag>.tar
# The versions are the ones locked in the wrapper modules beside this script
# (k8s/testenv/go.mod for Kubernetes, k8s/testenv/etcd/go.mod for etcd).
#
# Usage:
#   k8s/testenv/build.sh                 build (skips binaries that already exist)
#   k8s/testenv/build.sh --print-bin     print the bin directory and exit
#   k8s/testenv/build.sh --print-images  print the image directory and exit
#   k8s/testenv/build.sh --init 1.33.13  regenerate both wrapper modules for another version
#
# Why a wrapper module: k8s.io/kubernetes requires its staging modules at v0.0.0 with replace
# directives, so `go install k8s.io/kubernetes/cmd/...@v1.x` fails. Our module requires
# k8s.io/kubernetes v1.Y.Z and replaces every staging module with its published v0.Y.Z.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export GOFLAGS="${GOFLAGS:--trimpath}"
export CGO_ENABLED=0
export GOTOOLCHAIN=local

now() { date +%s; }
step() { # step <label> <command...>: runs a command and prints how long it took
  local label="$1" start
  shift
  start=$(now)
  echo "==> ${label}" >&2
  "$@"
  echo "<== ${label}: $(($(now) - start))s" >&2
}

init_modules() {
  local version="${1#v}"
  local minor patch mod etcd_version
  minor="$(echo "$version" | cut -d. -f2)"
  patch="$(echo "$version" | cut -d. -f3)"
  cd "$HERE"
  rm -f go.mod go.sum etcd/go.mod etcd/go.sum
  go mod init planetary.local/k8s-testenv
  go mod edit -go=1.24.0 -godebug=default=go1.24
  mod="$(go mod download -json "k8s.io/kubernetes@v${version}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  # every "k8s.io/x => ./staging/src/k8s.io/x" line of the published go.mod
  for m in $(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$mod"); do
    go mod edit -replace "${m}=${m}@v0.${minor}.${patch}"
  done
  go mod edit -require "k8s.io/kubernetes@v${version}"
  go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v${version}" \
    "k8s.io/kubernetes/cmd/kube-scheduler@v${version}" \
    "k8s.io/kubernetes/cmd/kube-controller-manager@v${version}" \
    "k8s.io/kubernetes/cmd/kubelet@v${version}" \
    "k8s.io/kubernetes/cmd/kubectl@v${version}"
  go mod tidy
  etcd_version="$(sed -n 's#^\s*go.etcd.io/etcd/server/v3 \(v[0-9.]*\).*#\1#p' "$mod")"
  cd etcd
  go mod init planetary.local/k8s-testenv/etcd
  go mod edit -go=1.23.0
  go mod edit -require "go.etcd.io/etcd/server/v3@${etcd_version}"
  go get -tool "go.etcd.io/etcd/server/v3@${etcd_version}"
  go mod tidy
  echo "wrapper modules: kubernetes v${version}, etcd ${etcd_version}" >&2
}

module_version() { # module_version <dir> <module>
  (cd "$1" && go list -m -f '{{.Version}}' "$2")
}

if [[ "${1:-}" == "--init" ]]; then
  init_modules "${2:?--init needs a Kubernetes version, e.g. 1.33.13}"
  exit 0
fi

K8S_VERSION="$(sed -n 's#.*[[:space:]]k8s.io/kubernetes \(v[0-9][0-9.]*\).*#\1#p' "$HERE/go.mod" | head -1)"
K8S_VERSION="${K8S_VERSION#v}"
[[ -n "$K8S_VERSION" ]] || { echo "no k8s.io/kubernetes requirement in $HERE/go.mod" >&2; exit 1; }
CACHE="${PLANETARY_CACHE:-$HOME/.cache/planetary}"
BIN="$CACHE/k8s-$K8S_VERSION/bin"
IMAGES="$CACHE/k8s-$K8S_VERSION/images"
# the sandbox image Kubernetes 1.33 expects (kubeadm's default for this minor version)
PAUSE_TAG="3.10"
PAUSE_IMAGE="registry.k8s.io/pause:${PAUSE_TAG}"

if [[ "${1:-}" == "--print-bin" ]]; then
  echo "$BIN"
  exit 0
fi
if [[ "${1:-}" == "--print-images" ]]; then
  echo "$IMAGES"
  exit 0
fi

MINOR="$(echo "$K8S_VERSION" | cut -d. -f2)"
mkdir -p "$BIN" "$IMAGES"
STAGE="$(mktemp -d "$CACHE/k8s-$K8S_VERSION/stage.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
TOTAL_START=$(now)

build_etcd() {
  local etcd_version
  etcd_version="$(module_version "$HERE/etcd" go.etcd.io/etcd/server/v3)"
  echo "etcd ${etcd_version}" >&2
  (cd "$HERE/etcd" && go mod download &&
    go build -ldflags "-s -w" -o "$STAGE/etcd" go.etcd.io/etcd/server/v3)
  mv "$STAGE/etcd" "$BIN/etcd"
}

K8S_LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  K8S_LDFLAGS+=" -X ${pkg}.gitVersion=v${K8S_VERSION} -X ${pkg}.gitMajor=1"
  K8S_LDFLAGS+=" -X ${pkg}.gitMinor=${MINOR} -X ${pkg}.gitTreeState=clean"
done

build_k8s() { # build_k8s <command>
  (cd "$HERE" && go build -ldflags "$K8S_LDFLAGS" -o "$STAGE/$1" "k8s.io/kubernetes/cmd/$1")
  mv "$STAGE/$1" "$BIN/$1"
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }

build_pause() { # the sandbox image: static pause binary in a one-layer docker-archive tar
  local src root layer config digest config_digest
  src="$(cd "$HERE" && go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" |
    sed -n 's/.*"Dir": "\(.*\)".*/\1/p')/build/pause/linux/pause.c"
  root="$STAGE/pause-root"
  mkdir -p "$root"
  # the flags of the module's build/pause/Makefile
  gcc -Os -Wall -Werror -static -DVERSION="v${PAUSE_TAG}-planetary" -o "$root/pause" "$src"
  strip "$root/pause"
  layer="$STAGE/layer.tar"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$root" -cf "$layer" pause
  digest="$(sha256 "$layer")"
  mkdir -p "$STAGE/archive/$digest"
  mv "$layer" "$STAGE/archive/$digest/layer.tar"
  config="$STAGE/config.json"
  printf '%s' '{"architecture":"amd64","os":"linux",' \
    '"config":{"Entrypoint":["/pause"],"User":"65535:65535"},' \
    '"rootfs":{"type":"layers","diff_ids":["sha256:'"$digest"'"]}}' >"$config"
  config_digest="$(sha256 "$config")"
  mv "$config" "$STAGE/archive/$config_digest.json"
  printf '%s' '[{"Config":"'"$config_digest"'.json","RepoTags":["'"$PAUSE_IMAGE"'"],' \
    '"Layers":["'"$digest"'/layer.tar"]}]' >"$STAGE/archive/manifest.json"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$STAGE/archive" \
    -cf "$STAGE/pause.tar" .
  mv "$STAGE/pause.tar" "$IMAGES/pause-${PAUSE_TAG}.tar"
}

echo "kubernetes v${K8S_VERSION} -> ${BIN} ($(go version))" >&2
if [[ ! -x "$BIN/etcd" ]]; then step "build etcd" build_etcd; fi
if [[ ! -x "$BIN/kube-apiserver" || ! -x "$BIN/kubelet" || ! -x "$BIN/kubectl" ]]; then
  step "download kubernetes modules" bash -c "cd '$HERE' && go mod download"
fi
for cmd in kube-apiserver kube-scheduler kube-controller-manager kubelet kubectl; do
  if [[ ! -x "$BIN/$cmd" ]]; then step "build $cmd" build_k8s "$cmd"; fi
done
if [[ ! -f "$IMAGES/pause-${PAUSE_TAG}.tar" ]]; then step "build ${PAUSE_IMAGE}" build_pause; fi
echo "done in $(($(now) - TOTAL_START))s:" >&2
ls -la "$BIN" "$IMAGES" >&2
