"""Pipelining for collection users: the shipped playbooks turn it on even where ansible.cfg (here the
environment) leaves it off, and the role warns once a run, whatever the number of hosts, when the
connection does not pipeline, saying what it costs and how to turn it on. Both runs are check-mode
deploys of the converged hosts: nothing changes."""

from __future__ import annotations

import json
import subprocess

import pytest
from stack import run_playbook

WARNING = "[WARNING]: SSH pipelining is off: "


@pytest.fixture(scope="module")
def runs() -> dict[str, subprocess.CompletedProcess[str]]:
    return {"off": run_playbook("deploy", "--check", "-e", json.dumps({"ansible_pipelining": False})),
            "config_off": run_playbook("deploy", "--check", env={"ANSIBLE_PIPELINING": "false"})}


def test_a_run_without_pipelining_warns_once_with_the_cost_and_the_fix(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    result = runs["off"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = " ".join((result.stdout + result.stderr).split())
    assert output.count(WARNING) == 1, output[-5000:]
    for said in ("96 s instead of 46 s", "pipelining = true", "ansible_pipelining", "requiretty"):
        assert said in output, said
    # At the start of the run: the role's first task after the validation of its arguments.
    tasks = [line for line in result.stdout.splitlines() if line.startswith("TASK [fastapi_app : ") and "Validating arguments" not in line]
    assert tasks and tasks[0].startswith("TASK [fastapi_app : Check that the connection pipelines]"), tasks[:3]


def test_the_playbooks_pipeline_where_the_configuration_does_not(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    result = runs["config_off"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "pipelining is off" not in result.stdout + result.stderr, (result.stdout + result.stderr)[-5000:]
