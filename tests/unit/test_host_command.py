"""Commands the action plugins run through the connection's shell (plugins/plugin_utils/host_command.py):
the line a POSIX shell runs is the argv given, after the task's environment, and the result reads
as ansible.builtin.command's."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.fastapi_ops.app.plugins.plugin_utils import host_command


@pytest.mark.parametrize("argv", [["printf", "%s|", "a b", "it's", "$HOME", "`id`", "x;y", ""], ["sh", "-c", 'echo "$1"', "name", "*"]])
def test_the_shell_runs_exactly_the_argv(argv: list[str]) -> None:
    line = host_command.command_line("", argv)
    direct = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=True).stdout == direct


def test_the_task_environment_comes_first() -> None:
    line = host_command.command_line("GREETING='hi there'", ["sh", "-c", 'printf %s "$GREETING"'])
    assert subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=True).stdout == "hi there"


def test_a_zero_exit_is_a_change_with_its_output() -> None:
    result = host_command.outcome(["true"], 0, "one\ntwo\n", "")
    assert result == {"cmd": ["true"], "rc": 0, "stdout": "one\ntwo", "stderr": "", "changed": True,
                      "stdout_lines": ["one", "two"], "stderr_lines": []}


def test_a_non_zero_exit_fails() -> None:
    result = host_command.outcome(["false"], 1, "", "no\n")
    assert result["failed"] and result["rc"] == 1 and result["stderr_lines"] == ["no"]
    assert result["msg"] == "non-zero return code"


class FakeConnection:
    def __init__(self, pipelining: bool) -> None:
        self.pipelining = pipelining

    def is_pipelining_enabled(self) -> bool:
        return self.pipelining


class FakeAction:
    """What run() uses of ActionBase: the environment prefix and the low-level command, here run locally."""

    def __init__(self, environment: str = "", pipelining: bool = True) -> None:
        self._connection = FakeConnection(pipelining)
        self.environment = environment

    def _compute_environment_string(self) -> str:
        return self.environment

    def _low_level_execute_command(self, cmd: str, in_data: bytes | None = None) -> dict[str, Any]:
        done = subprocess.run(["sh", "-c", cmd], input=in_data, capture_output=True, check=False)
        return {"rc": done.returncode, "stdout": done.stdout.decode(), "stderr": done.stderr.decode()}


def test_run_gives_stdin_and_the_environment() -> None:
    result = host_command.run(FakeAction("SUFFIX=!"), ["sh", "-c", 'tr a-z A-Z; printf %s "$SUFFIX"'], b"release\n")
    assert result["stdout"] == "RELEASE\n!" and not result.get("failed")


def test_stdin_goes_only_on_a_pipelining_connection() -> None:
    assert host_command.can_send_stdin(FakeAction(pipelining=True))
    assert not host_command.can_send_stdin(FakeAction(pipelining=False))


def test_pipelining_off_is_one_warning_that_says_the_cost_and_the_way_on() -> None:
    assert host_command.pipelining_report(True) == {"changed": False, "pipelining": True}
    report = host_command.pipelining_report(False)
    assert report["pipelining"] is False and report["changed"] is False
    # The same text for every host: Ansible shows a repeated warning once.
    assert report["warnings"] == [host_command.PIPELINING_WARNING] == host_command.pipelining_report(False)["warnings"]
    for said in ("96 s instead of 46 s", "pipelining = true", "[connection]", "ansible_pipelining", "requiretty"):
        assert said in host_command.PIPELINING_WARNING, said


def test_the_playbooks_turn_pipelining_on_unless_the_inventory_keeps_it_off() -> None:
    root = Path(__file__).resolve().parents[2]
    wanted = "{{ hostvars[inventory_hostname].ansible_pipelining | default(true) }}"
    for playbook in sorted((root / "playbooks").glob("*.yml")):
        for play in yaml.safe_load(playbook.read_text()):
            assert play.get("vars", {}).get("ansible_pipelining") == wanted, f"{playbook.name}: {play['name']}"
