"""Hardening under load: bad inputs change nothing, secrets stay in the env file, faults are survived.

Figures come from tools/loadgen.py running inside the host through nginx during the whole
side effect, one phase per step (see side_effect.yml).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

SCENARIO = Path(__file__).resolve().parents[1]
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
BAD_INPUTS = yaml.safe_load((SCENARIO / "vars" / "bad_inputs.yml").read_text())["bad_inputs"]
SECRETS = {"first": "s3cr3t-hardening-first-91d0", "rotated": "s3cr3t-hardening-rotated-5be2"}
# Requests in flight when a process dies may fail; queued ones must not. The load runs 12 clients.
CONCURRENCY = 12


@pytest.fixture(scope="module")
def report(host: Any) -> dict[str, Any]:
    return json.loads(host.file("/var/tmp/load.json").content_string)


@pytest.fixture(scope="module")
def steps(host: Any) -> dict[str, dict[str, Any]]:
    return {r["step"]: r for r in map(json.loads, host.file("/var/tmp/steps.jsonl").content_string.splitlines())}


@pytest.fixture(scope="module")
def states(host: Any) -> dict[str, dict[str, Any]]:
    return {r["step"]: r for r in map(json.loads, host.file("/var/tmp/host_state.jsonl").content_string.splitlines())}


def deploy_log(step: str) -> str:
    return (EPHEMERAL / f"deploy_{step}.log").read_text()


def test_print_figures(report: dict[str, Any]) -> None:
    total = report["total"]
    print(f"\nhardening: {total['requests']} requests, {total['failed']} failed")
    for name, phase in report["phases"].items():
        print(f"  {name:<38} {phase['requests']:>7} requests {phase['failed']:>3} failed p99 {phase['p99_ms']} ms")


def test_at_least_twelve_distinct_bad_inputs() -> None:
    assert len({case["name"] for case in BAD_INPUTS}) >= 12
    assert len({json.dumps(case["vars"], sort_keys=True) for case in BAD_INPUTS}) == len(BAD_INPUTS)


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case["name"] for case in BAD_INPUTS])
def test_bad_input_fails_first_naming_the_variable(host: Any, case: dict[str, Any]) -> None:
    output = deploy_log(case["name"])
    for text in case["expect"]:
        assert text in output, f"{text!r} missing from:\n{output[-3000:]}"
    recap = re.search(rf"^{re.escape(host.backend.get_hostname())}\s*:.*$", output, re.MULTILINE)
    assert recap, output[-2000:]
    assert "changed=0" in recap.group(0) and "failed=1" in recap.group(0), recap.group(0)
    # Failed in input validation, before the first task that could touch the host.
    assert "Install system packages" not in output and "Create the app user" not in output


def test_bad_inputs_leave_the_host_untouched(states: dict[str, dict[str, Any]], steps: dict[str, dict[str, Any]]) -> None:
    before = states["before_bad_inputs"]
    for case in BAD_INPUTS:
        after = {k: v for k, v in states[case["name"]].items() if k != "step"}
        assert after == {k: v for k, v in before.items() if k != "step"}, case["name"]
        assert steps[case["name"]]["main_pid"] == steps["steady"]["main_pid"], case["name"]
        assert steps[case["name"]]["version"] == steps["steady"]["version"], case["name"]


def test_broken_snippet_is_rolled_back_with_nginx_error_shown(host: Any, states, steps, report) -> None:
    output = deploy_log("broken_snippet")
    assert 'unknown directive "this_is_not_a_directive"' in output, output[-3000:]
    assert "was rolled back" in output and "failed=1" in output
    assert {k: v for k, v in states["broken_snippet"].items() if k != "step"} == \
        {k: v for k, v in states["before_bad_inputs"].items() if k != "step"}
    assert "this_is_not_a_directive" not in host.check_output("nginx -T 2>/dev/null")
    assert steps["broken_snippet"]["version"] == steps["steady"]["version"]
    assert report["phases"]["broken_snippet"]["failed"] == 0


def test_no_request_failed_while_bad_inputs_were_tried(report: dict[str, Any]) -> None:
    for name in ["steady", *(case["name"] for case in BAD_INPUTS)]:
        assert report["phases"][name]["requests"] > 0, name
        assert report["phases"][name]["failed"] == 0, (name, report["failures"])


@pytest.mark.parametrize("target", ["worker", "master"])
def test_killed_process_is_replaced_and_only_in_flight_requests_fail(report, steps, target: str) -> None:
    step = f"kill_{target}"
    phase = report["phases"][step]
    print(f"\nkill -9 {target}: {phase['requests']} requests, {phase['failed']} failed (at most {CONCURRENCY} in flight)")
    assert phase["failed"] <= CONCURRENCY, [f for f in report["failures"] if f["phase"] == step]
    before = steps["steady" if target == "worker" else "kill_worker"]
    after = steps[step]
    assert after["version"] == before["version"]
    assert len(after["workers"]) == 2
    if target == "worker":
        assert after["main_pid"] == before["main_pid"], "a worker's death must not restart the master"
        assert len(set(after["workers"]) - set(before["workers"])) == 1
    else:
        assert after["main_pid"] != before["main_pid"], "systemd did not restart the master"
        assert not set(after["workers"]) & set(before["workers"])


def test_crash_at_start_is_bounded_and_reported(host: Any, steps: dict[str, dict[str, Any]]) -> None:
    status = host.file("/var/tmp/crash_status.txt").content_string
    print("\n" + status)
    lines = status.splitlines()
    first, later, socket = (dict(p.split("=", 1) for p in lines[i].split()) for i in (1, 3, 5))
    # systemd gave up (the socket names the start limit) and stays given up: no restart in 5 s.
    assert socket == {"ActiveState": "failed", "Result": "service-start-limit-hit"}
    assert first["ActiveState"] == later["ActiveState"] == "failed"
    assert first["NRestarts"] == later["NRestarts"] and int(first["NRestarts"]) >= 1
    output = deploy_log("deploy_while_crashing")
    assert "failed=1" in output
    assert "hello.service does not start" in output and "crash marker present: refusing to start" in output, output[-3000:]
    assert steps["recovery"]["version"] == steps["crashing_release"]["version"]


def test_nothing_failed_outside_the_fault_phases(report: dict[str, Any]) -> None:
    for name in ["crashing_release", "secret_rotation"]:
        assert report["phases"][name]["failed"] == 0, (name, [f for f in report["failures"] if f["phase"] == name])


def test_secret_rotation_changed_the_env_file_and_the_app_sees_it(host: Any) -> None:
    output = (EPHEMERAL / "secret_diff.log").read_text()
    assert re.search(r"changed: \[[^]]+\]", output.split("TASK [fastapi_app : Write the environment file]")[1].split("TASK [")[0])
    main = host.check_output("systemctl show -p MainPID --value hello.service")
    worker = host.check_output("ps -o pid= --ppid %s", main).split()[0]
    assert f"HELLO_APP_API_TOKEN={SECRETS['rotated']}" in host.check_output("tr '\\0' '\\n' < /proc/%s/environ", worker)


@pytest.mark.parametrize("log", ["secret_check_diff", "secret_diff", *(f"deploy_{case['name']}" for case in BAD_INPUTS),
                                 "deploy_broken_snippet", "deploy_deploy_while_crashing"])
def test_secret_never_in_ansible_output(log: str) -> None:
    output = (EPHEMERAL / f"{log}.log").read_text()
    assert "PLAY RECAP" in output
    for value in SECRETS.values():
        assert value not in output, log


def word(value: str) -> str:
    """A shell word for the value that does not hold it verbatim: sudo logs the command lines it
    runs to the journal, where the searches below would then find the secret themselves."""
    half = len(value) // 2
    return f"'{value[:half]}''{value[half:]}'"


def test_secret_only_in_the_root_only_env_file(host: Any) -> None:
    env = host.file("/etc/hello/env")
    assert (env.user, env.group, env.mode) == ("root", "root", 0o600)
    with host.sudo():
        found = host.run(f"grep -rlF --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev -e {word(SECRETS['rotated'])} "
                         f"-e {word(SECRETS['first'])} /")
    # The journal's binary files are searched too (/var/log/journal, /run/log/journal).
    assert found.stdout.split() == ["/etc/hello/env"], found.stdout
    assert SECRETS["rotated"] in env.content_string


def test_secret_not_in_units_journal_or_process_arguments(host: Any) -> None:
    for unit in ["hello.service", "hello.socket", "hello-handover.service", "nginx.service"]:
        assert SECRETS["rotated"] not in host.check_output("systemctl show %s", unit), unit
    assert SECRETS["rotated"] not in host.check_output("journalctl --no-pager -o verbose")
    assert SECRETS["rotated"] not in host.check_output("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; true")
    # Only the app's own processes (its user) may hold it in their environment.
    holders = host.check_output(f"grep -lF {word(SECRETS['rotated'])} /proc/[0-9]*/environ 2>/dev/null; true").split()
    assert holders, "the app's processes should see the secret"
    owners = {host.check_output("stat -c %%U %s", path.rsplit("/", 1)[0]) for path in holders}
    assert owners == {"hello"}, holders
