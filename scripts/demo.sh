#!/usr/bin/env bash
# One-command demo: deploy examples/hello_app into a local Debian 12 systemd container with the
# real playbook (playbooks/deploy.yml -i inventory/demo), then fetch its answer through nginx.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
name=fastapi-app-demo
port=${DEMO_PORT:-8080}
cd "$root"

"$root/scripts/bootstrap.sh" bookworm
export PATH=$root/.venv/bin:$PATH

if [[ $(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null) != true ]]; then
    docker rm -f "$name" >/dev/null 2>&1 || true
    echo "demo: starting container $name (Debian 12, systemd) with nginx published on 127.0.0.1:$port"
    docker run -d --name "$name" --hostname "$name" \
        --cap-add SYS_ADMIN --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
        --tmpfs /run --tmpfs /run/lock \
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
        -p "127.0.0.1:$port:80" fastapi-app-test:bookworm >/dev/null
fi
for _ in $(seq 60); do
    state=$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)
    [[ $state == running || $state == degraded ]] && break
    sleep 0.5
done

ansible-playbook playbooks/deploy.yml -i inventory/demo

echo
echo "demo: the app answers through nginx:"
curl -sS --fail "http://127.0.0.1:$port/"
echo
curl -sS --fail "http://127.0.0.1:$port/version"
echo
echo "demo: open http://127.0.0.1:$port/ (API docs: http://127.0.0.1:$port/docs); remove with: make demo-clean"
