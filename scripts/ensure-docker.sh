#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`; start one if needed.
# Exits 0 silently when an engine is already usable, so callers can run it
# unconditionally before every Molecule run.
set -euo pipefail

PIDFILE=/run/fastapi-app-dockerd.pid
LOGFILE=/var/log/fastapi-app-dockerd.log
TIMEOUT=60

docker info >/dev/null 2>&1 && exit 0

die() { echo "ensure-docker: $*" >&2; exit 1; }
alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Starting a daemon ourselves only makes sense where we control the host;
# anywhere else the user must start their own engine (Docker Desktop, systemd...).
[[ $EUID -eq 0 ]] || die "docker engine not reachable and not root: start Docker yourself (e.g. 'sudo systemctl start docker') or re-run as root"
grep -qsx 'ID=debian' /etc/os-release || die "docker engine not reachable and this is not Debian: start Docker yourself, then re-run"

if ! command -v dockerd >/dev/null 2>&1; then
    echo "ensure-docker: dockerd not installed, installing docker.io via apt" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y docker.io
fi

# A dockerd that is up but not answering yet (ours from an earlier call, or
# one the docker.io postinst just launched via its init script) must be waited
# for: a second daemon on the same data root would only fail.
if alive "$PIDFILE"; then
    pidfile=$PIDFILE
    echo "ensure-docker: dockerd we started earlier (pid $(cat "$pidfile")) is still coming up, waiting" >&2
elif alive /run/docker.pid; then
    pidfile=/run/docker.pid
    echo "ensure-docker: a dockerd not started by us (pid $(cat "$pidfile")) is coming up, waiting" >&2
else
    pidfile=$PIDFILE
    echo "ensure-docker: starting dockerd (log: $LOGFILE)" >&2
    # No systemd on these hosts, so detach by hand: own session, no inherited
    # stdio, otherwise callers capturing our output would hang until dockerd exits.
    setsid nohup dockerd </dev/null >>"$LOGFILE" 2>&1 &
    echo $! >"$PIDFILE"
fi

for ((i = 0; i < TIMEOUT; i++)); do
    if docker info >/dev/null 2>&1; then
        echo "ensure-docker: docker engine is up" >&2
        exit 0
    fi
    alive "$pidfile" || die "dockerd (pid $(cat "$pidfile")) exited during startup; our log: $LOGFILE"
    sleep 1
done
die "docker engine did not come up within ${TIMEOUT}s, see $LOGFILE"
