"""Filters that report a deploy: the cause of a failed one (tasks/main.yml's rescue), and
playbooks/fleet.yml's progress: which batch of the rollout runs (as Ansible cuts the play's hosts
into `serial` batches), and the roll-up table of what each host's apps did, built from the role's
fact fastapi_app_results (one entry per app the role ran for on the host)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

NOT_RUN = "not run"
COLUMNS = ("host", "app", "release before -> after", "switch", "seconds", "result")


def _batch_size(serial: Any, total: int) -> int:
    """Ansible's pct_to_int: "25%" of the play's hosts (at least 1), or a count; 0 or less = all."""
    if isinstance(serial, str) and serial.strip().endswith("%"):
        return int(int(serial.strip()[:-1]) / 100.0 * total) or 1
    return int(serial)


def batches(hosts: Sequence[str], serial: Any) -> list[list[str]]:
    """The play's hosts in batches, as ansible-playbook cuts them (PlaybookExecutor._get_serialized_batches):
    serial a count, a percentage of all the play's hosts, or a list of those (the last one repeats)."""
    sizes = list(serial) if isinstance(serial, (list, tuple)) else [serial]
    sizes = sizes or [0]
    left, cut, item = list(hosts), [], 0
    while left:
        size = _batch_size(sizes[item], len(hosts))
        if size <= 0:
            cut.append(left)
            break
        cut.append(left[:size])
        left = left[size:]
        item = min(item + 1, len(sizes) - 1)
    return cut


def fleet_batch(batch: Sequence[str], hosts_all: Sequence[str], serial: Any) -> dict[str, Any]:
    """Which batch `batch` (ansible_play_batch) is among the play's (ansible_play_hosts_all):
    number, count, its hosts, whether it is the last, and the line the fleet prints."""
    cut = batches(hosts_all, serial)
    number = next((index for index, hosts in enumerate(cut, 1) if set(batch) & set(hosts)), 0)
    hosts = cut[number - 1] if number else list(batch)
    return {"number": number, "count": len(cut), "hosts": hosts, "last": number == len(cut),
            "line": f"batch {number} of {len(cut)}: hosts {', '.join(hosts)}"}


def failure_cause(composed: str, app: str, failed_task: str, message: Any = None) -> str:
    """The cause of a failed deploy, in one sentence that names the app: the one a task composed
    (the canary's names the release and the app), else the failed task and its message; without a
    failed task the host was stopped with its batch by another host's failure."""
    if composed:
        return composed
    if failed_task:
        return f"{app} failed in '{failed_task}': {message if message else 'see the failed task above'}"
    return f"{app} stopped with its batch: another host failed (see its error above)"


def _release(name: Any) -> str:
    return str(name) if name else "(none)"


def fleet_rows(hostvars: Mapping[str, Any], hosts: Sequence[str]) -> list[dict[str, str]]:
    """One row per app of each host, in the play's host order: what the role reported for it
    (fastapi_app_results, the last entry of each app), then the apps of fastapi_app_fleet_apps the
    role never ran for on that host (a later batch after a stop, or an app after a failed one)."""
    rows = []
    for host in hosts:
        facts = hostvars[host]
        results: dict[str, Mapping[str, Any]] = {}
        for entry in facts.get("fastapi_app_results") or []:
            results[entry["app"]] = entry
        apps = list(results) + [app["name"] for app in facts.get("fastapi_app_fleet_apps") or [] if app["name"] not in results]
        for app in apps:
            entry = results.get(app)
            if entry is None:
                rows.append({"host": host, "app": app, "before": "-", "after": "-", "switch": "-", "seconds": "-", "result": NOT_RUN})
                continue
            rows.append({"host": host, "app": app, "before": _release(entry.get("release_before")),
                         "after": _release(entry.get("release_after")), "switch": str(entry.get("switch") or "none"),
                         "seconds": f"{float(entry.get('seconds') or 0):.1f}", "result": str(entry["result"])})
    return rows


def fleet_table(rows: Sequence[Mapping[str, str]]) -> list[str]:
    """The rows as aligned text lines, a header first."""
    cells = [list(COLUMNS)] + [[row["host"], row["app"], f"{row['before']} -> {row['after']}", row["switch"],
                                row["seconds"], row["result"]] for row in rows]
    widths = [max(len(line[column]) for line in cells) for column in range(len(COLUMNS))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells]


def fleet_rollup(hostvars: Mapping[str, Any], hosts: Sequence[str]) -> list[str]:
    """The roll-up table of the rollout: fleet_table(fleet_rows(hostvars, hosts))."""
    return fleet_table(fleet_rows(hostvars, hosts))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"fastapi_app_failure_cause": failure_cause, "fastapi_app_fleet_batch": fleet_batch,
                "fastapi_app_fleet_rollup": fleet_rollup}
