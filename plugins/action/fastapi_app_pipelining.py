"""Say, once a run, when the connection does not pipeline: the role's one-round-trip commands
(plugins/plugin_utils/host_command.py) then fall back to module runs with file transfers. Runs on
the controller only; the host is not contacted."""

from __future__ import annotations

from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible_collections.fastapi_ops.app.plugins.plugin_utils import host_command


class ActionModule(ActionBase):
    _VALID_ARGS = frozenset(("warn",))
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        report = host_command.pipelining_report(host_command.can_send_stdin(self))
        if not boolean(self._task.args.get("warn", True), strict=False):
            report.pop("warnings", None)
        return {**result, **report}
