"""Filters that turn the role's systemd settings into unit lines and systemd-run command lines
(vars/main.yml, tasks/canary.yml): the service, its canary and the transient units of release
commands run with the same settings."""

from __future__ import annotations

from typing import Any


def unit_lines(settings: dict[str, Any]) -> list[str]:
    """Key=value lines: a None value drops the key (an override that removes a default); a list is
    one line per item (ReadWritePaths=, SystemCallFilter=...). Scalars first, then strings, then
    lists, each in the dict's order: the order the role has always written them in."""
    scalars = [f"{key}={value}" for key, value in settings.items() if value is not None and not isinstance(value, (str, list))]
    strings = [f"{key}={value}" for key, value in settings.items() if isinstance(value, str)]
    lists = [f"{key}={item}" for key, value in settings.items() if isinstance(value, list) for item in value]
    return scalars + strings + lists


def systemd_run_argv(unit: str, properties: list[str], options: list[str] | None = None,
                     env: list[str] | None = None, command: list[str] | None = None) -> list[str]:
    """systemd-run of a transient unit that is collected when it ends, with unit properties
    (Key=value) and environment (NAME=value), then the command."""
    return ["systemd-run", f"--unit={unit}", "--quiet", "--collect", *(options or []),
            *(f"--setenv={item}" for item in env or []), *(f"--property={item}" for item in properties), *(command or [])]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"fastapi_app_unit_lines": unit_lines, "fastapi_app_systemd_run_argv": systemd_run_argv}
