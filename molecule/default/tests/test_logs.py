"""playbooks/logs.yml on the serving stack: a reload of the web service makes gunicorn log known lines
(its signal, and each new worker's pid); the playbook prints them, prefixed by the unit, for a window
that holds them, leaves out the lines its --grep does not match and those before its window, changes
nothing (also with --check), and fails naming the variable for a time journalctl cannot read or an
unknown unit selection. Each playbook runs once on every host (a module fixture)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import Any

import pytest
from stack import child_pids, host_output, host_recap, run_playbook


def logs(*args: str, **extra: Any) -> subprocess.CompletedProcess[str]:
    return run_playbook("logs", *args, "-e", json.dumps(extra))


def workers(each: Any, name: str) -> set[str]:
    return child_pids(each, each.check_output(f"systemctl show -p MainPID --value {name}.service"))


@pytest.fixture(scope="module")
def reloaded(hosts: dict[str, Any], app: dict[str, Any]) -> dict[str, Any]:
    """Per host, the workers a `systemctl reload` started (gunicorn logs "Booting worker with pid: N"
    for each), then the playbook's runs: the window with them, the same with a --grep for them, a
    window that starts after them, and two bad inputs."""
    name = app["fastapi_app_name"]
    count = int(app["fastapi_app_gunicorn_workers"])
    before = {hostname: workers(each, name) for hostname, each in hosts.items()}
    for each in hosts.values():
        each.check_output(f"systemctl reload {name}.service")
    booted: dict[str, set[str]] = {}
    deadline = time.monotonic() + 60
    for hostname, each in hosts.items():
        while True:
            now = workers(each, name)
            if len(now) >= count and not now & before[hostname]:
                booted[hostname] = now
                break
            assert time.monotonic() < deadline, f"{hostname}: the reload replaced no workers ({before[hostname]} -> {now})"
            time.sleep(0.5)
    # A start after every line of the reload, in the hosts' own clock and time zone (journalctl's).
    time.sleep(1)
    after = max(each.check_output("date '+%Y-%m-%d %H:%M:%S'") for each in hosts.values())
    time.sleep(1)
    pattern = "Booting worker with pid: (" + "|".join(sorted(pid for pids in booted.values() for pid in pids)) + r")\b"
    return {
        "booted": booted,
        "window": logs(fastapi_app_logs_since="15 min ago"),
        "grep": logs(fastapi_app_logs_since="15 min ago", fastapi_app_logs_grep=pattern, fastapi_app_logs_units=["web"]),
        "later": logs("--check", fastapi_app_logs_since=after, fastapi_app_logs_units="web,processes"),
        "bad_since": logs(fastapi_app_logs_since="the day before never"),
        "bad_units": logs(fastapi_app_logs_units="web,nginx"),
    }


def report(result: subprocess.CompletedProcess[str], hostname: str) -> str:
    """This host's part of the output, folded lines joined again (the YAML callback quotes a line
    with ': ' and doubles its quotes: '+ in the patterns)."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"^ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", host_recap(result.stdout, hostname)), result.stdout[-3000:]
    return " ".join(host_output(result.stdout, hostname).split())


def booting(name: str, pid: str) -> re.Pattern[str]:
    """gunicorn's line for a new worker, prefixed by the unit and a UTC time."""
    return re.compile(rf"{re.escape(name)}\.service \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ \[[^]]+\] \[\d+\] \[INFO\] Booting worker with pid: {pid}\b")


def test_the_window_shows_the_lines_the_app_logged_prefixed_by_unit(host: Any, app: dict[str, Any], reloaded: dict[str, Any]) -> None:
    name, hostname = app["fastapi_app_name"], host.backend.get_hostname()
    text = report(reloaded["window"], hostname)
    assert re.search(rf"{name}: \d+ lines of web, processes, timers, commands \(\d+ units?\) since '+15 min ago'+", text), text[-3000:]
    for pid in reloaded["booted"][hostname]:
        assert booting(name, pid).search(text), f"worker {pid}: {text[-3000:]}"
    assert re.search(rf"{name}\.service \S+Z \[[^]]+\] \[\d+\] \[INFO\] Handling signal: hup", text), text[-3000:]
    # Only this host's workers are in this host's block.
    for other, pids in reloaded["booted"].items():
        if other != hostname:
            assert not [pid for pid in pids if booting(name, pid).search(text)], text[-3000:]


def test_a_grep_leaves_out_the_lines_it_does_not_match(host: Any, app: dict[str, Any], reloaded: dict[str, Any]) -> None:
    name, hostname = app["fastapi_app_name"], host.backend.get_hostname()
    text = report(reloaded["grep"], hostname)
    assert re.search(rf"{name}: \d+ lines of web \(\d+ units?\) since '+15 min ago'+ matching '+Booting worker", text), text[-3000:]
    for pid in reloaded["booted"][hostname]:
        assert booting(name, pid).search(text), f"worker {pid}: {text[-3000:]}"
    assert "Handling signal: hup" not in text, text[-3000:]


def test_lines_before_the_window_are_left_out_and_check_mode_reads_too(host: Any, app: dict[str, Any], reloaded: dict[str, Any]) -> None:
    name, hostname = app["fastapi_app_name"], host.backend.get_hostname()
    text = report(reloaded["later"], hostname)
    assert re.search(rf"{name}: \d+ lines? of web, processes \(\d+ units?\) since '+\d{{4}}-", text), text[-3000:]
    for pid in reloaded["booted"][hostname]:
        assert not booting(name, pid).search(text), f"worker {pid} booted before the window: {text[-3000:]}"
    assert "Handling signal: hup" not in text, text[-3000:]


def test_a_time_journalctl_cannot_read_fails_naming_the_variable(host: Any, reloaded: dict[str, Any]) -> None:
    result = reloaded["bad_since"]
    assert result.returncode != 0, result.stdout[-3000:]
    assert re.search(r"^ok=\d+\s+changed=0\s+unreachable=0\s+failed=1", host_recap(result.stdout, host.backend.get_hostname())), result.stdout[-3000:]
    output = " ".join((result.stdout + result.stderr).split())
    assert "fastapi_app_logs_since='the day before never': journalctl cannot read it as a time" in output, output[-3000:]


def test_an_unknown_unit_selection_fails_naming_the_variable(host: Any, reloaded: dict[str, Any]) -> None:
    result = reloaded["bad_units"]
    assert result.returncode != 0, result.stdout[-3000:]
    assert re.search(r"^ok=\d+\s+changed=0\s+unreachable=0\s+failed=1", host_recap(result.stdout, host.backend.get_hostname())), result.stdout[-3000:]
    output = " ".join((result.stdout + result.stderr).split())
    assert "value of fastapi_app_logs_units must be one or more of: web, processes, timers, commands, all. Got no match for: nginx" in output, output[-3000:]
