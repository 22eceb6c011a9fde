#!/usr/bin/env bash
# End-to-end on a real node (`make e2e`): the image built from this checkout, run as
# containers by containerd and a real kubelet joined to the local control plane, in a
# network and mount namespace of this run's own. See docs/e2e.md.
#
#   1. a Docker engine (hack/docker-engine.sh: started, and installed on Debian, when none
#      answers) builds both images users get (make image, make image-with-model) and the
#      gateway agent's image (tests/e2e/agent);
#   2. the control plane, the kubelet and pause (hack/build-k8s.sh, hack/build-node.sh;
#      cached in $LLMAGENTS_CACHE, default ~/.cache/llmagents);
#   3. pytest tests/e2e under `unshare --net --mount`: the tests start the control plane,
#      containerd, the kubelet and fake providers there, and stop them at the end.
#
# Whatever this run started it stops, failure included: the dockerd it started (unless
# another build or run still uses it), the node's processes and cgroups (also after a
# killed pytest), and the namespaces, with every mount in them, vanish with their last
# process.
#
# Without root, a container engine (none running, and none to install or start), containerd,
# runc or the CNI plugins it prints why and exits 0, except under CI=true, where it fails:
# CI must not pass by skipping.
#
# Environment:
#   IMAGE     image reference to build (default ghcr.io/llmagents/llmagents:e2e; the model
#             variant is tagged IMAGE-model)
#   E2E_TESTS  what pytest runs (default tests/e2e): a file or one test, which sets up what
#             it needs, e.g. tests/e2e/test_real_node.py::test_the_with_model_image_serves_its_baked_model
#   PYTEST_ARGS  extra pytest arguments (e.g. -k quickstart)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
image="${IMAGE:-ghcr.io/llmagents/llmagents:e2e}"
agent_image="llmagents.local/e2e-agent:openai"
cache_root="${LLMAGENTS_CACHE:-$HOME/.cache/llmagents}"
log() { echo "e2e: $*" >&2; }

skip() {
  if [[ "${CI:-}" == true ]]; then
    log "cannot run under CI: $*"
    exit 1
  fi
  echo "e2e: skipped: $*"
  exit 0
}

# Debian's packages, with a refresh of the package lists when they are missing or stale.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  log "installing Debian's $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
         apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

[[ $EUID -eq 0 ]] || skip "a real node needs root (containerd, kubelet, namespaces, cgroups)"
[[ -d /sys/fs/cgroup/memory ]] || skip "the node is configured for cgroup v1 (this machine class)"
# Everything missing is named at once, before anything is installed or started: a fresh
# Debian machine lacks all of it (apt installs it below and hack/docker-engine.sh the engine),
# another lacks what it lacks, whatever order the checks run in.
missing=()
for tool in containerd runc ctr unshare ip; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[[ -x /usr/lib/cni/bridge ]] || missing+=("the CNI plugins (/usr/lib/cni)")
node_missing=${#missing[@]}
# An engine builds the images: one that answers, else dockerd to start, else apt to install it.
docker info >/dev/null 2>&1 || command -v dockerd >/dev/null 2>&1 || missing+=("a container engine")
if ((${#missing[@]})) && ! command -v apt-get >/dev/null 2>&1; then
  skip "missing $(IFS=,; echo "${missing[*]}" | sed 's/,/, /g') (no apt-get to install them)"
fi
if ((node_missing)); then
  apt_install containerd runc containernetworking-plugins iproute2 \
    || skip "could not install Debian's containerd, runc, containernetworking-plugins, iproute2"
fi

# Stop at the end only a dockerd this run starts: not a system engine, nor the private one
# an earlier `make image` left running (hack/docker-engine.sh's pid file), nor one another
# run still uses (this run is a user of the engine until it ends: the shared lock, fd 8).
mkdir -p "$cache_root/docker"
exec 8>>"$cache_root/docker/users.lock"
flock -s 8
started_docker=1
docker_pid="$(cat "$cache_root/docker/dockerd.pid" 2>/dev/null || true)"
if docker info >/dev/null 2>&1 || { [[ -n "$docker_pid" ]] && kill -0 "$docker_pid" 2>/dev/null; }; then
  started_docker=0
fi
# The images need an engine: the running one, else one installed (Debian) and started.
if ! engine="$("$here/docker-engine.sh" ensure)"; then
  if ((started_docker)); then flock -u 8; "$here/docker-engine.sh" stop-unused || true; fi
  skip "no container engine to build the image with (hack/docker-engine.sh says why above)"
fi
finish() {
  local status=$?
  # A killed pytest leaves the node's processes running in its cgroup: end them.
  PYTHONPATH="$root" "$root/.venv/bin/python" -m tooling.node cleanup || true
  if ((started_docker)); then flock -u 8; "$here/docker-engine.sh" stop-unused || true; fi
  exit "$status"
}
trap finish EXIT
trap "exit 143" TERM
trap "exit 130" INT

[[ -n "$engine" ]] && export "${engine?}"
start=$SECONDS
# Both images users get: the default (the chart runs it) and the model variant (one agent's
# sidecar). The classic builder builds every stage before its target, so the second build
# finds every layer cached.
"$here/image.sh" "$image" runtime
"$here/image.sh" "$image-model" with-model
log "building the gateway agent's image $agent_image"
base="$("$here/base-image.sh")"
ca_args=()
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  ca_args=(--build-arg "BUILD_CA_CERTS=$(cat /usr/local/share/ca-certificates/*.crt)")
fi
DOCKER_BUILDKIT=0 nice docker build -q --network host --build-arg "PYTHON_IMAGE=$base" \
  "${ca_args[@]}" -t "$agent_image" "$root/tests/e2e/agent" >/dev/null
log "images ready in $((SECONDS - start)) s"

LLMAGENTS_K8S_BIN="$("$here/build-k8s.sh")"
"$here/build-node.sh" >/dev/null
export LLMAGENTS_K8S_BIN LLMAGENTS_E2E_IMAGE="$image" LLMAGENTS_E2E_MODEL_IMAGE="$image-model" \
  LLMAGENTS_E2E_AGENT_IMAGE="$agent_image"

log "running ${E2E_TESTS:-tests/e2e} in a network and mount namespace of its own"
cd "$root"
# shellcheck disable=SC2086 # E2E_TESTS and PYTEST_ARGS are split on purpose
unshare --net --mount --propagation slave -- sh -c \
  'ip link set lo up && exec "$@"' sh \
  env LLMAGENTS_NODE_NETNS=1 "$root/.venv/bin/python" -m pytest -p no:xdist -p no:randomly \
  ${E2E_TESTS:-tests/e2e} ${PYTEST_ARGS:-}
