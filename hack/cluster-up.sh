#!/usr/bin/env bash
# Starts the local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok with one fake node) on loopback and prints how to use it.
# Idempotent: a running cluster of the same name is left as it is.
#
#   LLMAGENTS_CLUSTER_NAME  cluster name (default "default"); state in
#   LLMAGENTS_CLUSTER_DIR   (default $LLMAGENTS_CACHE/cluster, ~/.cache/llmagents/cluster)/<name>
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
py="$root/.venv/bin/python"
[[ -x "$py" ]] || py=python3
LLMAGENTS_K8S_BIN="$("$here/build-k8s.sh")"
export LLMAGENTS_K8S_BIN
cd "$root"
exec env PYTHONPATH="$root" "$py" -m tooling.cluster up "$@"
