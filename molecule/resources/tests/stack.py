"""Helpers shared by the scenarios' testinfra tests: scenario settings and in-container clients.

Every request is made inside the container under test (curl, python3), towards its own
loopback or unix sockets, so the tests exercise the real nginx -> socket -> gunicorn path.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import testinfra
import yaml

# Stdlib clients the tests run inside the containers (python3 -c SOURCE ARGS...).
WS_WATCH = (Path(__file__).resolve().parents[1] / "files" / "ws_watch.py").read_text()


def scenario_vars(group: str = "app_servers") -> dict[str, Any]:
    """The group_vars the scenario converged with, read from its molecule.yml (one source of truth)."""
    scenario = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "molecule.yml"
    text = os.path.expandvars(scenario.read_text())
    return yaml.safe_load(text)["provisioner"]["inventory"]["group_vars"][group]


def run_playbook(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """playbooks/<name>.yml of the project, run from the controller as a user would, against the
    scenario's inventory with Molecule's ansible.cfg (plain text output); env adds to the environment."""
    ephemeral = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    playbook = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "playbooks" / f"{name}.yml"
    env = dict(os.environ, ANSIBLE_CONFIG=str(ephemeral / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", **(env or {}))
    return subprocess.run(["ansible-playbook", "-i", str(ephemeral / "inventory"), *args, str(playbook)],
                          capture_output=True, text=True, env=env, check=False)


def inventory_hosts() -> dict[str, Any]:
    """Every host of the scenario's inventory by name, as testinfra hosts: for a module fixture that
    reads or changes each host around one playbook run on all of them (Ansible runs them in parallel)."""
    inventory = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory"
    found = testinfra.get_hosts(["all"], connection="ansible", ansible_inventory=str(inventory))
    return {found_host.backend.get_hostname(): found_host for found_host in found}


def host_output(stdout: str, hostname: str) -> str:
    """What a run printed for one host: its result lines (`ok: [host] => ...` with their indented
    continuation) of every task, in order; the other hosts' results are left out."""
    result = re.compile(rf"^\w+: \[{re.escape(hostname)}(?: -> [^]]+)?\]")
    parts, keep = [], False
    for line in stdout.splitlines():
        if line and not line[0].isspace():
            keep = bool(result.match(line))
        if keep:
            parts.append(line)
    return "\n".join(parts)


def host_recap(stdout: str, hostname: str) -> str:
    """The PLAY RECAP line of one host (empty if the run has none for it)."""
    found = re.search(rf"^{re.escape(hostname)}\s+:\s+(ok=.*)$", stdout, re.MULTILINE)
    return found.group(1) if found else ""


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
