#!/usr/bin/env bash
# Builds the llmagents image on any machine with root or a Docker engine:
#
#   hack/image.sh IMAGE [TARGET]        TARGET: runtime (default) | with-model
#
# - no Docker engine answering: hack/docker-engine.sh installs (Debian) and starts one;
# - base image not pullable (no registry): hack/base-image.sh builds a Python 3.11 base
#   from Debian packages and it becomes the Dockerfile's PYTHON_IMAGE;
# - CA certificates added to this machine (/usr/local/share/ca-certificates, as a
#   TLS-inspecting proxy needs) reach pip in the builder stage only (BUILD_CA_CERTS);
#   the image built does not carry them.
#
# The classic builder (DOCKER_BUILDKIT=0) is the default: BuildKit would pull its
# Dockerfile frontend from a registry. Set DOCKER_BUILDKIT=1 where one is reachable.
# --network host: an engine started with --bridge=none has no other network for builds.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
image="${1:?usage: hack/image.sh IMAGE [runtime|with-model]}"
target="${2:-runtime}"
log() { echo "image: $*" >&2; }

# A user of the engine until this script ends (hack/docker-engine.sh stop-unused).
users_lock="${LLMAGENTS_CACHE:-$HOME/.cache/llmagents}/docker/users.lock"
mkdir -p "${users_lock%/*}"
exec 8>>"$users_lock"
flock -s 8
engine="$("$here/docker-engine.sh" ensure)"
[[ -n "$engine" ]] && export "${engine?}"
base="$("$here/base-image.sh")"

args=(--network host --target "$target" -t "$image" --build-arg "PYTHON_IMAGE=$base")
ca_dir="${LLMAGENTS_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}"
if compgen -G "$ca_dir/*.crt" >/dev/null; then
  args+=(--build-arg "BUILD_CA_CERTS=$(cat "$ca_dir"/*.crt)")
fi
build_log="${LLMAGENTS_CACHE:-$HOME/.cache/llmagents}/image-build.log"
log "building $image (target $target, base $base; log $build_log)"
start=$SECONDS
if ! DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}" nice docker build "${args[@]}" "$root" >"$build_log" 2>&1; then
  tail -30 "$build_log" >&2
  log "the build failed; the whole log is $build_log"
  exit 1
fi
size="$(docker image inspect -f '{{.Size}}' "$image")"
log "built $image in $((SECONDS - start)) s: $((size / 1000000)) MB"
if [[ -n "$engine" ]]; then
  log "the engine is private to llmagents: export $engine"
fi
