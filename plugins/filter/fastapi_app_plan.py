"""Filters that decide what a deploy changes: how it applies its changes to the running service,
and which files it need not write.

What the service was last started with (applied.json, written after its health
check passed) is compared with what is wanted now, so a run that failed half-way still applies
its change on the next run; what this run changed is counted too, as check mode writes nothing.
"""

from __future__ import annotations

import hashlib
from typing import Any

# The parts that decide the service, in the order the plan names them.
PARTS = ("release", "gunicorn_conf", "env", "socket", "service")


def change_plan(applied: dict[str, str], desired: dict[str, str], changed_now: dict[str, bool]) -> dict[str, Any]:
    """changes (the parts that differ), restart (a new master), restart_socket, units_changed.
    An empty `applied` is a host whose service never started: no socket restart.

    Any change starts a new master next to the serving one, a gunicorn.conf.py change too: a HUP
    stops the old workers as soon as it forks the new ones, and nothing accepts until those have
    imported the app (measured: 0.4 s on an idle host, 1-3 s on a loaded one)."""
    missing = [part for part in PARTS if part not in desired]
    if missing:
        raise ValueError(f"fastapi_app_change_plan: desired lacks {', '.join(missing)}")
    changed = {part: bool(changed_now.get(part)) or applied.get(part, "") != desired[part] for part in PARTS}
    return {
        "changes": [part for part in PARTS if changed[part]],
        "restart": any(changed.values()),
        "restart_socket": bool(applied) and changed["socket"],
        "units_changed": changed["socket"] or changed["service"],
    }


def file_is(files: dict[str, dict[str, str]], path: str, content: str, owner: str, group: str, mode: str) -> bool:
    """The host's file (as the host-state read found it) already has this content, owner, group
    and mode: the task that would write it has nothing to do and skips its module run."""
    found = files.get(path)
    wanted = {"sha256": hashlib.sha256(content.encode()).hexdigest(), "owner": owner, "group": group, "mode": mode.rjust(4, "0")}
    return found == wanted


def disk_sums(files: dict[str, dict[str, str]], entries: list[dict[str, Any]], check_mode: bool) -> list[str]:
    """The sha256 of each entry's file as it is on the host after the configuration phase, '' for
    a missing one: what this run wrote (`written`, outside check mode) is its `content`; any other
    file is what the host-state read found, so the host is not read again."""
    sums = []
    for entry in entries:
        if entry["written"] and not check_mode:
            sums.append(hashlib.sha256(entry["content"].encode()).hexdigest())
        else:
            sums.append(files.get(entry["path"], {}).get("sha256", ""))
    return sums


def unit_is_up(state: dict[str, str]) -> bool:
    """A unit the host-state read found running and enabled: enabling and starting it again would
    change nothing, so the task skips its module run."""
    return state.get("ActiveState") == "active" and state.get("UnitFileState") == "enabled"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"fastapi_app_change_plan": change_plan, "fastapi_app_file_is": file_is, "fastapi_app_disk_sums": disk_sums,
                "fastapi_app_unit_is_up": unit_is_up}
