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

"$root/scripts/systemd-container.sh" "$name" fastapi-app-test:bookworm -p "127.0.0.1:$port:80"

ansible-playbook playbooks/deploy.yml -i inventory/demo

echo
echo "demo: the app answers through nginx:"
curl -sS --fail "http://127.0.0.1:$port/"
echo
curl -sS --fail "http://127.0.0.1:$port/version"
echo
echo "demo: open http://127.0.0.1:$port/ (API docs: http://127.0.0.1:$port/docs); remove with: make demo-clean"
