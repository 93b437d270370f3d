"""The deploy record: converge's deploy is one JSON line and one journal entry, idempotence, check
mode and a drift repair appended nothing, logrotate accepts the rotation, a failed rollback is
recorded and still fails, and playbooks/status.yml reports the serving release read-only.
Runs before test_releases.py, whose deploys would add lines."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from stack import run_playbook

FIELDS = {"time", "app", "host", "kind", "release_old", "release_new", "action", "changes", "duration_s", "result",
          "user", "controller"}


def record(host: Any, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in host.check_output(f"cat /var/log/fastapi_app/{name}.deploys.jsonl").splitlines()]


def current(host: Any, name: str) -> str:
    return os.path.basename(host.check_output(f"readlink /opt/{name}/current"))


def test_converge_is_the_one_recorded_deploy(host: Any, app: dict[str, Any]) -> None:
    name = app["fastapi_app_name"]
    log = host.file(f"/var/log/fastapi_app/{name}.deploys.jsonl")
    assert (log.user, log.group, log.mode) == ("root", "adm", 0o640)
    entries = record(host, name)
    assert len(entries) == 1, entries
    entry = entries[0]
    assert set(entry) == FIELDS, entry
    assert entry["app"] == name and entry["host"] == host.backend.get_hostname()
    assert (entry["kind"], entry["release_old"], entry["release_new"], entry["action"], entry["result"]) == (
        "deploy", "", current(host, name), "start", "ok")
    assert "release" in entry["changes"] and entry["duration_s"] > 0
    assert entry["user"] not in ("", "unknown") and entry["controller"]
    when = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    assert when.utcoffset() == timedelta(0) and datetime.now(timezone.utc) - when < timedelta(hours=3)


def test_the_journal_has_the_deploy(host: Any, app: dict[str, Any]) -> None:
    name = app["fastapi_app_name"]
    out = host.check_output(f"journalctl --no-pager -o json SYSLOG_IDENTIFIER=fastapi_app FASTAPI_APP_APP={name}")
    entries = [json.loads(line) for line in out.splitlines()]
    assert entries, "no journal entry for the deploy"
    assert entries[-1]["FASTAPI_APP_RELEASE_NEW"] == current(host, name)
    assert entries[-1]["FASTAPI_APP_RESULT"] == "ok" and entries[-1]["PRIORITY"] == "6"
    assert entries[-1]["MESSAGE"].startswith(f"{name}: deploy (none) -> {current(host, name)}, switch start, ok")


def test_logrotate_accepts_the_rotation(host: Any, app: dict[str, Any]) -> None:
    result = host.run(f"logrotate -d /etc/logrotate.d/fastapi_app-{app['fastapi_app_name']}")
    assert result.rc == 0, result.stderr
    output = result.stdout + result.stderr
    assert f"/var/log/fastapi_app/{app['fastapi_app_name']}.deploys.jsonl" in output, output
    assert "error" not in output.lower(), output


def test_a_failed_rollback_is_recorded_and_fails(host: Any, app: dict[str, Any]) -> None:
    name = app["fastapi_app_name"]
    serving = current(host, name)
    result = run_playbook("rollback", "--limit", host.backend.get_hostname(), "-e", "fastapi_app_rollback_to=no-such-release")
    assert result.returncode != 0, result.stdout[-3000:]
    # Failed in the role's check, was recorded by the rescue, and the rescue failed the run again
    # (task headers: the YAML callback folds and escapes long messages).
    assert "TASK [fastapi_app : Check that the requested release is built on the host]" in result.stdout, result.stdout[-3000:]
    assert "TASK [fastapi_app : Fail as the deploy did]" in result.stdout, result.stdout[-3000:]
    assert re.search(r"failed=1\s+skipped=\d+\s+rescued=1", result.stdout), result.stdout[-3000:]
    last = record(host, name)[-1]
    assert (last["kind"], last["release_old"], last["release_new"], last["result"]) == (
        "rollback", serving, "no-such-release", "failed"), last
    assert last["failed_task"] == "Check that the requested release is built on the host" and "no-such-release" in last["error"]
    assert current(host, name) == serving
    out = host.check_output(f"journalctl --no-pager -o json SYSLOG_IDENTIFIER=fastapi_app FASTAPI_APP_APP={name} FASTAPI_APP_RESULT=failed")
    entry = json.loads(out.splitlines()[-1])
    assert (entry["PRIORITY"], entry["FASTAPI_APP_RELEASE_NEW"]) == ("3", "no-such-release"), entry


def test_status_names_the_serving_release_and_the_last_deploys(host: Any, app: dict[str, Any]) -> None:
    name = app["fastapi_app_name"]
    serving = current(host, name)
    for check in ([], ["--check"]):
        result = run_playbook("status", "--limit", host.backend.get_hostname(), *check)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert re.search(r"ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", result.stdout), result.stdout[-2000:]
        # The YAML callback folds long lines: compare with the whitespace collapsed.
        report = " ".join(result.stdout.split())
        assert f"{name}: serving {serving} since " in report, result.stdout[-3000:]
        assert "previous: (none)" in report and "web service: ok (2/2 active)" in report, result.stdout[-3000:]
        assert "last deploys (2):" in report, result.stdout[-3000:]
        assert f"rollback {serving} -> no-such-release switch none failed" in report, result.stdout[-3000:]
        assert f"deploy (none) -> {serving} switch start ok" in report, result.stdout[-3000:]
