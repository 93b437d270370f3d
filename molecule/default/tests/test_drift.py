"""A re-run puts back what was changed by hand: the account and directory tasks run only when the
one host-state read (plugins/modules/fastapi_app_host_state.py) finds a difference, so that read must see it.
One deploy repairs every host at once; each host's test asserts on its own state."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from stack import run_playbook


@pytest.fixture(scope="module")
def repair(hosts: dict[str, Any], app: dict[str, Any]) -> dict[str, Any]:
    """Every host drifted by hand, then one deploy on all of them: the run and, per host, what served before."""
    name = app["fastapi_app_name"]
    before = {}
    for hostname, each in hosts.items():
        before[hostname] = {
            "main_pid": each.check_output(f"systemctl show -p MainPID --value {name}.service"),
            "gid": each.group(name).gid,
        }
        each.run_expect([0], f"chmod 0755 /etc/{name} && chgrp root /etc/{name} && chmod 0777 /opt/{name}/cache "
                             f"&& usermod --shell /bin/bash {name}")
        assert each.user(name).shell == "/bin/bash" and each.file(f"/etc/{name}").group == "root"
    return {"result": run_playbook("deploy"), "before": before}


def test_a_run_repairs_the_account_and_directories(host: Any, app: dict[str, Any], repair: dict[str, Any]) -> None:
    name = app["fastapi_app_name"]
    result: subprocess.CompletedProcess[str] = repair["result"]
    before = repair["before"][host.backend.get_hostname()]

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    config = host.file(f"/etc/{name}")
    assert (config.mode, config.user, config.group) == (0o750, "root", name)
    assert host.file(f"/opt/{name}/cache").mode == 0o700
    assert host.user(name).shell == "/usr/sbin/nologin"
    # The group was not recreated, and nothing that serves was touched by the repair.
    assert host.group(name).gid == before["gid"]
    assert host.check_output(f"systemctl show -p MainPID --value {name}.service") == before["main_pid"]
