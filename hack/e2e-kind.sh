#!/usr/bin/env bash
# End-to-end on a real cluster: kind, the image built from this checkout, the Helm chart,
# and examples/quickstart.yaml worked through to phase Completed.
#
# Needs a Docker engine, kind, kubectl and helm (helm and kubectl are taken from
# hack/build-k8s.sh's bin directory when they are not on PATH). Without a Docker engine or
# kind it prints why and exits 0: this machine class has no Docker.
#
# The quickstart's hosted providers point at loopback fakes that do not exist inside the
# cluster, so the agent falls back to the local ONNX model baked into the image
# (`--target with-model`): the run exercises fallback as well as the operator.
#
# Environment:
#   KIND_CLUSTER   cluster name                      (default llmagents-e2e)
#   KEEP_CLUSTER   1 = leave the cluster running     (default: delete it at the end)
#   IMAGE          image reference to build and load (default ghcr.io/llmagents/llmagents:e2e)
#   TIMEOUT        how long the agent may take       (default 20m)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cluster="${KIND_CLUSTER:-llmagents-e2e}"
image="${IMAGE:-ghcr.io/llmagents/llmagents:e2e}"
timeout="${TIMEOUT:-20m}"
release=llmagents
ns=llmagents-system

skip() {
  echo "e2e-kind: skipped: $*"
  exit 0
}

command -v docker >/dev/null 2>&1 || skip "no Docker engine (docker is not installed)"
docker info >/dev/null 2>&1 || skip "no Docker engine (docker info failed)"
command -v kind >/dev/null 2>&1 || skip "kind is not installed (https://kind.sigs.k8s.io)"

if ! command -v helm >/dev/null 2>&1 || ! command -v kubectl >/dev/null 2>&1; then
  PATH="$("$here/build-k8s.sh"):$PATH"
fi

log() { echo "e2e-kind: $*" >&2; }

dump() {
  log "failed; state of the cluster follows"
  kubectl get llmagents,providerpools -A -o wide || true
  kubectl get pods -A -o wide || true
  kubectl -n "$ns" logs "deployment/$release" --tail=200 || true
  kubectl describe llmagent quickstart || true
  kubectl logs deployment/quickstart --all-containers --tail=200 || true
}

finish() {
  local status=$?
  ((status == 0)) || dump
  if [[ "${KEEP_CLUSTER:-0}" != 1 ]]; then
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  else
    log "cluster $cluster kept (kind delete cluster --name $cluster)"
  fi
}

if ! kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  log "creating kind cluster $cluster"
  kind create cluster --name "$cluster" --wait 180s
fi
trap finish EXIT
kubectl config use-context "kind-$cluster" >/dev/null

log "building $image (with the ONNX model)"
docker build --target with-model -t "$image" "$root"
kind load docker-image "$image" --name "$cluster"

log "installing the chart"
helm upgrade --install "$release" "$root/charts/llmagents" \
  --namespace "$ns" --create-namespace \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" \
  --set image.pullPolicy=Never \
  --wait --timeout 5m
helm test "$release" --namespace "$ns" --timeout 2m

log "applying examples/quickstart.yaml"
kubectl apply -f "$root/examples/quickstart.yaml"
kubectl wait llmagent/quickstart --for=jsonpath='{.status.phase}'=Completed --timeout="$timeout"
kubectl get llmagents -o wide
log "passed"
