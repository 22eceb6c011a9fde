#!/usr/bin/env bash
# Prints a Python 3.11 base image for the Dockerfile's PYTHON_IMAGE that the local Docker
# engine has, building one from Debian packages when none can be pulled.
#
#   1. $PYTHON_IMAGE when set (the caller's choice, used as is);
#   2. the Dockerfile's default (python:3.11.x-slim-bookworm) when it is present or pulls;
#   3. otherwise llmagents-base/python:3.11-bookworm, made here: debootstrap of Debian
#      bookworm (minbase + python3, python3-venv, ca-certificates) from the mirror apt uses,
#      with bookworm-security applied, imported with `docker import`. The root filesystem
#      tarball is cached in $LLMAGENTS_CACHE/base, so a new engine re-imports in seconds.
#
# Machines without a registry (or behind one that blocks Docker Hub) take path 3; it needs
# root and debootstrap (installed from apt when missing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cache_root="${LLMAGENTS_CACHE:-$HOME/.cache/llmagents}"
local_image="llmagents-base/python:3.11-bookworm"
log() { echo "base-image: $*" >&2; }

if [[ -n "${PYTHON_IMAGE:-}" ]]; then
  echo "$PYTHON_IMAGE"
  exit 0
fi
default="$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$root/Dockerfile")"
if docker image inspect "$default" >/dev/null 2>&1 || timeout 60 docker pull -q "$default" >/dev/null 2>&1; then
  echo "$default"
  exit 0
fi
if docker image inspect "$local_image" >/dev/null 2>&1; then
  echo "$local_image"
  exit 0
fi

mkdir -p "$cache_root/base"
tarball="$cache_root/base/python-3.11-bookworm.tar"
exec 9>"$cache_root/base/.lock"
flock 9
if [[ ! -s "$tarball" ]]; then
  log "$default cannot be pulled: building $local_image from Debian packages (about a minute)"
  [[ $EUID -eq 0 ]] || { log "debootstrap needs root"; exit 1; }
  command -v debootstrap >/dev/null 2>&1 || \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  # The mirror apt already uses on this machine (deb822 or one-line sources).
  mirror="$(sed -n 's/^URIs: *\([^ ]*debian\)\/*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)"
  [[ -n "$mirror" ]] || mirror="$(awk '$1 == "deb" && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  security="${mirror%/debian}/debian-security"
  dir="$(mktemp -d "$cache_root/base/rootfs.XXXXXX")"
  trap 'umount "$dir/proc" 2>/dev/null || true; rm -rf "$dir"' EXIT
  start=$SECONDS
  nice debootstrap --variant=minbase \
    --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$dir" "$mirror" >"$cache_root/base/debootstrap.log" 2>&1 \
    || { tail -20 "$cache_root/base/debootstrap.log" >&2; exit 1; }
  cat >"$dir/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
SOURCES
  mount -t proc proc "$dir/proc"
  chroot "$dir" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq' \
    >>"$cache_root/base/debootstrap.log" 2>&1 \
    || { tail -20 "$cache_root/base/debootstrap.log" >&2; exit 1; }
  umount "$dir/proc"
  # What a base image needs no copy of: package lists, caches, docs and logs.
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/var/cache/debconf/*-old \
    "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* \
    "$dir"/var/log/* "$dir"/tmp/* "$dir"/root/.cache
  tar --numeric-owner -C "$dir" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  log "root filesystem built in $((SECONDS - start)) s"
fi
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  "$tarball" "$local_image" >/dev/null
echo "$local_image"
