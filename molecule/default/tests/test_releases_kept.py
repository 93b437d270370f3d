"""Every kept release is a rollback target: playbooks/status.yml lists them per host (built, served
from-to, which is current and previous) without changing anything, and playbooks/rollback.yml with
-e fastapi_app_release=<id> switches `current` to a kept release older than `previous`, which then
serves. The converged release serves again at the end (a rollback to `previous`).

Runs after test_releases.py, whose deploys leave releases that are neither current nor previous;
alone, the fixture deploys two code variants and the converged source to make one."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from stack import curl_json, host_output, host_recap, run_playbook


def code_variant(root: Path, n: int) -> Path:
    source = root / f"hello_app_kept_{n}"
    example = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "examples" / "hello_app"
    shutil.copytree(example, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".pytest_cache"))
    with (source / "src" / "hello_app" / "__init__.py").open("a") as init:
        init.write(f"# kept releases test, variant {n}\n")
    return source


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def layout(each: Any, name: str) -> dict[str, Any]:
    """The links and the finished releases (those with release.json) on one host."""
    base = f"/opt/{name}"
    finished = each.check_output(f"cd {base}/releases && for d in *; do [ -f \"$d/release.json\" ] && echo \"$d\"; done; true").split()
    # A host with one deploy has no `previous` yet.
    return {"current": os.path.basename(each.check_output(f"readlink {base}/current")),
            "previous": os.path.basename(each.run(f"readlink {base}/previous").stdout.strip()),
            "releases": set(finished)}


def older(state: dict[str, Any]) -> set[str]:
    return state["releases"] - {state["current"], state["previous"]}


@pytest.fixture(scope="module")
def rollback(hosts: dict[str, Any], app: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    name = app["fastapi_app_name"]
    states = {hostname: layout(each, name) for hostname, each in hosts.items()}
    root, n = tmp_path_factory.mktemp("kept"), 0
    while not set.intersection(*(older(state) for state in states.values())) and n < 2:
        n += 1
        succeeded(run_playbook("deploy", "-e", json.dumps({"fastapi_app_source_path": str(code_variant(root, n))})))
        succeeded(run_playbook("deploy"))
        states = {hostname: layout(each, name) for hostname, each in hosts.items()}
    candidates = set.intersection(*(older(state) for state in states.values()))
    assert candidates, f"no release older than previous is kept on every host: {states}"
    # The oldest by build time on the first host (release.json's mtime).
    first = next(iter(hosts.values()))
    built = first.check_output(f"cd /opt/{name}/releases && stat -c '%Y %n' {' '.join(f'{c}/release.json' for c in sorted(candidates))}")
    target = sorted(line.split(" ", 1) for line in built.splitlines())[0][1].split("/")[0]
    status_before = run_playbook("status")
    result = run_playbook("rollback", "-e", f"fastapi_app_release={target}")
    after = {hostname: layout(each, name) for hostname, each in hosts.items()}
    answers = {hostname: curl_json(each, "http://127.0.0.1/version") for hostname, each in hosts.items()}
    records = {hostname: json.loads(each.check_output(f"tail -n 1 /var/log/fastapi_app/{name}.deploys.jsonl")) for hostname, each in hosts.items()}
    status_after = run_playbook("status", "--check")
    restore = run_playbook("rollback")
    restored = {hostname: layout(each, name) for hostname, each in hosts.items()}
    return {"target": target, "before": states, "status_before": status_before, "result": result, "after": after, "answers": answers,
            "records": records, "status_after": status_after, "restore": restore, "restored": restored}


def report(result: subprocess.CompletedProcess[str], hostname: str) -> str:
    succeeded(result)
    assert re.search(r"^ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", host_recap(result.stdout, hostname)), result.stdout[-3000:]
    return " ".join(host_output(result.stdout, hostname).split())


def release_line(text: str, release: str) -> str:
    """The status line of one kept release, '<id> (marks): built ..., served ...' (a quoted item of the
    YAML callback's list: it ends at the quote)."""
    found = re.search(rf"{re.escape(release)}(?: \([^)]*\))?: built [^']*", text)
    assert found, f"{release} is not listed: {text[-3000:]}"
    return found.group(0)


def test_status_lists_every_kept_release_with_current_and_previous(host: Any, app: dict[str, Any], rollback: dict[str, Any]) -> None:
    name, hostname = app["fastapi_app_name"], host.backend.get_hostname()
    state = rollback["before"][hostname]
    text = report(rollback["status_before"], hostname)
    assert f"releases kept ({len(state['releases'])}), newest first:" in text, text[-3000:]
    for release in state["releases"]:
        line = release_line(text, release)
        assert ("(current" in line) == (release == state["current"]), line
        assert ("previous)" in line or "previous," in line) == (release == state["previous"]), line
        assert re.search(r": built \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, ", line), line
    # What serves has an open period; the target served once and was replaced: a period with an end.
    assert re.search(r"served .*\d\dZ - now", release_line(text, state["current"])), text[-3000:]
    assert re.search(r"served .*\d\dZ - \d{4}-\S+Z", release_line(text, rollback["target"])), text[-3000:]
    assert f"{name}: serving {state['current']} since " in text


def test_a_rollback_to_a_named_older_release_switches_current_and_serves_it(host: Any, app: dict[str, Any], rollback: dict[str, Any]) -> None:
    name, hostname, target = app["fastapi_app_name"], host.backend.get_hostname(), rollback["target"]
    before = rollback["before"][hostname]
    stdout = succeeded(rollback["result"])
    assert target not in (before["current"], before["previous"])
    assert rollback["after"][hostname]["current"] == target, rollback["after"]
    assert rollback["after"][hostname]["previous"] == before["current"], rollback["after"]
    assert rollback["answers"][hostname]["release"] == target, rollback["answers"]
    last = rollback["records"][hostname]
    assert (last["kind"], last["release_old"], last["release_new"], last["result"]) == ("rollback", before["current"], target, "ok"), last
    # The connection pipelines (Molecule's ansible.cfg and the playbook): the role does not warn.
    assert "pipelining is off" not in stdout + rollback["result"].stderr
    assert f"{hostname} {name}: release {before['current']} -> {target}, switch: handover" in " ".join(stdout.split()), stdout[-3000:]


def test_status_after_the_rollback_marks_the_named_release_current(host: Any, app: dict[str, Any], rollback: dict[str, Any]) -> None:
    name, hostname, target = app["fastapi_app_name"], host.backend.get_hostname(), rollback["target"]
    text = report(rollback["status_after"], hostname)
    assert f"{name}: serving {target} since " in text, text[-3000:]
    line = release_line(text, target)
    assert "(current)" in line and re.search(r"served .*\d\dZ - \S+Z, \S+Z - now", line), line
    assert "(previous)" in release_line(text, rollback["before"][hostname]["current"])


def test_the_converged_release_serves_again(host: Any, rollback: dict[str, Any]) -> None:
    hostname = host.backend.get_hostname()
    succeeded(rollback["restore"])
    assert rollback["restored"][hostname]["current"] == rollback["before"][hostname]["current"], rollback["restored"]
    assert rollback["restored"][hostname]["previous"] == rollback["target"], rollback["restored"]
