"""The deploy record: converge's deploy is one JSON line and one journal entry, idempotence, check
mode and a drift repair appended nothing, logrotate accepts the rotation, a failed rollback is
recorded and still fails, and playbooks/status.yml reports the serving release read-only.
Runs before test_releases.py, whose deploys would add lines. Each playbook runs once on every host
(a module fixture); each host's test asserts on that host's state and its part of the output."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from stack import host_output, host_recap, run_playbook

FIELDS = {"time", "app", "host", "kind", "release_old", "release_new", "action", "changes", "duration_s", "result",
          "user", "controller"}


def record(host: Any, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in host.check_output(f"cat /var/log/fastapi_app/{name}.deploys.jsonl").splitlines()]


def journal(host: Any, name: str, *matches: str) -> list[dict[str, Any]]:
    out = host.check_output(f"journalctl --no-pager -o json SYSLOG_IDENTIFIER=fastapi_app FASTAPI_APP_APP={name} {' '.join(matches)}")
    return [json.loads(line) for line in out.splitlines()]


def current(host: Any, name: str) -> str:
    return os.path.basename(host.check_output(f"readlink /opt/{name}/current"))


@pytest.fixture(scope="module")
def converged(hosts: dict[str, Any], app: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per host, the record, the journal entries and the serving release as converge left them,
    read before this module's rollback runs on every host."""
    name = app["fastapi_app_name"]
    return {hostname: {"record": record(each, name), "journal": journal(each, name), "current": current(each, name)}
            for hostname, each in hosts.items()}


@pytest.fixture(scope="module")
def rollback(converged: dict[str, dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    """A rollback to a release no host has, run once on every host."""
    return run_playbook("rollback", "-e", "fastapi_app_rollback_to=no-such-release")


@pytest.fixture(scope="module")
def status(rollback: subprocess.CompletedProcess[str]) -> dict[str, subprocess.CompletedProcess[str]]:
    """playbooks/status.yml on every host after the failed rollback, plain and with --check."""
    return {"plain": run_playbook("status"), "check": run_playbook("status", "--check")}


def test_converge_is_the_one_recorded_deploy(host: Any, app: dict[str, Any], converged: dict[str, dict[str, Any]]) -> None:
    name = app["fastapi_app_name"]
    state = converged[host.backend.get_hostname()]
    log = host.file(f"/var/log/fastapi_app/{name}.deploys.jsonl")
    assert (log.user, log.group, log.mode) == ("root", "adm", 0o640)
    entries = state["record"]
    assert len(entries) == 1, entries
    entry = entries[0]
    assert set(entry) == FIELDS, entry
    assert entry["app"] == name and entry["host"] == host.backend.get_hostname()
    assert (entry["kind"], entry["release_old"], entry["release_new"], entry["action"], entry["result"]) == (
        "deploy", "", state["current"], "start", "ok")
    assert "release" in entry["changes"] and entry["duration_s"] > 0
    assert entry["user"] not in ("", "unknown") and entry["controller"]
    when = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    assert when.utcoffset() == timedelta(0) and datetime.now(timezone.utc) - when < timedelta(hours=3)


def test_the_journal_has_the_deploy(host: Any, app: dict[str, Any], converged: dict[str, dict[str, Any]]) -> None:
    name = app["fastapi_app_name"]
    state = converged[host.backend.get_hostname()]
    entries = state["journal"]
    assert entries, "no journal entry for the deploy"
    assert entries[-1]["FASTAPI_APP_RELEASE_NEW"] == state["current"]
    assert entries[-1]["FASTAPI_APP_RESULT"] == "ok" and entries[-1]["PRIORITY"] == "6"
    assert entries[-1]["MESSAGE"].startswith(f"{name}: deploy (none) -> {state['current']}, switch start, ok")


def test_logrotate_accepts_the_rotation(host: Any, app: dict[str, Any]) -> None:
    result = host.run(f"logrotate -d /etc/logrotate.d/fastapi_app-{app['fastapi_app_name']}")
    assert result.rc == 0, result.stderr
    output = result.stdout + result.stderr
    assert f"/var/log/fastapi_app/{app['fastapi_app_name']}.deploys.jsonl" in output, output
    assert "error" not in output.lower(), output


def test_a_failed_rollback_is_recorded_and_fails(host: Any, app: dict[str, Any], converged: dict[str, dict[str, Any]],
                                                 rollback: subprocess.CompletedProcess[str]) -> None:
    name = app["fastapi_app_name"]
    serving = converged[host.backend.get_hostname()]["current"]
    assert rollback.returncode != 0, rollback.stdout[-3000:]
    # This host failed in the role's check, the rescue recorded it and failed the run again.
    recap = host_recap(rollback.stdout, host.backend.get_hostname())
    assert re.search(r"failed=1\s+skipped=\d+\s+rescued=1", recap), rollback.stdout[-3000:]
    entries = record(host, name)
    assert len(entries) == len(converged[host.backend.get_hostname()]["record"]) + 1, entries
    last = entries[-1]
    assert (last["kind"], last["release_old"], last["release_new"], last["result"]) == (
        "rollback", serving, "no-such-release", "failed"), last
    assert last["failed_task"] == "Check that the requested release is built on the host" and "no-such-release" in last["error"]
    assert current(host, name) == serving
    entry = journal(host, name, "FASTAPI_APP_RESULT=failed")[-1]
    assert (entry["PRIORITY"], entry["FASTAPI_APP_RELEASE_NEW"]) == ("3", "no-such-release"), entry


def test_status_names_the_serving_release_and_the_last_deploys(host: Any, app: dict[str, Any],
                                                               status: dict[str, subprocess.CompletedProcess[str]]) -> None:
    name = app["fastapi_app_name"]
    hostname = host.backend.get_hostname()
    serving = current(host, name)
    for result in status.values():
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert re.search(r"^ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", host_recap(result.stdout, hostname)), result.stdout[-2000:]
        # This host's results only; the YAML callback folds long lines: compare with the whitespace collapsed.
        report = " ".join(host_output(result.stdout, hostname).split())
        assert f"{name}: serving {serving} since " in report, result.stdout[-3000:]
        assert "previous: (none)" in report and "web service: ok (2/2 active)" in report, result.stdout[-3000:]
        assert "last deploys (2):" in report, result.stdout[-3000:]
        assert f"rollback {serving} -> no-such-release switch none failed" in report, result.stdout[-3000:]
        assert f"deploy (none) -> {serving} switch start ok" in report, result.stdout[-3000:]
