#!/usr/bin/env bash
# Builds the parts of a real node that are not in the control-plane build: the kubelet
# (from the same k8s.io/kubernetes version as the API server) and the pod sandbox's
# `pause` program. Prints the bin directory.
#
# The kubelet needs go.sum entries that hack/k8s does not carry, and adding them there
# would change the control-plane build's stamp (every engineer's binaries rebuilt). So
# the build works on a copy of the module in the cache with GOFLAGS=-mod=mod; it shares
# GOCACHE with the control-plane build, so only the kubelet's own packages compile.
#
# Environment:
#   LLMAGENTS_CACHE          cache root            (default ~/.cache/llmagents)
#   LLMAGENTS_NODE_BIN       bin dir override      (default $LLMAGENTS_CACHE/k8s-<version>/node-bin)
#   LLMAGENTS_K8S_NO_BUILD   1 = never build: exit 3 naming what is missing
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod="$here/k8s"
k8s_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$mod/go.mod")"
cache_root="${LLMAGENTS_CACHE:-$HOME/.cache/llmagents}"
bin="${LLMAGENTS_NODE_BIN:-$cache_root/k8s-$k8s_version/node-bin}"
mkdir -p "$bin"
exec 9>"$bin/.lock"
flock 9

stamp="$(cat "$mod/go.mod" "$mod/go.sum" "$mod/cmd/pause/main.go" | sha256sum | cut -c1-16)"
if [[ "$(cat "$bin/.stamp" 2>/dev/null || true)" != "$stamp" ]]; then
  rm -f "$bin"/kubelet "$bin"/pause
fi

declare -A pkgs=([kubelet]=k8s.io/kubernetes/cmd/kubelet [pause]=./cmd/pause)
missing=()
for name in "${!pkgs[@]}"; do
  [[ -x "$bin/$name" ]] || missing+=("${pkgs[$name]}")
done

if ((${#missing[@]})); then
  if [[ "${LLMAGENTS_K8S_NO_BUILD:-0}" == 1 ]]; then
    echo "build-node: not built in $bin: ${missing[*]}" >&2
    exit 3
  fi
  command -v go >/dev/null 2>&1 || { echo "build-node: the Go toolchain (go) is not on PATH" >&2; exit 2; }
  minor="${k8s_version#v1.}"; minor="${minor%%.*}"
  vpkg=k8s.io/component-base/version
  ldflags="-s -w -X $vpkg.gitVersion=$k8s_version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor"
  ldflags+=" -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
  src="$bin/.src"
  rm -rf "$src"
  mkdir -p "$src"
  cp -r "$mod"/. "$src"/
  echo "build-node: building ${missing[*]} into $bin (about 10 minutes the first time)" >&2
  start=$SECONDS
  tmp="$(mktemp -d "$bin/.build.XXXXXX")"
  trap 'rm -rf "$tmp" "$src"' EXIT
  # Low priority: this runs beside other builds and tests on shared machines.
  (cd "$src" && CGO_ENABLED=0 GOFLAGS="-trimpath -mod=mod ${GOFLAGS:-}" \
    nice -n 10 go build -ldflags="$ldflags" -o "$tmp/" "${missing[@]}")
  mv "$tmp"/* "$bin/"
  echo "build-node: built in $((SECONDS - start)) s" >&2
fi
echo "$stamp" > "$bin/.stamp"
echo "$bin"
