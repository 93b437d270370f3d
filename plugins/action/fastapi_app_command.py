"""Run a command on the host like ansible.builtin.command (argv, stdin), in one round trip without a
Python module (plugins/plugin_utils/host_command.py): the role's build, canary and switch commands."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.fastapi_ops.app.plugins.plugin_utils import host_command


class ActionModule(ActionBase):
    _VALID_ARGS = frozenset(("argv", "stdin"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        argv, stdin = self._task.args.get("argv"), self._task.args.get("stdin")
        if not isinstance(argv, list) or not argv or not all(isinstance(arg, (str, int, float)) for arg in argv):
            raise AnsibleActionFail(f"fastapi_app_command needs argv, a non-empty list of strings, not {argv!r}")
        argv = [str(arg) for arg in argv]
        if stdin is not None and not isinstance(stdin, str):
            raise AnsibleActionFail("fastapi_app_command: stdin must be a string")
        # As ansible.builtin.command does without creates/removes: nothing runs, nothing is claimed.
        if self._task.check_mode:
            return {**result, "skipped": True, "changed": False, "rc": 0, "msg": "Command would have run if not in check mode"}
        if stdin is not None and not host_command.can_send_stdin(self):
            module_args = {"argv": argv, "stdin": stdin, "stdin_add_newline": False}
            return {**result, **self._execute_module(module_name="ansible.legacy.command", module_args=module_args, task_vars=task_vars)}
        data = stdin.encode("utf-8", "surrogateescape") if stdin is not None else None
        return {**result, **host_command.run(self, argv, data)}
