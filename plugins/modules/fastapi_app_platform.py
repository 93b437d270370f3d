#!/usr/bin/python
"""Read, in one module run, what the validation needs to know about a host.

The validation used to spend a module run on each: the setup module for the distribution and the
service manager (about 1.2 s over a container connection, three times a plain module run), the
interpreter's version, and one systemd-analyze per timer. Read-only, also in check mode.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: fastapi_app_platform
short_description: Read the platform facts a fastapi_app deploy is validated against
version_added: 0.10.0
description:
  - Reports the distribution and its major version from C(/etc/os-release), whether systemd is the
    service manager, the Python version and machine of an interpreter, and which systemd calendar
    expressions the host's systemd rejects. Never changes anything.
options:
  python:
    description: Interpreter whose version and machine are reported.
    type: path
    required: true
  calendars:
    description: OnCalendar= expressions for C(systemd-analyze calendar) to judge.
    type: list
    elements: str
    default: []
# No GitHub account speaks for the project yet: (!UNKNOWN) is validate-modules' form for that.
author: the fastapi_app authors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Read the platform a deploy is checked against
  fastapi_ops.app.fastapi_app_platform:
    python: /usr/bin/python3
    calendars: ["daily", "*-*-* 03:00:00"]
  register: platform

- name: Stop on a calendar expression systemd rejects
  ansible.builtin.assert:
    that: platform.calendar_errors == {}
"""

RETURN = r"""
distribution:
  description: The distribution's name as Ansible's facts spell it (Debian), or os-release's NAME.
  type: str
  returned: always
distribution_major_version:
  description: Major part of os-release's VERSION_ID, or an empty string.
  type: str
  returned: always
service_mgr:
  description: systemd when systemd is running the host, else unknown.
  type: str
  returned: always
python_version:
  description: The interpreter's version (3.11.2), or an empty string when it does not run.
  type: str
  returned: always
python_machine:
  description: The interpreter's platform.machine(), or an empty string.
  type: str
  returned: always
python_error:
  description: Why the interpreter did not run, or an empty string.
  type: str
  returned: always
calendar_errors:
  description: "Per rejected expression of I(calendars): systemd-analyze's message."
  type: dict
  returned: always
"""

import os
import platform
import sys
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule

# os-release IDs whose name differs from Ansible's distribution fact.
DISTRIBUTION_NAMES = {"debian": "Debian", "ubuntu": "Ubuntu"}
PROBE = "import platform; print(platform.python_version(), platform.machine())"


def os_release(text: str) -> dict[str, str]:
    """KEY=value lines of os-release(5), quotes removed."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            fields[key.strip()] = value.strip().strip("\"'")
    return fields


def distribution(fields: dict[str, str]) -> tuple[str, str]:
    name = DISTRIBUTION_NAMES.get(fields.get("ID", ""), fields.get("NAME", ""))
    return name, fields.get("VERSION_ID", "").split(".")[0]


def interpreter(run_command: Any, python: str) -> tuple[str, str, str]:
    """Version, machine and error of the interpreter; the module's own one answers without a process."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        return platform.python_version(), platform.machine(), ""
    if not os.access(python, os.X_OK):
        return "", "", f"{python} does not exist or is not executable"
    rc, out, err = run_command([python, "-c", PROBE])
    parts = out.split()
    if rc != 0 or len(parts) != 2:
        return "", "", (err or out).strip() or f"{python} exited with {rc}"
    return parts[0], parts[1], ""


def calendar_errors(run_command: Any, expressions: list[str]) -> dict[str, str]:
    """systemd-analyze's message per rejected expression; one process when all are valid."""
    unique = list(dict.fromkeys(expressions))
    if not unique or run_command(["systemd-analyze", "calendar", *unique])[0] == 0:
        return {}
    errors = {}
    for expression in unique:
        rc, out, err = run_command(["systemd-analyze", "calendar", expression])
        if rc != 0:
            errors[expression] = (err or out).strip()
    return errors


def read_platform(params: dict[str, Any], run_command: Any, root: Path = Path("/")) -> dict[str, Any]:
    release = root / "etc/os-release"
    fields = os_release(release.read_text()) if release.exists() else {}
    name, major = distribution(fields)
    version, machine, error = interpreter(run_command, params["python"])
    return {
        "distribution": name,
        "distribution_major_version": major,
        # sd_booted(3): systemd runs the host exactly when this directory exists.
        "service_mgr": "systemd" if (root / "run/systemd/system").is_dir() else "unknown",
        "python_version": version,
        "python_machine": machine,
        "python_error": error,
        "calendar_errors": calendar_errors(run_command, params["calendars"]),
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "python": {"type": "path", "required": True},
            "calendars": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    module.exit_json(changed=False, **read_platform(module.params, module.run_command))


if __name__ == "__main__":
    main()
