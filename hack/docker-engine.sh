#!/usr/bin/env bash
# A Docker engine for `make image` and the e2e run, on machines that have none running.
#
#   hack/docker-engine.sh ensure   docker answers afterwards; exit 0. If no engine answered,
#                                  installs Debian's docker.io when dockerd is missing (apt,
#                                  root only) and starts dockerd, saying so on stderr.
#   hack/docker-engine.sh stop     stops a dockerd this script started (nothing otherwise).
#   hack/docker-engine.sh stop-unused
#                                  the same, unless a build or an e2e run still uses it.
#
# Users of the engine (hack/image.sh, hack/e2e.sh) hold a shared lock on $state/users.lock
# from before `ensure` until they end; `stop-unused` stops the engine only with that lock
# exclusive, so one run's end does not take the engine from under another's build or node
# (runs in other worktrees share it). A user taking the lock while the engine stops waits,
# then its `ensure` starts a new one.
#
# dockerd runs with --iptables=false --bridge=none: containers get no network of their own
# (builds use --network host), so nothing here touches the machine's firewall or NATs
# anything outside. Its state and log live in $LLMAGENTS_CACHE/docker; the default
# /var/lib/docker is left to a system engine.
set -euo pipefail

cache_root="${LLMAGENTS_CACHE:-$HOME/.cache/llmagents}"
state="$cache_root/docker"
sock="$state/docker.sock"
pidfile="$state/dockerd.pid"
log() { echo "docker-engine: $*" >&2; }

# Our own engine, when this script started one, is reached through its own socket.
if [[ -S "$sock" && -z "${DOCKER_HOST:-}" ]] && [[ -s "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  export DOCKER_HOST="unix://$sock"
fi

case "${1:-ensure}" in
ensure)
  if docker info >/dev/null 2>&1; then
    [[ "${DOCKER_HOST:-}" == "unix://$sock" ]] && echo "DOCKER_HOST=$DOCKER_HOST"
    exit 0
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
      log "no Docker engine answers and dockerd is not installed; install Docker (https://docs.docker.com/engine/install/)"
      exit 1
    fi
    log "no Docker engine: installing Debian's docker.io"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null; }
  fi
  if [[ $EUID -ne 0 ]]; then
    log "dockerd is installed but not running, and starting it needs root"
    exit 1
  fi
  mkdir -p "$state"
  log "starting dockerd (state in $state, log $state/dockerd.log)"
  # setsid: the engine outlives this script (later builds reuse it) until `stop`.
  # Without the users' lock (fd 8) or stop-unused's (fd 9): the engine is no user of itself.
  setsid dockerd --host "unix://$sock" --data-root "$state/root" --exec-root "$state/run" \
    --pidfile "$pidfile" --iptables=false --ip-masq=false --bridge=none \
    >"$state/dockerd.log" 2>&1 </dev/null 8>&- 9>&- &
  export DOCKER_HOST="unix://$sock"
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && { echo "DOCKER_HOST=$DOCKER_HOST"; exit 0; }
    kill -0 $! 2>/dev/null || break
    sleep 0.5
  done
  log "dockerd did not answer; its log follows"
  tail -20 "$state/dockerd.log" >&2
  exit 1
  ;;
stop-unused)
  mkdir -p "$state"
  exec 9>>"$state/users.lock"
  if ! flock -xn 9; then
    log "leaving the dockerd this script started running: another build or e2e run uses it"
    exit 0
  fi
  exec "$0" stop
  ;;
stop)
  [[ -s "$pidfile" ]] || exit 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping the dockerd this script started (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$pidfile"
  # dockerd leaves its overlay and netns mounts behind when killed hard.
  grep -o " $state/[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ;;
*)
  echo "usage: $0 ensure|stop|stop-unused" >&2
  exit 2
  ;;
esac
