#!/usr/bin/env bash
# Start a Debian systemd container from a test image, unless one of that name already runs, and
# wait until its systemd has booted. Used by make demo, make timings and the serving benchmark.
#   scripts/systemd-container.sh NAME [IMAGE [extra docker run arguments...]]
# The flags run real systemd as PID 1 without --privileged (as in molecule/.config/molecule/config.yml).
set -euo pipefail

name=${1:?usage: systemd-container.sh NAME [IMAGE [docker run arguments...]]}
image=${2:-fastapi-app-test:bookworm}
shift $(($# < 2 ? $# : 2))

if [[ $(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null) != true ]]; then
    docker rm -f "$name" >/dev/null 2>&1 || true
    echo "starting container $name ($image, systemd)" >&2
    docker run -d --name "$name" --hostname "$name" \
        --cap-add SYS_ADMIN --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
        --tmpfs /run --tmpfs /run/lock \
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
        "$@" "$image" >/dev/null
fi
state=
for _ in $(seq 120); do
    state=$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)
    [[ $state == running || $state == degraded ]] && exit 0
    sleep 0.5
done
echo "systemd in $name did not come up (state: ${state:-none})" >&2
exit 1
