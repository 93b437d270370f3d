"""Filters for what a release runs besides the web service: release commands, processes, timers.

Kept out of Jinja because each is a rule with cases: input checks that name the variable and
the fix, the argv a command runs with, the ExecStart quoting systemd wants, and which host of a
batch runs a once-per-release command.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
from typing import Any

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# Unit names the role already uses for the web service: <app>-handover, <app>-canary.
RESERVED_NAMES = {"handover", "canary"}
# Transient units of a release command are <app>-cmd-<name>; of playbooks/run.yml <app>-run-<n>.
RESERVED_PREFIXES = ("cmd-", "run-")
RUN_CHOICES = ("once", "always")
# How a switch restarts the instances of a process: all at once (systemd stops them in parallel)
# or one after the other.
RESTART_CHOICES = ("parallel", "rolling")
# systemd's "Failed with result '...'" entry (SD_MESSAGE_UNIT_FAILURE_RESULT), logged by PID 1 with
# UNIT= and UNIT_RESULT=; a stop that outlived TimeoutStopSec= ends in SIGKILL and UNIT_RESULT=timeout.
UNIT_FAILURE_RESULT = "d9b373ed55a64feb8242e02dbe79a49c"
STOP_SIGNALS = {s.name for s in signal.Signals if s.name.startswith("SIG") and not s.name.startswith("SIG_")}

COMMAND_DEFAULTS: dict[str, Any] = {"run": "once", "timeout": 600}
PROCESS_DEFAULTS: dict[str, Any] = {"instances": 1, "stop_signal": "SIGTERM", "stop_timeout": 30, "restart": "parallel"}
TIMER_DEFAULTS: dict[str, Any] = {"persistent": True, "randomized_delay": 0, "timeout": 3600}
HEALTH_DEFAULTS: dict[str, Any] = {"status": 200, "contains": "", "headers": {}}
# An HTTP header name (RFC 9110 token).
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Headers the probe itself decides: one GET on a new connection, without a body.
PROBE_HEADERS = {"connection", "content-length", "transfer-encoding", "te", "upgrade", "expect"}


def _is_command(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip()) and "\n" not in value
    return isinstance(value, list) and bool(value) and all(isinstance(a, str) and a and "\n" not in a for a in value)


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _named_entries(var: str, entries: Any, keys: set[str], errors: list[str]) -> list[dict[str, Any]]:
    """The entries that are mappings with a valid name; an error for each one that is not."""
    if not isinstance(entries, list):
        errors.append(f"{var} must be a list of mappings, got {type(entries).__name__}.")
        return []
    good = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            errors.append(f"{var}[{index}] must be a mapping with at least name and command, got {entry!r}.")
            continue
        unknown = sorted(set(entry) - keys)
        if unknown:
            errors.append(f"{var}[{index}] has unknown keys {unknown}; known keys: {sorted(keys)}.")
        name = entry.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            errors.append(f"{var}[{index}].name={name!r} must be a lowercase identifier ([a-z][a-z0-9_-]*, at most 32).")
            continue
        if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES):
            errors.append(f"{var}[{index}].name={name!r} is reserved by the role (handover, canary, cmd-*, run-*): pick another name.")
            continue
        if not _is_command(entry.get("command")):
            errors.append(f"{var}[{index}] ({name}): command must be a one-line string or a non-empty list of strings,"
                          f" got {entry.get('command')!r}.")
        good.append(entry)
    return good


def _shell_operators(command: str) -> list[str]:
    """Control operators of a shell command line (outside quotes): `a && b` has one."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    try:
        return [t for t in lexer if t and set(t) <= set("&|;()<>")]
    except ValueError:  # unbalanced quotes: the shell will say so
        return []


def _duplicates(names: list[str]) -> list[str]:
    return sorted({n for n in names if names.count(n) > 1})


def header_errors(headers: Any, var: str) -> list[str]:
    """Problems of a health check's request headers, naming each header but never its value (a secret)."""
    if headers is None:
        return []
    if not isinstance(headers, dict):
        return [f"{var} must be a mapping of HTTP header names to values, such as {{Authorization: 'Bearer ...'}}."]
    errors = []
    for name, value in headers.items():
        if not isinstance(name, str) or not HEADER_NAME_RE.match(name):
            errors.append(f"{var}: {name!r} is not an HTTP header name (letters, digits and -, such as X-Api-Key).")
        elif name.lower() in PROBE_HEADERS:
            errors.append(f"{var}: {name} is set by the health probe itself (one GET on a new connection); leave it out.")
        elif isinstance(value, bool) or not isinstance(value, (str, int)):
            errors.append(f"{var}: the value of {name} must be a string (its value is not shown: it may be a secret).")
        elif any(c in str(value) for c in "\r\n\0") or not str(value).strip():
            errors.append(f"{var}: the value of {name} must be one non-empty line (its value is not shown: it may be a secret).")
    return errors


def workload_errors(commands: Any, processes: Any, timers: Any, health_checks: Any, health_headers: Any = None) -> list[str]:
    """Every problem of the list inputs and the health checks' headers, each naming the variable, the entry and the fix."""
    errors: list[str] = []
    cmds = _named_entries("fastapi_app_release_commands", commands, {"name", "command", "run", "timeout"}, errors)
    for c in cmds:
        if c.get("run", "once") not in RUN_CHOICES:
            errors.append(f"fastapi_app_release_commands ({c['name']}): run={c['run']!r} must be 'once' (one host per release) or"
                          " 'always' (every host before its switch).")
        if not _int_in(c.get("timeout", 600), 1, 86400):
            errors.append(f"fastapi_app_release_commands ({c['name']}): timeout={c['timeout']!r} must be seconds from 1 to 86400.")
    procs = _named_entries("fastapi_app_processes", processes, {"name", "command", "instances", "stop_signal", "stop_timeout", "restart"},
                           errors)
    for p in procs:
        if not _int_in(p.get("instances", 1), 1, 64):
            errors.append(f"fastapi_app_processes ({p['name']}): instances={p['instances']!r} must be a count from 1 to 64.")
        if p.get("stop_signal", "SIGTERM") not in STOP_SIGNALS:
            errors.append(f"fastapi_app_processes ({p['name']}): stop_signal={p['stop_signal']!r} must be a signal name such as"
                          " SIGTERM, SIGINT or SIGQUIT.")
        if isinstance(p.get("command"), str) and _shell_operators(p["command"]):
            errors.append(f"fastapi_app_processes ({p['name']}): command {p['command']!r} must be one command (no"
                          f" {' '.join(_shell_operators(p['command']))}): the process replaces the shell so that its stop signal"
                          " reaches it; put a pipeline or a sequence in a script of the app.")
        if not _int_in(p.get("stop_timeout", 30), 1, 86400):
            errors.append(f"fastapi_app_processes ({p['name']}): stop_timeout={p['stop_timeout']!r} must be seconds from 1 to 86400:"
                          " how long an in-flight job may take to finish after the stop signal.")
        if p.get("restart", "parallel") not in RESTART_CHOICES:
            errors.append(f"fastapi_app_processes ({p['name']}): restart={p['restart']!r} must be 'parallel' (every instance at once: a"
                          " switch costs one stop_timeout at most) or 'rolling' (one after the other, the others keep working).")
    tims = _named_entries("fastapi_app_timers", timers, {"name", "command", "on_calendar", "persistent", "randomized_delay", "timeout"},
                          errors)
    for t in tims:
        cal = t.get("on_calendar")
        if not isinstance(cal, str) or not cal.strip() or "\n" in cal:
            errors.append(f"fastapi_app_timers ({t['name']}): on_calendar must be a systemd OnCalendar= expression such as"
                          f" 'daily' or '*-*-* 03:00:00', got {cal!r}.")
        if not isinstance(t.get("persistent", True), bool):
            errors.append(f"fastapi_app_timers ({t['name']}): persistent must be true or false.")
        if not _int_in(t.get("randomized_delay", 0), 0, 86400):
            errors.append(f"fastapi_app_timers ({t['name']}): randomized_delay must be seconds from 0 to 86400.")
        if not _int_in(t.get("timeout", 3600), 1, 86400):
            errors.append(f"fastapi_app_timers ({t['name']}): timeout must be seconds from 1 to 86400.")
    for var, names in [("fastapi_app_release_commands", [c["name"] for c in cmds]),
                       ("fastapi_app_processes and fastapi_app_timers", [e["name"] for e in procs + tims])]:
        for dup in _duplicates(names):
            errors.append(f"{var}: the name {dup!r} is used more than once; names become unit names and must be unique.")
    errors.extend(header_errors(health_headers, "fastapi_app_health_headers"))
    if not isinstance(health_checks, list):
        errors.append("fastapi_app_health_checks must be a list of mappings with path, status, contains and headers.")
        health_checks = []
    for index, check in enumerate(health_checks):
        path = check.get("path") if isinstance(check, dict) else None
        if not isinstance(path, str) or not re.match(r"^/[A-Za-z0-9._~/?=&%-]*$", path):
            errors.append(f"fastapi_app_health_checks[{index}]: path must be an absolute URL path such as /healthz/db, got {path!r}.")
            continue
        if set(check) - {"path", "status", "contains", "headers"}:
            errors.append(f"fastapi_app_health_checks[{index}] has unknown keys; known keys: contains, headers, path, status.")
        errors.extend(header_errors(check.get("headers"), f"fastapi_app_health_checks[{index}] ({path}).headers"))
        if not _int_in(check.get("status", 200), 100, 599):
            errors.append(f"fastapi_app_health_checks[{index}] ({path}): status must be an HTTP status from 100 to 599.")
        if not isinstance(check.get("contains", ""), str):
            errors.append(f"fastapi_app_health_checks[{index}] ({path}): contains must be a string the body must hold.")
    return errors


def with_defaults(entries: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The entries with every optional key filled in (argument specs check types, not defaults of list elements)."""
    defaults = {"command": COMMAND_DEFAULTS, "process": PROCESS_DEFAULTS, "timer": TIMER_DEFAULTS, "health": HEALTH_DEFAULTS}[kind]
    return [{**defaults, **entry} for entry in entries]


def health_requests(checks: list[dict[str, Any]], headers: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The health checks as the probe asks them: every optional key filled in, and `headers` (fastapi_app_health_headers)
    sent with each check under the check's own headers, which win for a name in any case."""
    result = []
    for check in with_defaults(checks, "health"):
        own = {str(name): str(value) for name, value in (check.get("headers") or {}).items()}
        names = {name.lower() for name in own}
        common = {str(name): str(value) for name, value in (headers or {}).items() if str(name).lower() not in names}
        result.append({**check, "headers": {**common, **own}})
    return result


def command_argv(command: str | list[str], replace_shell: bool = False) -> list[str]:
    """argv that runs a release command through the release's PATH (its venv's bin first).

    A string is a shell command line; a list is run as it is, looked up on PATH by the shell.
    With replace_shell (processes), the command replaces the shell, so that the unit's stop
    signal reaches the process itself rather than a shell that would not pass it on.
    """
    if isinstance(command, str):
        return ["/bin/sh", "-c", ("exec " if replace_shell else "") + command]
    return ["/bin/sh", "-c", 'exec "$@"', command[0], *command]


def systemd_exec(argv: list[str]) -> str:
    """argv quoted for ExecStart=: each word in double quotes, with systemd's $ and % expansions escaped."""
    def quote(word: str) -> str:
        word = word.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$").replace("%", "%%")
        return f'"{word}"'
    return " ".join(quote(w) for w in argv)


def instances(process: dict[str, Any], app: str) -> list[str]:
    """The instance units of one process: <app>-<name>@1.service ... @<instances>.service."""
    return [f"{app}-{process['name']}@{i}.service" for i in range(1, int(process.get("instances", 1)) + 1)]


def restart_argv(processes: list[dict[str, Any]], app: str, enabled: list[str]) -> list[str]:
    """One command that restarts the enabled instances of `processes` onto the unit files just written.

    The instances of every `parallel` process go in one `systemctl restart`: systemd stops them at
    once and starts each again as soon as it has stopped, so the switch costs the slowest stop (one
    stop_timeout at most), whatever the count. Then each instance of a `rolling` process on its own,
    in order. [] when none of their instances is enabled.
    """
    enabled_set = set(enabled)
    parallel = [u for p in processes if p.get("restart", "parallel") != "rolling" for u in instances(p, app) if u in enabled_set]
    rolling = [[u] for p in processes if p.get("restart") == "rolling" for u in instances(p, app) if u in enabled_set]
    groups = [g for g in [parallel, *rolling] if g]
    if not groups:
        return []
    # Unit names are validated identifiers: safe to split on spaces. Groups are separated by ';'.
    script = ('set -e; group=; for arg; do if [ "$arg" = ";" ]; then systemctl restart $group; group=; '
              'else group="$group $arg"; fi; done; systemctl restart $group')
    args = [arg for g in groups for arg in [";", *g]][1:]
    return ["sh", "-c", script, "restart", *args]


def to_start(wanted: list[str], states: dict[str, dict[str, str]]) -> list[str]:
    """The wanted instances the host-state read did not find running and enabled, in order."""
    return [u for u in wanted if not ((states.get(u) or {}).get("ActiveState") == "active"
                                      and (states.get(u) or {}).get("UnitFileState") == "enabled")]


def killed_units(journal: str, units: list[str]) -> list[str]:
    """The units of `units` that systemd killed after their stop timeout, sorted, from journal
    entries (journalctl -o json, one object a line) of PID 1's failure results."""
    wanted, found = set(units), set()
    for line in journal.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if (isinstance(entry, dict) and entry.get("MESSAGE_ID") == UNIT_FAILURE_RESULT and entry.get("UNIT_RESULT") == "timeout"
                and entry.get("UNIT") in wanted):
            found.add(entry["UNIT"])
    # worker@2 before worker@10.
    return sorted(found, key=lambda unit: re.sub(r"\d+", lambda m: m.group().zfill(8), unit))


def job_units(processes: list[dict[str, Any]], timers: list[dict[str, Any]], app: str) -> list[str]:
    """The unit files of the processes (templates) and timers (a timer and its service each)."""
    return [f"{app}-{p['name']}@.service" for p in processes] + [f"{app}-{t['name']}.{kind}" for t in timers for kind in ("service", "timer")]


def once_runner(states: dict[str, dict[str, Any]], batch: list[str], release: str) -> str:
    """The host of the batch that runs the once-per-release commands of `release`: the first one that switches to it."""
    for host in batch:
        state = states.get(host) or {}
        if state.get("switching") and state.get("release") == release:
            return host
    return ""


def commands_to_run(commands: list[dict[str, Any]], host: str, states: dict[str, dict[str, Any]], batch: list[str]) -> list[dict[str, Any]]:
    """The release commands `host` runs now, in their order.

    Only a host that switches to a new release runs any. `always` commands run on each such host.
    A `once` command runs on one host of the batch (the first that switches) unless a host of this
    run, in this batch or an earlier one, already recorded it for the same release.
    """
    mine = states.get(host) or {}
    if not mine.get("switching"):
        return []
    release = mine.get("release")
    done = {name for state in states.values() if state and state.get("release") == release for name in state.get("done", [])}
    runner = once_runner(states, batch, release)
    return [c for c in commands if c["run"] == "always" or (c["name"] not in done and host == runner)]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "fastapi_app_workload_errors": workload_errors,
            "fastapi_app_with_defaults": with_defaults,
            "fastapi_app_health_requests": health_requests,
            "fastapi_app_command_argv": command_argv,
            "fastapi_app_systemd_exec": systemd_exec,
            "fastapi_app_commands_to_run": commands_to_run,
            "fastapi_app_instances": instances,
            "fastapi_app_job_units": job_units,
            "fastapi_app_restart_argv": restart_argv,
            "fastapi_app_instances_to_start": to_start,
            "fastapi_app_killed_units": killed_units,
        }
