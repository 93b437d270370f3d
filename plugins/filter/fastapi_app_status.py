"""Filter for playbooks/status.yml: one app on one host, as lines an operator reads.

Kept out of Jinja because it is a report with cases: no release yet, no record yet, a failed
deploy, units that are down, an age in the unit that reads best.
"""

from __future__ import annotations

from typing import Any


def age(seconds: int | None) -> str:
    """3d 4h, 2h 5m, 7m, 40s: the two largest units are enough to tell a release's age."""
    if seconds is None:
        return "unknown"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2]) if parts else f"{seconds}s"


def health(unit_states: dict[str, dict[str, str]], web: list[str]) -> list[str]:
    """One line each for the web units, the process instances and the timers: ok, or what is down."""
    groups = {"web service": [u for u in unit_states if u in web],
              "processes": [u for u in unit_states if u not in web and u.endswith(".service")],
              "timers": [u for u in unit_states if u.endswith(".timer")]}
    lines = []
    for name, units in groups.items():
        if not units:
            lines.append(f"{name}: none")
            continue
        down = [f"{u} {unit_states[u]['ActiveState']}" for u in units if unit_states[u]["ActiveState"] != "active"]
        lines.append(f"{name}: {'DOWN: ' + ', '.join(down) if down else 'ok'} ({len(units) - len(down)}/{len(units)} active)")
    return lines


def deploy_line(entry: dict[str, Any]) -> str:
    line = (f"{entry.get('time', '?')} {entry.get('kind', 'deploy')} {entry.get('release_old') or '(none)'} -> "
            f"{entry.get('release_new') or '(none)'} switch {entry.get('action', '?')} {entry.get('result', '?')} "
            f"{entry.get('duration_s', '?')} s by {entry.get('user', '?')}@{entry.get('controller', '?')}")
    if entry.get("failed_task"):
        line += f" (failed in '{entry['failed_task']}')"
    return line


def period(span: list[str]) -> str:
    return f"{span[0] or '?'} - {span[1] or 'now'}"


def release_lines(state: dict[str, Any], shown: int = 3) -> list[str]:
    """The kept releases, newest first: built when, served when (the last `shown` periods), which
    one is current and previous; each is a target of playbooks/rollback.yml."""
    info, served = state.get("release_info", {}), state.get("served", {})
    releases = list(reversed(state.get("releases", [])))
    if not releases:
        return ["releases kept: none"]
    lines = [f"releases kept ({len(releases)}), newest first:"]
    for name in releases:
        marks = [mark for mark, is_it in (("current", name == state.get("current")), ("previous", name == state.get("previous")),
                                          ("canary failed", info.get(name, {}).get("canary_failed"))) if is_it]
        periods = served.get(name, [])
        when = ", ".join(period(span) for span in periods[-shown:]) if periods else ""
        if len(periods) > shown:
            when += f" (and {len(periods) - shown} earlier)"
        lines.append(f"  {name}{' (' + ', '.join(marks) + ')' if marks else ''}: built {info.get(name, {}).get('built') or '?'}, "
                     f"{'served ' + when if when else 'never served (per the record)'}")
    if state.get("partial_releases"):
        lines.append(f"unfinished builds (no release.json, removed by the next deploy): {', '.join(state['partial_releases'])}")
    lines.append("roll back to one: playbooks/rollback.yml -e fastapi_app_rollback_to=<release>")
    return lines


def status_lines(state: dict[str, Any], app: str, web: list[str]) -> list[str]:
    """The report of fastapi_app_host_state's answer (with record, record_last and service_units)."""
    if not state.get("current"):
        lines = [f"{app}: no release serves (nothing deployed, or removed)"]
    else:
        lines = [f"{app}: serving {state['current']} since {state['current_since']} ({age(state.get('current_age_s'))} ago)",
                 f"previous: {state.get('previous') or '(none)'}"]
        lines += health(state.get("unit_states", {}), web)
    if "release_info" in state:
        lines += release_lines(state)
    deploys = state.get("deploys", [])
    lines.append(f"last deploys ({len(deploys)}):" if deploys else "last deploys: none recorded")
    lines += [f"  {deploy_line(entry)}" for entry in reversed(deploys)]
    return lines


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"fastapi_app_status_lines": status_lines}
