#!/usr/bin/env bash
# Stop the dockerd that ensure-docker.sh started, and only that one: an engine
# run by systemd or by a human is none of our business.
set -euo pipefail

PIDFILE=/run/fastapi-app-dockerd.pid
TIMEOUT=30

[[ -f $PIDFILE ]] || { echo "stop-docker: no $PIDFILE, dockerd not started by us; leaving it alone" >&2; exit 0; }
pid=$(cat "$PIDFILE")

# Check the pid still is a dockerd, in case it was recycled after a crash.
if [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]]; then
    echo "stop-docker: stopping dockerd (pid $pid)" >&2
    kill -TERM "$pid"
    # dockerd stops containers on SIGTERM, which can take a while.
    for ((i = 0; i < TIMEOUT; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "stop-docker: dockerd still alive after ${TIMEOUT}s, sending SIGKILL" >&2
        kill -KILL "$pid"
    fi
else
    echo "stop-docker: pid $pid is not a running dockerd; just removing stale $PIDFILE" >&2
fi
rm -f "$PIDFILE"
