#!/usr/bin/env bash
# Serving benchmark (issue 6): three ways to serve examples/hello_app, side by side, in ONE Debian 12
# systemd container (fastapi-app-test:bookworm) on the same cores, loaded by wrk from inside it:
#   1 ceiling   uvicorn --workers <cores> --no-access-log on 127.0.0.1:8001
#   2 tutorial  nginx :8081 (bare proxy_pass) -> gunicorn -k uvicorn.workers.UvicornWorker -w 2*cores+1 :8000
#   3 role      nginx :80 -> /run/hello.sock -> gunicorn (fastapi_app_worker.UvicornWorker), role defaults,
#               deployed with playbooks/deploy.yml -i benchmarks/inventory
# Endpoint: GET /hello of examples/hello_app (async def, a small JSON answer).
# Rounds are interleaved (1,2,3,1,2,3,...); each run is a warm-up then `wrk --latency`.
# Prints the table (median rps, p50, p99; ratios 3/2 and 3/1) and writes benchmarks/results/
# serving.json, serving.png and raw/ (wrk outputs, meta.txt, server logs).
#
# Usage: benchmarks/serving.sh [--rounds N] [--duration S] [--warmup S] [--connections N] [--threads N]
#                              [--wait-idle S] [--keep]
# Same as env BENCH_ROUNDS, BENCH_DURATION, BENCH_WARMUP, BENCH_CONNECTIONS, BENCH_THREADS, BENCH_WAIT_IDLE.
# --wait-idle S: after the setup, wait up to S seconds for the machine to be idle (CPU >= 90 % idle)
# before the load (shared machines); default 0. A busy machine is reported either way.
# --keep leaves the container running afterwards (remove with: docker rm -f fastapi-app-bench).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
here=$root/benchmarks
name=fastapi-app-bench
image=fastapi-app-test:bookworm
results=$here/results
raw=$results/raw
plot_venv=$root/.venv-bench

rounds=${BENCH_ROUNDS:-3}
duration=${BENCH_DURATION:-10}
warmup=${BENCH_WARMUP:-3}
connections=${BENCH_CONNECTIONS:-64}
threads=${BENCH_THREADS:-2}
wait_idle=${BENCH_WAIT_IDLE:-0}
keep=0

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit "${1:-2}"; }
while (($#)); do
    case $1 in
        --rounds) rounds=${2:?}; shift 2 ;;
        --duration) duration=${2:?}; shift 2 ;;
        --warmup) warmup=${2:?}; shift 2 ;;
        --connections) connections=${2:?}; shift 2 ;;
        --threads) threads=${2:?}; shift 2 ;;
        --wait-idle) wait_idle=${2:?}; shift 2 ;;
        --keep) keep=1; shift ;;
        -h | --help) usage 0 ;;
        *) echo "serving: unknown argument $1" >&2; usage ;;
    esac
done
for v in rounds duration warmup connections threads; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || { echo "serving: --$v must be a positive integer" >&2; exit 2; }
done
[[ $wait_idle =~ ^[0-9]+$ ]] || { echo "serving: --wait-idle must be a number of seconds" >&2; exit 2; }

log() { echo "serving: $*" >&2; }
cx() { docker exec "$name" "$@"; }
# A script from stdin, passed as an argument so no command in it can read the rest of it.
cx_sh() { local script; script=$(cat); docker exec "$name" bash -euo pipefail -c "$script"; }

SECONDS=0
cd "$root"
"$root/scripts/bootstrap.sh" bookworm
export PATH=$root/.venv/bin:$PATH
python=$root/.venv/bin/python
report=$here/serving_report.py

# --- plot venv (matplotlib from PyPI, kept out of requirements-dev.txt) -------------------------
plot_ok=0
want=$(sha256sum "$here/requirements-plot.txt" | cut -d' ' -f1)
if [[ -x $plot_venv/bin/python && $(cat "$plot_venv/.requirements.sha256" 2>/dev/null) == "$want" ]]; then
    plot_ok=1
else
    log "creating $plot_venv (matplotlib for the PNG, benchmarks/requirements-plot.txt)"
    if "${PYTHON:-python3}" -m venv "$plot_venv" &&
        echo '*' > "$plot_venv/.gitignore" &&
        "$plot_venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements-plot.txt"; then
        echo "$want" > "$plot_venv/.requirements.sha256"
        plot_ok=1
    else
        log "WARNING: could not set up $plot_venv; the benchmark runs, the PNG is skipped"
    fi
fi

# --- the container ------------------------------------------------------------------------------
cleanup() {
    local rc=$?
    if ((keep)); then
        log "container $name kept (docker rm -f $name)"
    else
        docker rm -f "$name" >/dev/null 2>&1 || true
    fi
    ((rc == 0)) || log "FAILED (exit $rc) after ${SECONDS}s; server logs, if any, in $raw"
}
trap cleanup EXIT

rm -rf "$raw"
mkdir -p "$raw"
docker rm -f "$name" >/dev/null 2>&1 || true
"$root/scripts/systemd-container.sh" "$name" "$image"

# --- stack 3: the role, with its defaults ---------------------------------------------------------
log "stack 3: deploying with playbooks/deploy.yml -i benchmarks/inventory (role defaults)"
ansible-playbook playbooks/deploy.yml -i benchmarks/inventory > "$raw/deploy.log" 2>&1 ||
    { tail -40 "$raw/deploy.log" >&2; log "deploy failed, log: $raw/deploy.log"; exit 1; }
grep -A3 'PLAY RECAP' "$raw/deploy.log" >&2 || true

cores=$(cx nproc)
tutorial_workers=$((2 * cores + 1))

# --- stacks 1 and 2: their own venv, same versions as the role's release venv ----------------------
# The runtime pins come from the role's defaults; every other package (fastapi, starlette, pydantic,
# uvloop, httptools...) is constrained to what the role's release venv resolved, so the three stacks
# run the same code.
mapfile -t runtime_pins < <("$python" - "$root/roles/fastapi_app/defaults/main.yml" <<'PY'
import sys
import yaml
for pin in yaml.safe_load(open(sys.argv[1]))["fastapi_app_runtime_packages"]:
    if not pin.startswith("uvicorn-worker"):
        print(pin)
PY
)
log "stacks 1+2: venv /opt/bench/venv with ${runtime_pins[*]} + hello_app, constrained to the role's venv"
tar -C "$root/examples" -c --exclude=build --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache \
    hello_app | docker exec -i "$name" bash -c 'mkdir -p /opt/bench/src && tar -C /opt/bench/src -x'
if cx_sh > "$raw/bench-venv.log" 2>&1 <<EOF
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends wrk || { apt-get update && apt-get install -y --no-install-recommends wrk; }
/opt/hello/current/venv/bin/python -m pip freeze --exclude hello-app > /opt/bench/constraints.txt
python3 -m venv /opt/bench/venv
/opt/bench/venv/bin/pip install --disable-pip-version-check -c /opt/bench/constraints.txt \
    $(printf "'%s' " "${runtime_pins[@]}") /opt/bench/src/hello_app
mkdir -p /var/log/bench
EOF
then :; else tail -30 "$raw/bench-venv.log" >&2; log "building /opt/bench/venv failed, log: $raw/bench-venv.log"; exit 1; fi

# No access log: stack 2 has none either (gunicorn's default), and uvicorn's cost 30 % of its rps here.
uvicorn_cmd="uvicorn --workers $cores --no-access-log --host 127.0.0.1 --port 8001 hello_app.main:app"
gunicorn_cmd="gunicorn -k uvicorn.workers.UvicornWorker -w $tutorial_workers -b 127.0.0.1:8000 hello_app.main:app"
for unit in bench-uvicorn:"$uvicorn_cmd" bench-gunicorn:"$gunicorn_cmd"; do
    u=${unit%%:*} cmd=${unit#*:}
    # shellcheck disable=SC2086 # cmd is split into its words on purpose
    cx systemd-run --quiet --unit="$u" --working-directory=/opt/bench \
        -p StandardOutput="append:/var/log/bench/$u.log" -p StandardError="append:/var/log/bench/$u.log" \
        /opt/bench/venv/bin/$cmd
done
cx_sh <<'EOF'
cat > /etc/nginx/sites-available/tutorial <<'SITE'
# benchmarks/serving.sh, stack 2: the tutorial recipe, a bare proxy_pass (HTTP/1.0, no upstream keep-alive).
server {
    listen 8081;
    location / {
        proxy_pass http://127.0.0.1:8000;
    }
}
SITE
ln -sf /etc/nginx/sites-available/tutorial /etc/nginx/sites-enabled/tutorial
nginx -t -q
systemctl reload nginx
EOF

declare -A url=([uvicorn]=http://127.0.0.1:8001/hello [tutorial]=http://127.0.0.1:8081/hello [role]=http://127.0.0.1:80/hello)
stacks=(uvicorn tutorial role)
for key in "${stacks[@]}"; do
    ok=0
    for _ in $(seq 60); do
        if cx curl -fsS --max-time 2 "${url[$key]}" 2>/dev/null | grep -q '"message":"Hello World"'; then ok=1; break; fi
        sleep 0.5
    done
    ((ok)) || { log "stack $key does not answer GET ${url[$key]}"; exit 1; }
done
children() { cx bash -c "pgrep -c -P \$(systemctl show -p MainPID --value $1) || true"; }

# Percentage of CPU time idle over 3 s.
cpu_idle() { vmstat 3 2 | tail -1 | awk '{print $15}'; }
if ((wait_idle > 0)); then
    deadline=$((SECONDS + wait_idle))
    until (($(cpu_idle) >= 90)); do
        ((SECONDS < deadline)) || { log "still busy after --wait-idle ${wait_idle}s, measuring anyway"; break; }
        log "waiting for an idle machine (other containers: $(docker ps --format '{{.Names}}' | grep -vx "$name" | paste -sd, - || true))"
        sleep 10
    done
fi

# --- metadata -------------------------------------------------------------------------------------
pkg_versions='
import sys
from importlib.metadata import PackageNotFoundError, version
for p in ("fastapi", "starlette", "pydantic", "uvicorn", "gunicorn", "uvicorn-worker", "uvloop", "httptools"):
    try:
        v = version(p)
    except PackageNotFoundError:
        continue
    print("versions." + sys.argv[1] + "." + p.replace("-", "_") + "=" + v)
'
{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "machine.nproc=$cores"
    echo "machine.host_nproc=$(nproc)"
    echo "machine.model_name=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "machine.kernel=$(uname -r)"
    echo "machine.loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "machine.cpu_idle_pct_before=$(cpu_idle)"
    echo "machine.other_containers=$(docker ps --format '{{.Names}}' | grep -vx "$name" | paste -sd, - || true)"
    echo "machine.container=$name ($image $(docker image inspect -f '{{.Id}}' "$image" | cut -c8-19))"
    echo "versions.debian=$(cx cat /etc/debian_version)"
    echo "versions.python=$(cx python3 -c 'import platform; print(platform.python_version())')"
    echo "versions.nginx=$(cx nginx -v 2>&1 | sed 's/^nginx version: //')"
    echo "versions.wrk=$( (cx wrk -v 2>&1 || true) | head -1 | cut -d' ' -f1-2)"
    cx /opt/bench/venv/bin/python -c "$pkg_versions" bench_venv
    cx /opt/hello/current/venv/bin/python -c "$pkg_versions" role_venv
    echo "versions.role_release=$(cx readlink /opt/hello/current | xargs basename)"
    echo "config.rounds=$rounds"
    echo "config.duration_s=$duration"
    echo "config.warmup_s=$warmup"
    echo "config.threads=$threads"
    echo "config.connections=$connections"
    echo "config.endpoint=GET /hello (examples/hello_app: async def, JSON)"
    echo "config.wrk=wrk -t$threads -c$connections -d${duration}s --latency URL (after wrk -d${warmup}s URL)"
    echo "stack.uvicorn.label=ceiling: uvicorn --workers $cores"
    echo "stack.uvicorn.short=uvicorn (ceiling)"
    echo "stack.uvicorn.url=${url[uvicorn]}"
    echo "stack.uvicorn.command=$uvicorn_cmd"
    echo "stack.uvicorn.processes=$(cx bash -c "pgrep -c -f spawn_main -P \$(systemctl show -p MainPID --value bench-uvicorn) || true") uvicorn workers"
    echo "stack.uvicorn.access_log=none (--no-access-log)"
    echo "stack.tutorial.label=tutorial: nginx :8081 -> gunicorn -w $tutorial_workers :8000"
    echo "stack.tutorial.short=tutorial"
    echo "stack.tutorial.url=${url[tutorial]}"
    echo "stack.tutorial.command=$gunicorn_cmd"
    echo "stack.tutorial.nginx=Debian's stock nginx.conf; site: listen 8081; location / { proxy_pass http://127.0.0.1:8000; }"
    echo "stack.tutorial.processes=$(children bench-gunicorn) gunicorn workers"
    echo "stack.tutorial.access_log=gunicorn default (none); nginx /var/log/nginx/access.log"
    echo "stack.role.label=role defaults: nginx :80 -> socket -> gunicorn"
    echo "stack.role.short=role"
    echo "stack.role.url=${url[role]}"
    echo "stack.role.command=playbooks/deploy.yml -i benchmarks/inventory (fastapi_app_* defaults; $(cx grep -E '^(workers|worker_class) ' /etc/hello/gunicorn.conf.py | paste -sd';' -))"
    echo "stack.role.processes=$(children hello) gunicorn workers"
    echo "stack.role.access_log=nginx /var/log/nginx/hello.access.log, buffered; gunicorn none (role defaults)"
} > "$raw/meta.txt"
setup_s=$SECONDS
idle=$(grep -m1 '^machine.cpu_idle_pct_before=' "$raw/meta.txt" | cut -d= -f2)
busy_note=""
if ((idle < 80)); then
    busy_note="WARNING: the machine was busy before the load (CPU ${idle}% idle; other containers: $(grep -m1 '^machine.other_containers=' "$raw/meta.txt" | cut -d= -f2)); numbers are not comparable to an idle run"
    log "$busy_note"
fi
log "setup took ${setup_s}s; $rounds rounds x ${#stacks[@]} stacks x (${warmup}s warm-up + ${duration}s)"

# --- load -----------------------------------------------------------------------------------------
# Interference: CPU time the host spent outside this container while wrk measured, as a share of
# all cores (host busy time from /proc/stat minus the container's cgroup CPU time).
cid=$(docker inspect -f '{{.Id}}' "$name")
# cgroup v1 (cpuacct.usage, ns) or v2 (cpu.stat usage_usec); v1 first on hybrid hosts.
cg=$({ find /sys/fs/cgroup -maxdepth 4 -path "*$cid*/cpuacct.usage"; find /sys/fs/cgroup -maxdepth 4 -path "*$cid*/cpu.stat"; } 2>/dev/null | head -1 || true)
tck=$(getconf CLK_TCK)
snapshot() {
    local host container=0
    host=$(awk -v t="$tck" '/^cpu / {printf "%.3f", ($2 + $3 + $4 + $7 + $8 + $9) / t}' /proc/stat)
    case $cg in
        */cpuacct.usage) container=$(awk '{printf "%.3f", $1 / 1e9}' "$cg") ;;
        */cpu.stat) container=$(awk '/^usage_usec/ {printf "%.3f", $2 / 1e6}' "$cg") ;;
    esac
    echo "$(date +%s.%N) $host $container"
}
other_pct() { # before-snapshot after-snapshot -> % of all cores used outside the container
    awk -v n="$(nproc)" -v a="$1" -v b="$2" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        o = (y[2] - x[2]) - (y[3] - x[3]); if (o < 0) o = 0
        printf "%.1f", 100 * o / ((y[1] - x[1]) * n) }'
}
[[ -n $cg ]] || log "no cgroup CPU accounting found for $name: interference not measured"

load_start=$SECONDS
for ((r = 1; r <= rounds; r++)); do
    for key in "${stacks[@]}"; do
        cx wrk -t"$threads" -c"$connections" -d"${warmup}s" "${url[$key]}" > "$raw/warmup-r$r-$key.txt"
        before=$(snapshot)
        cx wrk -t"$threads" -c"$connections" -d"${duration}s" --latency "${url[$key]}" > "$raw/r$r-$key.txt"
        after=$(snapshot)
        other=""
        if [[ -n $cg ]]; then
            other=$(other_pct "$before" "$after")
            echo "interference.$key.r$r=$other" >> "$raw/meta.txt"
        fi
        log "round $r/$rounds $(printf '%-8s' "$key") $("$python" "$report" line "$raw/r$r-$key.txt")${other:+, CPU outside the container $other%}"
    done
done
load_s=$((SECONDS - load_start))
worst=$(grep '^interference\.' "$raw/meta.txt" | cut -d= -f2 | sort -g | tail -1 || true)
if [[ -n $worst ]] && awk -v w="$worst" 'BEGIN {exit !(w > 10)}'; then
    busy_note="${busy_note:+$busy_note; }WARNING: up to $worst% of the CPU went to processes outside the benchmark during a measured run; numbers are suspect"
    log "$busy_note"
fi
others_after=$(docker ps --format '{{.Names}}' | grep -vx "$name" | paste -sd, - || true)
echo "machine.other_containers_after=$others_after" >> "$raw/meta.txt"
others_before=$(grep -m1 '^machine.other_containers=' "$raw/meta.txt" | cut -d= -f2)
if [[ $others_after != "$others_before" ]]; then
    busy_note="${busy_note:+$busy_note; }WARNING: other containers changed during the load ($others_before -> $others_after); numbers are suspect"
    log "$busy_note"
fi

for u in bench-uvicorn bench-gunicorn; do cx tail -200 "/var/log/bench/$u.log" > "$raw/$u.log" 2>&1 || true; done
cx journalctl -u hello --no-pager -n 100 > "$raw/hello-journal-tail.log" 2>&1 || true
{
    echo "wall.setup_s=$setup_s"
    echo "wall.load_s=$load_s"
    echo "wall.total_s=$SECONDS"
} >> "$raw/meta.txt"

# --- report ---------------------------------------------------------------------------------------
echo
echo "GET /hello, wrk -t$threads -c$connections, median of $rounds rounds x ${duration}s, $cores cores ($(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
[[ -z $busy_note ]] || echo "$busy_note"
"$python" "$report" report "$raw" --json "$results/serving.json"
echo
if ((plot_ok)) && "$plot_venv/bin/python" "$report" plot "$results/serving.json" "$results/serving.png"; then
    echo "wrote $results/serving.json, $results/serving.png (raw wrk output: $raw)"
else
    echo "wrote $results/serving.json (no PNG; raw wrk output: $raw)"
fi
echo "wall time: ${SECONDS}s (setup ${setup_s}s, load ${load_s}s)"
