"""Unit tests for plugins/modules/fastapi_app_deploy_record.py (the deploy record's writer)."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime
from pathlib import Path


from modload import load

dr = load("fastapi_app_deploy_record", "plugins/modules/fastapi_app_deploy_record.py")

ENTRY = {"app": "hello", "host": "web1", "kind": "deploy", "release_old": "1.0-a", "release_new": "1.1-b",
         "action": "handover", "changes": ["release"], "duration_s": 12.3, "result": "ok", "user": "alice",
         "controller": "ctl"}


class FakeLogger:
    def __init__(self, rc: int = 0) -> None:
        self.rc = rc
        self.calls: list[tuple[list[str], str]] = []

    def __call__(self, argv: list[str], data: str = "") -> tuple[int, str, str]:
        self.calls.append((argv, data))
        return self.rc, "", ""


def journal(data: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in data.splitlines())


def test_each_deploy_is_one_json_line_with_its_utc_time(tmp_path: Path) -> None:
    path = tmp_path / "fastapi_app" / "hello.deploys.jsonl"
    logger = FakeLogger()
    first, sent = dr.record(path, ENTRY, "no-such-group-x", "fastapi_app", logger)
    dr.record(path, {**ENTRY, "release_old": "1.1-b", "release_new": "1.0-a", "kind": "rollback"}, "no-such-group-x",
              "fastapi_app", logger)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sent and lines[0] == first and len(lines) == 2
    assert {k: v for k, v in lines[0].items() if k != "time"} == ENTRY
    assert lines[1]["kind"] == "rollback"
    assert datetime.fromisoformat(first["time"].replace("Z", "+00:00")).utcoffset().total_seconds() == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750


def test_the_journal_gets_a_message_and_one_field_per_value(tmp_path: Path) -> None:
    logger = FakeLogger()
    dr.record(tmp_path / "r.jsonl", {**ENTRY, "result": "failed", "failed_task": "Check\nthat", "error": "boom"},
              "adm", "fastapi_app", logger)
    (argv, data), = logger.calls
    assert argv == ["logger", "--journald"]
    fields = journal(data)
    assert fields["SYSLOG_IDENTIFIER"] == "fastapi_app"
    assert fields["PRIORITY"] == "3"
    assert fields["FASTAPI_APP_RELEASE_NEW"] == "1.1-b"
    assert fields["FASTAPI_APP_CHANGES"] == '["release"]'
    assert fields["FASTAPI_APP_FAILED_TASK"] == "Check that"
    assert fields["MESSAGE"] == ("hello: deploy 1.0-a -> 1.1-b, switch handover, failed in 12.3 s by alice@ctl, "
                                 "at task 'Check that'")


def test_a_first_deploy_and_a_removal_name_no_release_as_none() -> None:
    message = dr.summary({**ENTRY, "release_old": "", "release_new": "", "kind": "remove", "action": "remove"})
    assert message.startswith("hello: remove (none) -> (none), switch remove, ok")


def test_a_journal_that_refuses_is_reported_and_the_line_still_written(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    _unused, sent = dr.record(path, ENTRY, "adm", "fastapi_app", FakeLogger(rc=1))
    assert not sent and len(path.read_text().splitlines()) == 1


def test_an_existing_record_keeps_its_owner_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("")
    os.chmod(path, 0o600)
    dr.record(path, ENTRY, "adm", "fastapi_app", FakeLogger())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
