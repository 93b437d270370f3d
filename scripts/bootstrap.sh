#!/usr/bin/env bash
# Make this machine ready for `make demo` / `make test`: a Python venv with the pinned toolchain
# (.venv, reused while requirements-dev.txt is unchanged), a running Docker engine and the
# locally built systemd test images. Says what it does; stops with an instruction where it can't.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$root/.venv
stamp=$venv/.requirements.sha256
images=${1:-all}

say() { echo "bootstrap: $*" >&2; }
die() { echo "bootstrap: $*" >&2; exit 1; }

python=${PYTHON:-python3}
command -v "$python" >/dev/null 2>&1 || die "$python not found: install Python 3.11+ (Debian: apt-get install python3 python3-venv)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$python is older than 3.11 (ansible-core 2.19 needs 3.11+)"
if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    [[ $EUID -eq 0 ]] && grep -qsx 'ID=debian' /etc/os-release ||
        die "$python cannot create virtualenvs: install python3-venv (as root: apt-get install python3-venv)"
    say "installing python3-venv"
    DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv ||
        { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv; }
fi
if ! command -v pg_virtualenv >/dev/null 2>&1; then
    # make unit runs the orders_app tests in a throw-away PostgreSQL cluster (pg_virtualenv).
    [[ $EUID -eq 0 ]] && grep -qsx 'ID=debian' /etc/os-release ||
        die "pg_virtualenv not found: install PostgreSQL (as root: apt-get install postgresql)"
    say "installing postgresql (pg_virtualenv for the orders_app tests)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql ||
        { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; }
fi

want=$(sha256sum "$root/requirements-dev.txt" | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || $(cat "$stamp" 2>/dev/null) != "$want" ]]; then
    say "creating $venv with the pinned toolchain (requirements-dev.txt)"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/requirements-dev.txt"
    echo "$want" > "$stamp"
else
    say "toolchain venv is up to date"
fi

"$root/scripts/ensure-docker.sh"
"$root/molecule/resources/images/build.sh" "$images"
