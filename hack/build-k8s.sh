#!/usr/bin/env bash
# Builds the real control-plane binaries from the pinned Go module in hack/k8s
# into a cache outside the repository, and prints the bin directory.
#
# Idempotent: only missing binaries are built, and a change to hack/k8s/go.mod
# or go.sum (a version bump) invalidates the whole set. One `go build`
# invocation builds every missing binary so that shared packages compile once.
#
# Environment:
#   LLMAGENTS_CACHE          cache root            (default ~/.cache/llmagents)
#   LLMAGENTS_K8S_BIN        bin dir override      (default $LLMAGENTS_CACHE/k8s-<version>/bin)
#   LLMAGENTS_BUILD_KUBECTL  1 = build kubectl even if one is on PATH
#   LLMAGENTS_K8S_NO_BUILD   1 = never build: exit 3 naming what is missing
#   GOCACHE / GOMODCACHE     honoured as usual (keep them outside the repo)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod="$here/k8s"

k8s_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$mod/go.mod")"
cache_root="${LLMAGENTS_CACHE:-$HOME/.cache/llmagents}"
bin="${LLMAGENTS_K8S_BIN:-$cache_root/k8s-$k8s_version/bin}"
mkdir -p "$bin"
# Parallel callers (pytest workers, make -j) wait for one build instead of racing it.
exec 9>"$bin/.lock"
flock 9

# A stamp of the module files: binaries built from other pins are stale.
stamp="$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-16)"
if [[ "$(cat "$bin/.stamp" 2>/dev/null || true)" != "$stamp" ]]; then
  rm -f "$bin"/*
fi

declare -A pkgs=(
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kwok]=sigs.k8s.io/kwok/cmd/kwok
  [etcd]=./cmd/etcd
  [helm]=helm.sh/helm/v3/cmd/helm
)
if [[ "${LLMAGENTS_BUILD_KUBECTL:-0}" == 1 ]] || ! command -v kubectl >/dev/null 2>&1 \
   || [[ -x "$bin/kubectl" ]]; then
  pkgs[kubectl]=k8s.io/kubernetes/cmd/kubectl
fi

missing=()
for name in "${!pkgs[@]}"; do
  [[ -x "$bin/$name" ]] || missing+=("${pkgs[$name]}")
done

[[ -s "$bin/kwok-stages.yaml" ]] || missing_stages=1
if ((${#missing[@]})) || [[ -n "${missing_stages:-}" ]]; then
  if [[ "${LLMAGENTS_K8S_NO_BUILD:-0}" == 1 ]]; then
    echo "build-k8s: not built in $bin: ${missing[*]} ${missing_stages:+kwok-stages.yaml}" >&2
    exit 3
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "build-k8s: the Go toolchain (go) is not on PATH and $bin lacks: ${missing[*]}" >&2
    exit 2
  fi
fi

if ((${#missing[@]})); then
  minor="${k8s_version#v1.}"; minor="${minor%%.*}"
  # Kubernetes stamps its version at link time (hack/lib/version.sh does the
  # same); without it /version says v0.0.0 and chart kubeVersion checks fail.
  vpkg=k8s.io/component-base/version
  ldflags="-s -w -X $vpkg.gitVersion=$k8s_version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor"
  ldflags+=" -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
  # Helm's Makefile stamps its version and the Kubernetes version `helm template` and
  # `helm lint` assume (1.20 otherwise).
  helm_version="$(awk '$1 == "helm.sh/helm/v3" {print $2; exit}' "$mod/go.mod")"
  ldflags+=" -X helm.sh/helm/v3/internal/version.version=$helm_version"
  for p in chartutil lint/rules; do
    ldflags+=" -X helm.sh/helm/v3/pkg/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/$p.k8sVersionMinor=$minor"
  done
  echo "build-k8s: building ${#missing[@]} binaries into $bin (a cold build takes minutes)" >&2
  start=$SECONDS
  # `go build -o DIR/` with several main packages writes one binary per package.
  tmp="$(mktemp -d "$bin/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$mod" && CGO_ENABLED=0 GOFLAGS="-trimpath ${GOFLAGS:-}" \
    go build -ldflags="$ldflags" -o "$tmp/" "${missing[@]}")
  mv "$tmp"/* "$bin/"
  echo "build-k8s: built in $((SECONDS - start)) s" >&2
fi

# kwok alone has no built-in stages (kwokctl adds them). Take the "fast" node and pod
# stages from the kwok module at the pinned version, so they match the binary.
if [[ ! -s "$bin/kwok-stages.yaml" ]]; then
  kwok_dir="$(cd "$mod" && go mod download sigs.k8s.io/kwok && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  stages="$kwok_dir/kustomize/stage"
  for f in node/fast/node-initialize.yaml pod/fast/pod-ready.yaml \
           pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"
    cat "$stages/$f"
  done > "$bin/kwok-stages.yaml.tmp"
  mv "$bin/kwok-stages.yaml.tmp" "$bin/kwok-stages.yaml"
fi
echo "$stamp" > "$bin/.stamp"

echo "$bin"
