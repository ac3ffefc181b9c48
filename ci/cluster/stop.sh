#!/usr/bin/env bash
# Stops every node ci/cluster/node.sh started in DIR: its sshd and every process below it
# (sshd gives each connection and session its own session id, so a process-group kill would
# miss them).
#   ci/cluster/stop.sh DIR
set -uo pipefail
dir=${1:?usage: stop.sh DIR}

tree() {
  echo "$1"
  for child in $(ps -o pid= --ppid "$1"); do tree "$child"; done
}

for pidfile in "$dir"/*.pid; do
  [ -f "$pidfile" ] || continue
  # shellcheck disable=SC2046
  kill -KILL $(tree "$(cat "$pidfile")") 2>/dev/null
  rm -f "$pidfile"
done
