"""Each phase tag runs alone on the converged hosts, as an operator would run one phase: it fails
on nothing, changes nothing, and the app keeps serving the same release from the same master.
One run per tag for both hosts."""

from __future__ import annotations

import re
from typing import Any

import pytest
from stack import host_recap, run_playbook

# The tags of tasks/main.yml's phases (docs/deploy-flow.md lists them).
TAGS = ["fastapi_app_validate", "fastapi_app_packages", "fastapi_app_user", "fastapi_app_release", "fastapi_app_config",
        "fastapi_app_systemd", "fastapi_app_nginx", "fastapi_app_health", "fastapi_app_absent"]


def serving(host: Any, name: str) -> tuple[str, str]:
    return (host.check_output(f"systemctl show -p MainPID --value {name}.service"), host.check_output(f"readlink /opt/{name}/current"))


@pytest.mark.parametrize("tag", TAGS)
def test_a_phase_tag_runs_alone_and_changes_nothing(tag: str, app: dict[str, Any], hosts: dict[str, Any]) -> None:
    name = app["fastapi_app_name"]
    assert len(hosts) == 2
    before = {hostname: serving(h, name) for hostname, h in hosts.items()}

    result = run_playbook("deploy", "--tags", tag)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for hostname, h in hosts.items():
        recap = re.match(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=0\s+failed=0", host_recap(result.stdout, hostname))
        assert recap and int(recap.group(1)) > 0 and recap.group(2) == "0", result.stdout[-3000:]
        assert serving(h, name) == before[hostname]
