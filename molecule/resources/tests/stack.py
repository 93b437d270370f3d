"""Helpers shared by the scenarios' testinfra tests: scenario settings and in-container clients.

Every request is made inside the container under test (curl, python3), towards its own
loopback or unix sockets, so the tests exercise the real nginx -> socket -> gunicorn path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

# Stdlib clients the tests run inside the containers (python3 -c SOURCE ARGS...).
WS_WATCH = (Path(__file__).resolve().parents[1] / "files" / "ws_watch.py").read_text()


def scenario_vars(group: str = "app_servers") -> dict[str, Any]:
    """The group_vars the scenario converged with, read from its molecule.yml (one source of truth)."""
    scenario = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "molecule.yml"
    text = os.path.expandvars(scenario.read_text())
    return yaml.safe_load(text)["provisioner"]["inventory"]["group_vars"][group]


def curl_json(host: Any, url: str, *args: str) -> dict[str, Any]:
    """GET (or whatever curl args say) inside the container; fails the test on a non-2xx answer."""
    result = host.run("curl -sS --fail-with-body --max-time 10 " + " ".join(args) + " %s", url)
    assert result.rc == 0, f"curl {url} failed: rc={result.rc} {result.stdout} {result.stderr}"
    return json.loads(result.stdout)


def service_show(host: Any, unit: str, *props: str) -> dict[str, str]:
    out = host.check_output("systemctl show %s -p " + ",".join(props), unit)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def child_pids(host: Any, pid: str) -> set[str]:
    out = host.run("ps -o pid= --ppid %s", pid).stdout
    return {p.strip() for p in out.split() if p.strip()}
