"""Unit tests for plugins/filter/fastapi_app_workloads.py."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from modload import load

wl = load("fastapi_app_workloads", "plugins/filter/fastapi_app_workloads.py")

MIGRATE = {"name": "migrate", "command": "alembic upgrade head"}
WORKER = {"name": "worker", "command": ["python", "-m", "orders_app.worker"]}
REPORT = {"name": "report", "command": "python -m orders_app.report", "on_calendar": "*:0/5"}


def errors(commands: Any = (), processes: Any = (), timers: Any = (), checks: Any = ()) -> list[str]:
    return wl.workload_errors(list(commands), list(processes), list(timers), list(checks))


def test_good_inputs_have_no_errors() -> None:
    assert errors([MIGRATE, {**MIGRATE, "name": "seed", "run": "always", "timeout": 30}],
                  [{**WORKER, "instances": 2, "stop_signal": "SIGINT", "stop_timeout": 60}],
                  [{**REPORT, "persistent": False, "randomized_delay": 30}],
                  [{"path": "/healthz/db", "status": 200, "contains": "ok"}]) == []


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"commands": [{"name": "migrate", "command": 42}]}, ["fastapi_app_release_commands[0] (migrate): command must be"]),
    ({"commands": [{"name": "migrate", "command": []}]}, ["command must be a one-line string or a non-empty list"]),
    ({"commands": [{"name": "migrate", "command": "a\nb"}]}, ["command must be a one-line string"]),
    ({"commands": ["alembic upgrade head"]}, ["fastapi_app_release_commands[0] must be a mapping"]),
    ({"commands": [{**MIGRATE, "run": "twice"}]}, ["run='twice' must be 'once'"]),
    ({"commands": [{**MIGRATE, "timeout": 0}]}, ["timeout=0 must be seconds from 1 to 86400"]),
    ({"commands": [MIGRATE, MIGRATE]}, ["fastapi_app_release_commands: the name 'migrate' is used more than once"]),
    ({"commands": [{**MIGRATE, "comand": "x"}]}, ["fastapi_app_release_commands[0] has unknown keys ['comand']"]),
    ({"processes": [{**WORKER, "instances": 0}]}, ["fastapi_app_processes (worker): instances=0 must be a count from 1 to 64"]),
    ({"processes": [{**WORKER, "stop_signal": "TERM"}]}, ["stop_signal='TERM' must be a signal name"]),
    ({"processes": [{**WORKER, "stop_timeout": -1}]}, ["stop_timeout=-1 must be seconds"]),
    ({"processes": [{**WORKER, "command": "python -m a && python -m b"}]}, ["must be one command (no &&)"]),
    ({"processes": [{**WORKER, "command": "python -m a | tee log"}]}, ["must be one command (no |)"]),
    ({"processes": [{**WORKER, "name": "Worker"}]}, ["fastapi_app_processes[0].name='Worker' must be a lowercase identifier"]),
    ({"processes": [{**WORKER, "name": "handover"}]}, ["name='handover' is reserved by the role"]),
    ({"processes": [WORKER], "timers": [{**REPORT, "name": "worker"}]},
     ["fastapi_app_processes and fastapi_app_timers: the name 'worker' is used more than once"]),
    ({"timers": [{**REPORT, "on_calendar": ""}]}, ["fastapi_app_timers (report): on_calendar must be a systemd OnCalendar="]),
    ({"timers": [{**REPORT, "persistent": "yes"}]}, ["persistent must be true or false"]),
    ({"checks": [{"path": "healthz"}]}, ["fastapi_app_health_checks[0]: path must be an absolute URL path"]),
    ({"checks": [{"path": "/healthz/db", "status": 999}]}, ["status must be an HTTP status"]),
])
def test_each_bad_input_is_named_with_its_fix(kwargs: dict[str, Any], expected: list[str]) -> None:
    found = errors(**kwargs)
    for text in expected:
        assert any(text in e for e in found), (text, found)


def test_a_process_command_with_quoted_operators_is_one_command() -> None:
    assert errors(processes=[{**WORKER, "command": "python -c 'print(1); print(2)' --flag=a&&b"}]) != []
    assert errors(processes=[{**WORKER, "command": "python -c 'print(1); print(2)'"}]) == []


def test_defaults_fill_only_what_is_missing() -> None:
    assert wl.with_defaults([{**WORKER, "instances": 3}], "process") == [
        {"name": "worker", "command": WORKER["command"], "instances": 3, "stop_signal": "SIGTERM", "stop_timeout": 30,
         "restart": "parallel"}]
    assert wl.with_defaults([MIGRATE], "command")[0]["run"] == "once"


def test_a_string_runs_in_a_shell_and_a_list_as_argv_looked_up_on_path() -> None:
    assert wl.command_argv("alembic upgrade head") == ["/bin/sh", "-c", "alembic upgrade head"]
    argv = wl.command_argv(["echo", "a b", "$HOME"])
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert out == "a b $HOME\n"


def test_a_process_replaces_its_shell_so_the_stop_signal_reaches_it() -> None:
    argv = wl.command_argv("sleep 30", replace_shell=True)
    proc = subprocess.Popen(argv)
    try:
        for _unused in range(100):  # the shell execs within milliseconds
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
            if cmdline[0] == b"sleep":
                break
            time.sleep(0.01)
        assert cmdline[:2] == [b"sleep", b"30"], cmdline
    finally:
        proc.terminate()
        assert proc.wait(5) == -signal.SIGTERM


def test_execstart_quoting_keeps_words_and_escapes_systemd_expansions() -> None:
    line = wl.systemd_exec(["/bin/sh", "-c", 'echo "$HOME" 50% \\n'])
    assert line == '"/bin/sh" "-c" "echo \\"$$HOME\\" 50%% \\\\n"'


def test_instances_and_unit_files() -> None:
    assert wl.instances({"name": "worker", "instances": 2}, "shop") == ["shop-worker@1.service", "shop-worker@2.service"]
    assert wl.job_units([{"name": "worker"}], [{"name": "report"}], "shop") == [
        "shop-worker@.service", "shop-report.service", "shop-report.timer"]


COMMANDS = wl.with_defaults([MIGRATE, {"name": "warm", "command": "true", "run": "always"}], "command")


def names(host: str, states: dict[str, Any], batch: list[str]) -> list[str]:
    return [c["name"] for c in wl.commands_to_run(COMMANDS, host, states, batch)]


def test_once_runs_on_the_first_switching_host_and_always_on_each() -> None:
    states = {"a": {"release": "r2", "switching": False, "done": []},
              "b": {"release": "r2", "switching": True, "done": []},
              "c": {"release": "r2", "switching": True, "done": []}}
    assert names("a", states, ["a", "b", "c"]) == []
    assert names("b", states, ["a", "b", "c"]) == ["migrate", "warm"]
    assert names("c", states, ["a", "b", "c"]) == ["warm"]


def test_once_is_not_run_again_when_any_host_recorded_it_for_the_release() -> None:
    earlier_batch = {"a": {"release": "r2", "switching": True, "done": ["migrate"]}}
    states = {**earlier_batch, "b": {"release": "r2", "switching": True, "done": []}}
    assert names("b", states, ["b"]) == ["warm"]
    # A record for another release does not count.
    states["a"]["release"] = "r1"
    assert names("b", states, ["b"]) == ["migrate", "warm"]


KEY = "Bearer s3cret-never-shown"


@pytest.mark.parametrize(("checks", "headers", "expected"), [
    ([{"path": "/healthz/deep", "headers": {"Authorization": KEY}}], {"Host": "api.example.com"}, []),
    ([{"path": "/healthz/deep", "headers": {"X-Api-Key": 1234}}], None, []),
    ([{"path": "/h", "headers": {"Bad Name": KEY}}], None, ["fastapi_app_health_checks[0] (/h).headers: 'Bad Name' is not an HTTP header name"]),
    ([{"path": "/h", "headers": {"Authorization": KEY + "\r\nX-Injected: 1"}}], None,
     ["fastapi_app_health_checks[0] (/h).headers: the value of Authorization must be one non-empty line"]),
    ([{"path": "/h", "headers": {"Authorization": ""}}], None, ["the value of Authorization must be one non-empty line"]),
    ([{"path": "/h", "headers": {"Authorization": [KEY]}}], None, ["the value of Authorization must be a string"]),
    ([{"path": "/h", "headers": "Authorization: x"}], None, ["fastapi_app_health_checks[0] (/h).headers must be a mapping"]),
    ([], {"Connection": "keep-alive"}, ["fastapi_app_health_headers: Connection is set by the health probe itself"]),
    ([], ["Authorization"], ["fastapi_app_health_headers must be a mapping of HTTP header names"]),
])
def test_health_check_headers_are_checked_without_showing_their_values(checks: list[Any], headers: Any, expected: list[str]) -> None:
    found = wl.workload_errors([], [], [], checks, headers)
    assert len(found) == len(expected), found
    for text in expected:
        assert any(text in e for e in found), (text, found)
    assert not any("s3cret" in e for e in found), found


def test_health_requests_send_the_common_headers_under_each_checks_own() -> None:
    checks = [{"path": "/healthz"}, {"path": "/healthz/deep", "status": 200, "headers": {"authorization": KEY, "X-Id": 7}}]
    common = {"Authorization": "Bearer other", "Host": "api.example.com"}
    assert wl.health_requests(checks, common) == [
        {"path": "/healthz", "status": 200, "contains": "", "headers": common},
        {"path": "/healthz/deep", "status": 200, "contains": "", "headers": {"Host": "api.example.com", "authorization": KEY, "X-Id": "7"}},
    ]
    assert wl.health_requests([{"path": "/healthz"}])[0]["headers"] == {}


def test_restart_defaults_to_parallel_and_is_checked() -> None:
    assert wl.with_defaults([WORKER], "process")[0]["restart"] == "parallel"
    assert errors(processes=[{**WORKER, "restart": "rolling"}]) == []
    assert any("restart='all' must be 'parallel'" in e for e in errors(processes=[{**WORKER, "restart": "all"}]))


def run_restart(tmp_path: Path, argv: list[str]) -> list[str]:
    """Runs a restart argv with a fake systemctl that logs each call: the calls, in order."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/calls\n')
    fake.chmod(0o755)
    subprocess.run(argv, check=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    return (tmp_path / "calls").read_text().splitlines()


def test_parallel_instances_restart_in_one_call_whatever_the_count(tmp_path: Path) -> None:
    procs = wl.with_defaults([{**WORKER, "instances": 3}, {"name": "mailer", "command": "x", "instances": 2}], "process")
    enabled = [f"shop-worker@{i}.service" for i in (1, 2, 3)] + ["shop-mailer@1.service", "shop-mailer@2.service"]
    argv = wl.restart_argv(procs, "shop", enabled)
    assert run_restart(tmp_path, argv) == [
        "restart shop-worker@1.service shop-worker@2.service shop-worker@3.service shop-mailer@1.service shop-mailer@2.service"]


def test_rolling_instances_restart_one_after_the_other_after_the_parallel_ones(tmp_path: Path) -> None:
    procs = wl.with_defaults([{**WORKER, "instances": 2, "restart": "rolling"}, {"name": "mailer", "command": "x", "instances": 2}],
                             "process")
    # Only enabled instances: a new instance is started (and enabled) by the task after.
    enabled = ["shop-worker@1.service", "shop-worker@2.service", "shop-mailer@1.service"]
    assert run_restart(tmp_path, wl.restart_argv(procs, "shop", enabled)) == [
        "restart shop-mailer@1.service", "restart shop-worker@1.service", "restart shop-worker@2.service"]
    assert wl.restart_argv(procs, "shop", []) == []


def test_a_failed_restart_fails_the_command(tmp_path: Path) -> None:
    procs = wl.with_defaults([{**WORKER, "restart": "rolling", "instances": 2}], "process")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/calls\nexit 1\n')
    (bin_dir / "systemctl").chmod(0o755)
    argv = wl.restart_argv(procs, "shop", ["shop-worker@1.service", "shop-worker@2.service"])
    assert subprocess.run(argv, check=False, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}).returncode != 0
    assert (tmp_path / "calls").read_text().splitlines() == ["restart shop-worker@1.service"]


def test_instances_to_start_are_those_not_found_running_and_enabled() -> None:
    states = {"shop-worker@1.service": {"ActiveState": "active", "UnitFileState": "enabled"},
              "shop-worker@2.service": {"ActiveState": "failed", "UnitFileState": "enabled"},
              "shop-worker@3.service": {"ActiveState": "active", "UnitFileState": "disabled"}}
    wanted = [f"shop-worker@{i}.service" for i in (1, 2, 3, 4)]
    assert wl.to_start(wanted, states) == wanted[1:]


def journal_line(unit: str, result: str, message_id: str = wl.UNIT_FAILURE_RESULT) -> str:
    return json.dumps({"MESSAGE_ID": message_id, "UNIT": unit, "UNIT_RESULT": result, "MESSAGE": f"{unit}: Failed with result '{result}'."})


def test_killed_units_are_the_apps_instances_whose_stop_timed_out() -> None:
    journal = "\n".join([
        journal_line("shop-worker@10.service", "timeout"),
        journal_line("shop-worker@2.service", "timeout"),
        journal_line("shop-worker@2.service", "timeout"),      # killed twice in the run: named once
        journal_line("shop-worker@3.service", "exit-code"),    # crashed, not killed on a stop
        journal_line("other-worker@1.service", "timeout"),     # not this app's
        journal_line("shop-worker@4.service", "timeout", message_id="0" * 32),
        "-- No entries --",
        "",
    ])
    units = [f"shop-worker@{i}.service" for i in range(1, 11)]
    assert wl.killed_units(journal, units) == ["shop-worker@2.service", "shop-worker@10.service"]
    assert wl.killed_units("", units) == []
