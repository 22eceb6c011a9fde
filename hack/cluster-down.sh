#!/usr/bin/env bash
# Stops every process `hack/cluster-up.sh` started for the cluster (by the pid file in
# its state directory: process groups, SIGTERM then SIGKILL). Same variables as cluster-up.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
py="$root/.venv/bin/python"
[[ -x "$py" ]] || py=python3
cd "$root"
exec env PYTHONPATH="$root" "$py" -m tooling.cluster down "$@"
