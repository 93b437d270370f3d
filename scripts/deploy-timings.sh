#!/usr/bin/env bash
# Deploy speed on the demo container (make timings): wall time per host of
#   1. a fresh converge (a new container, nothing installed but the image),
#   2. a no-change re-run,
#   3. a code-only redeploy (the example app with one changed source file: new release, handover),
# then the same app with a lock (examples/locks/hello_app), once per installer (uv, then pip):
#   4. its first locked release, 5. a no-change re-run, 6. a code-only change, 7. a dependency
#      change (a lock with two more packages).
# Each figure is the role's own per-host time (the summary task: from its first task to its
# last) and the wall time of the ansible-playbook command around it.
# The demo container is replaced by a fresh one; `make demo` afterwards reuses it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
name=fastapi-app-demo
cd "$root"
"$root/scripts/bootstrap.sh" bookworm
export PATH=$root/.venv/bin:$PATH

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r examples/hello_app "$work/hello_app"
printf '\n# deploy-timings.sh: code-only change %s\n' "$(date -u +%FT%TZ)" >> "$work/hello_app/src/hello_app/main.py"

docker rm -f "$name" >/dev/null 2>&1 || true
"$root/scripts/systemd-container.sh" "$name" fastapi-app-test:bookworm -p "127.0.0.1:${DEMO_PORT:-8080}:80"

results=()
run() { # label, ansible-playbook arguments...
    local label=$1 log="$work/$1.log" start end
    shift
    start=$(date +%s.%N)
    ansible-playbook playbooks/deploy.yml -i inventory/demo "$@" > "$log" 2>&1 ||
        { tail -40 "$log" >&2; echo "deploy-timings: $label failed" >&2; exit 1; }
    end=$(date +%s.%N)
    # Summary lines: "<host> <app>: release A -> B, switch: X, health: ok, release commands: none, 12.3 s"
    while read -r host role_s switch; do
        results+=("$(printf '%-22s %-20s %8s %8.1f  %s' "$label" "$host" "$role_s" "$(echo "$end - $start" | bc)" "$switch")")
    done < <(tr -d "\n" < "$log" | grep -oE "msg: '[^ ]+ [^:]+: release [^']*'" | sed -E 's/ +/ /g' |
        sed -E "s/^msg: '([^ ]+) .*switch: ([^,]+), health: [^,]+, (release commands: [^,]*, )?([0-9.]+) s'$/\1 \4 \2/")
    grep -E '^\S+ +: ok=' "$log" | sed "s/^/deploy-timings: $label: /" >&2
}

run fresh
run no-change
run code-only -e "fastapi_app_source_path=$work/hello_app"

locks=examples/locks/hello_app
for installer in uv pip; do
    app=$work/locked-$installer
    cp -r examples/hello_app "$app"
    cp "$locks/pylock.toml" "$app/pylock.toml"
    args=(-e "fastapi_app_installer=$installer" -e "fastapi_app_source_path=$app")
    run "lock-$installer first" "${args[@]}"
    run "lock-$installer no-change" "${args[@]}"
    printf '\n# deploy-timings.sh: code-only change (%s)\n' "$installer" >> "$app/src/hello_app/main.py"
    run "lock-$installer code-only" "${args[@]}"
    cp "$locks/pylock-more-dependencies.toml" "$app/pylock.toml"
    run "lock-$installer dependency" "${args[@]}"
done

echo
echo "deploy timings, $(date -u +%FT%TZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), other containers: $(docker ps --format '{{.Names}}' | grep -vx "$name" | paste -sd, - || true)"
printf '%-22s %-20s %8s %8s  %s\n' run host "role s" "wall s" switch
printf '%s\n' "${results[@]}"
