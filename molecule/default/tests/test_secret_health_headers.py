"""A health check that needs the API key in a header (molecule.yml: /healthz/deep, Authorization from
fastapi_app_secrets): a release whose check goes without it is rejected at its canary with the app's
401, one whose check sends it is deployed; the key is in no output of either run (at -vvv), in no
log on the hosts and not in the deploy record, while nginx's access log shows the check through it.
Runs after test_record.py and test_releases.py, and ends on the converged source again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from stack import run_playbook


def current(host: Any, name: str) -> str:
    return os.path.basename(host.check_output(f"readlink /opt/{name}/current"))


@pytest.fixture(scope="module")
def runs(hosts: dict[str, Any], app: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """On every host: a new release whose deep check lacks the key (fails), the same release with
    the key (switches), then the converged source again. Each run's output and each host's releases."""
    name = app["fastapi_app_name"]
    source = tmp_path_factory.mktemp("headers") / "hello_app"
    example = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "examples" / "hello_app"
    shutil.copytree(example, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".pytest_cache"))
    with (source / "src" / "hello_app" / "__init__.py").open("a") as init:
        init.write("# health headers test\n")
    seen: dict[str, Any] = {"before": {h: current(each, name) for h, each in hosts.items()}}
    for each in hosts.values():  # the access log from here on only
        each.check_output(f"truncate -s 0 /var/log/nginx/{name}.access.log")
    without = [{**check, "headers": {}} for check in app["fastapi_app_health_checks"]]
    without_vars = {"fastapi_app_source_path": str(source), "fastapi_app_health_checks": without}
    seen["without"] = run_playbook("deploy", "-vvv", "-e", json.dumps(without_vars))
    seen["after_without"] = {h: current(each, name) for h, each in hosts.items()}
    seen["with"] = run_playbook("deploy", "-vvv", "-e", json.dumps({"fastapi_app_source_path": str(source)}))
    seen["after_with"] = {h: current(each, name) for h, each in hosts.items()}
    time.sleep(2)  # nginx flushes its buffered access log every second
    seen["access_log"] = {h: each.check_output(f"cat /var/log/nginx/{name}.access.log") for h, each in hosts.items()}
    back = run_playbook("deploy")
    assert back.returncode == 0, back.stdout[-3000:]
    return seen


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def test_a_check_without_the_key_rejects_the_release_at_its_canary(host: Any, app: dict[str, Any], runs: dict[str, Any]) -> None:
    hostname = host.backend.get_hostname()
    result = runs["without"]
    assert result.returncode != 0, result.stdout[-3000:]
    text = " ".join(output(result).split())
    assert "failed its canary run" in text and "/healthz/deep 401" in text and "unauthorized" in text, result.stdout[-4000:]
    assert runs["after_without"][hostname] == runs["before"][hostname], "the serving release stays"


def test_a_check_with_the_key_deploys_the_release(host: Any, app: dict[str, Any], runs: dict[str, Any]) -> None:
    hostname = host.backend.get_hostname()
    result = runs["with"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert runs["after_with"][hostname] != runs["before"][hostname], "the new release serves"
    assert not host.file(f"/opt/{app['fastapi_app_name']}/releases/{runs['after_with'][hostname]}/CANARY_FAILED").exists
    # The check through nginx after the switch sent the key: the app answers it 401 without.
    deep = [line for line in runs["access_log"][hostname].splitlines() if "GET /healthz/deep " in line]
    assert any('" 200 ' in line for line in deep), runs["access_log"][hostname]


def test_the_key_is_in_no_output_and_no_log(host: Any, app: dict[str, Any], runs: dict[str, Any]) -> None:
    name = app["fastapi_app_name"]
    secret = app["fastapi_app_secrets"]["HELLO_APP_API_TOKEN"]
    # At -vvv every module's invocation is printed: the probe's shows the header masked.
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in output(runs["with"])
    for run in ("without", "with"):
        assert secret not in output(runs[run]), f"the key is in the output of the deploy {run} it"
    assert secret not in host.check_output("journalctl --no-pager -o cat")
    for where in ("/var/log/nginx", "/var/log/fastapi_app", f"/var/lib/{name}"):
        found = host.run("grep -rlF -- %s %s", secret, where)
        assert found.rc == 1 and not found.stdout, f"the key is in {found.stdout} under {where}"
    assert secret not in host.check_output(f"cat /var/log/fastapi_app/{name}.deploys.jsonl")
