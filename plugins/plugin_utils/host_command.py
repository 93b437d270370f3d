"""Run a command on the managed host through the connection's shell: one round trip, no Python.

A module run costs a host about 0.2 s on top of its command (measured over the containers'
connection: ansible.builtin.command 0.24 s a run, ansible.builtin.raw 0.06 s): Python starts and
AnsiballZ imports ansible.module_utils from a zip without bytecode. The role's action plugins run
their commands this way instead, with the task's environment and become, and with the failure
rule of ansible.builtin.command: a non-zero exit fails.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any


def command_line(environment: str, argv: Sequence[str]) -> str:
    """The shell line: the task's environment assignments (the shell plugin's prefix), then argv quoted."""
    line = shlex.join(argv)
    return f"{environment} {line}" if environment else line


def outcome(argv: Sequence[str], rc: int, stdout: str, stderr: str) -> dict[str, Any]:
    """The result ansible.builtin.command gives for the same run."""
    result: dict[str, Any] = {"cmd": list(argv), "rc": rc, "stdout": stdout.rstrip("\n"), "stderr": stderr.rstrip("\n"), "changed": True}
    result["stdout_lines"] = result["stdout"].splitlines()
    result["stderr_lines"] = result["stderr"].splitlines()
    if rc != 0:
        result.update(failed=True, msg="non-zero return code")
    return result


def can_send_stdin(action: Any) -> bool:
    """Whether the connection takes a command's stdin as it takes a pipelined module (ansible.cfg pipelining)."""
    return bool(action._connection.is_pipelining_enabled())


# The same text for every host: Ansible shows a warning once a run.
PIPELINING_WARNING = (
    "SSH pipelining is off: each of the fastapi_app role's one-round-trip commands becomes a module run with a file transfer, and a "
    "deploy takes about twice as long (a run that changed nothing: 96 s instead of 46 s). Turn it on with pipelining = true in the "
    "[connection] section of ansible.cfg, or ansible_pipelining: true in the inventory; the collection's playbooks turn it on "
    "themselves unless the inventory sets ansible_pipelining: false (keep it off only for hosts whose sudo has requiretty: "
    "docs/collection.md).")


def pipelining_report(enabled: bool) -> dict[str, Any]:
    """The result of fastapi_app_pipelining: the finding, and the warning when it is off."""
    report: dict[str, Any] = {"changed": False, "pipelining": enabled}
    if not enabled:
        report["warnings"] = [PIPELINING_WARNING]
    return report


def run(action: Any, argv: Sequence[str], stdin: bytes | None = None) -> dict[str, Any]:
    """Run argv on the host of `action` (the calling ActionBase); stdin only where can_send_stdin."""
    done = action._low_level_execute_command(command_line(action._compute_environment_string(), argv), in_data=stdin)
    return outcome(argv, done["rc"], done["stdout"], done["stderr"])
