"""The systemd sandbox, measured: systemd-analyze's exposure score and the runtime it must allow."""

from __future__ import annotations

import re
from typing import Any

import pytest

from stack import service_show

# The target; the README records what each Debian release measures.
MAX_EXPOSURE = 2.0


@pytest.mark.parametrize("suffix", ["", "-handover"])
def test_exposure_score_is_at_most_two(host: Any, app: dict[str, Any], capsys: Any, suffix: str) -> None:
    unit = f"{app['fastapi_app_name']}{suffix}.service"
    out = host.check_output("systemd-analyze security --no-pager %s", unit)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert match, out
    score = float(match.group(1))
    version = host.check_output("systemctl --version").splitlines()[0]
    with capsys.disabled():
        print(f"\n{host.backend.get_hostname()} ({version}): systemd-analyze security {unit} = {score}")
    assert score <= MAX_EXPOSURE, out


def test_workers_run_uvloop_and_httptools_under_memory_deny_write_execute(host: Any, app: dict[str, Any]) -> None:
    name = app["fastapi_app_name"]
    props = service_show(host, f"{name}.service", "MainPID", "MemoryDenyWriteExecute", "ProtectProc", "SystemCallFilter")
    assert props["MemoryDenyWriteExecute"] == "yes"
    assert props["ProtectProc"] == "invisible"
    workers = host.check_output("ps -o pid= --ppid %s", props["MainPID"]).split()
    assert workers, "no workers"
    for pid in workers:
        maps = host.check_output("cat /proc/%s/maps", pid)
        assert "uvloop" in maps and "httptools" in maps, f"worker {pid} runs without uvloop/httptools"
    assert host.run("curl -sS --fail --max-time 10 http://127.0.0.1%s", app.get("fastapi_app_health_path", "/healthz")).rc == 0


def test_sandbox_applies_to_every_process(host: Any, app: dict[str, Any]) -> None:
    """The kernel's view of the master and each worker: no capabilities, no new privileges, seccomp on."""
    main = service_show(host, f"{app['fastapi_app_name']}.service", "MainPID")["MainPID"]
    pids = [main, *host.check_output("ps -o pid= --ppid %s", main).split()]
    for pid in pids:
        status = dict(line.split(":\t", 1) for line in host.check_output("cat /proc/%s/status", pid).splitlines() if ":\t" in line)
        assert status["CapBnd"].strip() == "0000000000000000", (pid, status["CapBnd"])
        assert status["NoNewPrivs"].strip() == "1", pid
        assert status["Seccomp"].strip() == "2", pid
