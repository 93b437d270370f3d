#!/usr/bin/python
"""Read the journal of one app for playbooks/logs.yml: its web service, processes, timers and
release commands in a time window, each line prefixed by its unit. Read-only.

journalctl itself judges the window and the pattern (its time syntax and PCRE2 are the host's),
each checked alone first so that a bad one is named. Unit globs are matched here against the units
the journal knows: journalctl fails when a glob matches nothing, which is the normal case for an app
without timers or a command that never ran.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: fastapi_app_journal
version_added: 0.10.0
short_description: Read the journal of one fastapi_app app in a time window
description:
  - Selects the app's units (the web service, the process instances, the timers and their jobs, the
    release commands and one-off commands) and returns their journal lines between O(since) and
    O(until) that match O(grep), oldest first, each prefixed by its unit. Never changes anything.
  - Process and timer units are the role's own unit files in O(unit_dir) (a marker line names the app),
    so another app whose name shares the prefix is not read.
options:
  app:
    description: The app's name (fastapi_app_name).
    type: str
    required: true
  units:
    description:
      - Which units - C(web) (C(<app>.service), C(.socket), C(-handover.service), C(-canary.service)), C(processes),
        C(timers), C(commands) (C(<app>-cmd-*), C(<app>-run-*)) or C(all).
    type: list
    elements: str
    choices: [web, processes, timers, commands, all]
    default: [all]
  since:
    description: Start of the window in journalctl's syntax (C(1 hour ago), C(today), C(2026-11-27 14:00)); the host's time zone.
    type: str
    required: true
  until:
    description: End of the window in the same syntax; empty is now.
    type: str
    default: ""
  grep:
    description: Only messages that match this PCRE2 pattern (journalctl --grep; case-insensitive when all lowercase).
    type: str
    default: ""
  lines:
    description: At most this many journal entries, the newest; 0 is all of them.
    type: int
    default: 500
  unit_dir:
    description: Where the role writes unit files.
    type: path
    default: /etc/systemd/system
  base_dir:
    description: The app's base directory, where the report says the release commands' output is kept.
    type: path
    required: true
# No GitHub account speaks for the project yet: (!UNKNOWN) is validate-modules' form for that.
author: the fastapi_app authors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Read the last hour of the web service's journal that mentions a worker
  fastapi_ops.app.fastapi_app_journal:
    app: shop
    units: [web]
    since: 1 hour ago
    grep: worker
    base_dir: /opt/shop
  register: journal
"""

RETURN = r"""
units:
  description: The units whose lines were read (names the journal knows that match the selection).
  type: list
  elements: str
  returned: always
entries:
  description: "The lines, oldest first - time (UTC, ISO 8601), unit, pid and message (one line each)."
  type: list
  elements: dict
  returned: always
truncated:
  description: "Whether older lines of the window were left out (more than O(lines))."
  type: bool
  returned: always
report:
  description: A heading and the lines prefixed by unit, for an operator to read.
  type: list
  elements: str
  returned: always
"""

import fnmatch
import json
import time
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule


GROUPS = ("web", "processes", "timers", "commands")
# The fields that say which unit a line is about: a unit's own output, then systemd's messages about it.
UNIT_FIELDS = ("_SYSTEMD_UNIT", "UNIT", "OBJECT_SYSTEMD_UNIT")
OUTPUT_FIELDS = "MESSAGE,_PID," + ",".join(UNIT_FIELDS)
# Where the variables come from: the journal module's options as the role's inputs name them.
VARIABLES = {"since": "fastapi_app_logs_since", "until": "fastapi_app_logs_until", "grep": "fastapi_app_logs_grep"}


def role_units(unit_dir: Path, app: str) -> tuple[list[str], list[str]]:
    """Unit files named <app>-*: those of the app's processes and timers (their first lines name the
    app), and those of another app whose name starts with <app>- (shop-cmd-x's units are no command
    of shop)."""
    own, foreign = [], []
    for path in sorted(unit_dir.glob(f"{app}-*")):
        try:
            with path.open() as unit:
                head = [unit.readline() for _line in range(3)]
        except (OSError, UnicodeDecodeError):
            continue
        if not path.is_file() or path.is_symlink():
            continue
        named = [line.split(":", 1)[1].strip() for line in head if line.startswith("# fastapi_app:")]
        if named == [app]:
            own.append(path.name)
        elif named:
            foreign.append(path.name)
    return own, foreign


def globs(units: list[str]) -> list[str]:
    """What the journal calls the units of these files: a template's instances, a timer and its job."""
    found = []
    for unit in units:
        if unit.endswith("@.service"):
            found.append(unit.replace("@.service", "@*.service"))
        elif unit.endswith(".timer"):
            found += [unit, unit[: -len(".timer")] + ".service"]
        else:
            found.append(unit)
    return found


def unit_patterns(app: str, groups: list[str], owned: list[str]) -> dict[str, list[str]]:
    """Per group, the unit names and globs it covers."""
    patterns = {
        "web": [f"{app}.service", f"{app}.socket", f"{app}-handover.service", f"{app}-canary.service"],
        # A process template <app>-<name>@.service runs as instances <app>-<name>@N.service.
        "processes": globs([u for u in owned if u.endswith("@.service")]),
        # A timer and the job it starts, <app>-<name>.service.
        "timers": globs([u for u in owned if u.endswith(".timer")]),
        "commands": [f"{app}-cmd-*.service", f"{app}-run-*.service"],
    }
    return {group: patterns[group] for group in GROUPS if group in groups or "all" in groups}


def select_units(patterns: dict[str, list[str]], known: set[str], owned: list[str], foreign: list[str]) -> list[str]:
    """The journal's units that a pattern of the selection matches. A command glob takes no process
    or timer unit of the app (a process named cmd-x) and no unit file of another app."""
    not_commands = globs([u for u in owned if u.endswith(("@.service", ".timer"))]) + globs(foreign)
    chosen = set()
    for group, wanted in patterns.items():
        for unit in known:
            if not any(fnmatch.fnmatchcase(unit, glob) for glob in wanted):
                continue
            if group == "commands" and any(fnmatch.fnmatchcase(unit, glob) for glob in not_commands):
                continue
            chosen.add(unit)
    return sorted(chosen)


def message_text(value: Any) -> str:
    """MESSAGE as journalctl's JSON gives it: a string, null, or a list of bytes (not UTF-8)."""
    if isinstance(value, list):
        return bytes(b for b in value if isinstance(b, int) and 0 <= b < 256).decode("utf-8", "replace")
    return "" if value is None else str(value)


def order(record: dict[str, Any]) -> tuple[int, int]:
    """A record's place in time: its realtime stamp, then its sequence number (the cursor's i=)."""
    try:
        stamp = int(record.get("__REALTIME_TIMESTAMP", 0))
    except (TypeError, ValueError):
        stamp = 0
    cursor = dict(part.split("=", 1) for part in str(record.get("__CURSOR", "")).split(";") if "=" in part)
    try:
        seqnum = int(cursor.get("i", "0"), 16)
    except ValueError:
        seqnum = 0
    return stamp, seqnum


def parse_records(output: str) -> list[dict[str, Any]]:
    """journalctl -o json lines as records, oldest first: with --grep and --lines journalctl may
    print them newest first."""
    records = []
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return sorted(records, key=order)


def entries_of(records: list[dict[str, Any]], units: list[str]) -> list[dict[str, Any]]:
    """One entry per line of each record's message, with the unit it is about."""
    wanted = set(units)
    entries = []
    for record in records:
        named = [record.get(field) for field in UNIT_FIELDS if isinstance(record.get(field), str)]
        unit = next((name for name in named if name in wanted), named[0] if named else "?")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(order(record)[0] / 1_000_000))
        for text in message_text(record.get("MESSAGE")).splitlines() or [""]:
            entries.append({"time": stamp, "unit": unit, "pid": str(record.get("_PID", "")), "message": text})
    return entries


def report(app: str, params: dict[str, Any], units: list[str], entries: list[dict[str, Any]], truncated: bool) -> list[str]:
    """A heading, then one line per journal line: unit (aligned), time, message."""
    groups = [g for g in GROUPS if g in params["units"] or "all" in params["units"]]
    window = f"since {params['since']!r} until {params['until']!r}" if params["until"] else f"since {params['since']!r}"
    lines, count = ("line" if len(entries) == 1 else "lines"), ("unit" if len(units) == 1 else "units")
    heading = f"{app}: {len(entries)} {lines} of {', '.join(groups)} ({len(units)} {count}) {window}"
    if params["grep"]:
        heading += f" matching {params['grep']!r}"
    lines = [heading]
    if truncated:
        lines.append(f"(only the newest {params['lines']}; older lines of the window were left out: raise fastapi_app_logs_lines)")
    width = min(max((len(e["unit"]) for e in entries), default=0), 40)
    lines += [f"{e['unit']:<{width}} {e['time']} {e['message']}" for e in entries]
    if "commands" in groups:
        lines.append(f"(a release command's output goes to the deploy, not the journal: {params['base_dir']}/releases/<release>/commands/<name>.log)")
    return lines


def window_args(params: dict[str, Any]) -> list[str]:
    args = [f"--since={params['since']}"]
    if params["until"]:
        args.append(f"--until={params['until']}")
    if params["grep"]:
        args.append(f"--grep={params['grep']}")
    return args


def check_inputs(run_command: Any, params: dict[str, Any]) -> str | None:
    """journalctl's own judgement of each of since, until and grep alone, then of the window: the
    message that names the variable to fix, or None."""
    checks = [(key, [f"--{key}={params[key]}"]) for key in ("since", "until", "grep") if params[key]]
    checks.append(("window", window_args(params)))
    for key, args in checks:
        rc, err = run_command(["journalctl", "--quiet", "--no-pager", "--lines=0", *args])[0::2]
        # No entries is rc 1 without a word (a --grep that matched nothing); a bad input says why.
        if rc != 0 and err.strip():
            if key == "window":
                return (f"fastapi_app_logs_since={params['since']!r} and fastapi_app_logs_until={params['until']!r}: journalctl refuses the "
                        f"window ({err.strip()}); the start must come before the end.")
            if key == "grep":
                return (f"fastapi_app_logs_grep={params['grep']!r}: journalctl refuses the pattern ({err.strip()}); give a PCRE2 regular "
                        f"expression, such as 'Booting worker' or 'error|warning'.")
            return (f"{VARIABLES[key]}={params[key]!r}: journalctl cannot read it as a time ({err.strip()}); give one such as "
                    f"'1 hour ago', '-30min', 'today', 'yesterday' or '2026-11-27 14:00:00' (the host's time zone).")
    return None


def journal(params: dict[str, Any], run_command: Any) -> dict[str, Any]:
    app = params["app"]
    problem = check_inputs(run_command, params)
    if problem:
        return {"failed": True, "msg": problem}
    owned, foreign = role_units(Path(params["unit_dir"]), app)
    known: set[str] = set()
    for field in UNIT_FIELDS:
        out = run_command(["journalctl", "--no-pager", f"--field={field}"])[1]
        known.update(line.strip() for line in out.splitlines() if line.strip())
    units = select_units(unit_patterns(app, params["units"], owned), known, owned, foreign)
    entries: list[dict[str, Any]] = []
    truncated = False
    if units:
        argv = ["journalctl", "--quiet", "--no-pager", "--output=json", f"--output-fields={OUTPUT_FIELDS}", *window_args(params)]
        if params["lines"] > 0:
            argv.append(f"--lines={params['lines'] + 1}")
        argv += [f"--unit={unit}" for unit in units]
        rc, out, err = run_command(argv)
        if rc != 0 and err.strip():
            return {"failed": True, "msg": f"journalctl failed (exit {rc}): {err.strip()}", "cmd": argv}
        records = parse_records(out)
        if params["lines"] > 0 and len(records) > params["lines"]:
            records, truncated = records[-params["lines"]:], True
        entries = entries_of(records, units)
    return {"changed": False, "units": units, "entries": entries, "truncated": truncated,
            "report": report(app, params, units, entries, truncated)}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "app": {"type": "str", "required": True},
            "units": {"type": "list", "elements": "str", "choices": ["web", "processes", "timers", "commands", "all"], "default": ["all"]},
            "since": {"type": "str", "required": True},
            "until": {"type": "str", "default": ""},
            "grep": {"type": "str", "default": ""},
            "lines": {"type": "int", "default": 500},
            "unit_dir": {"type": "path", "default": "/etc/systemd/system"},
            "base_dir": {"type": "path", "required": True},
        },
        supports_check_mode=True,
    )
    result = journal(module.params, module.run_command)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
