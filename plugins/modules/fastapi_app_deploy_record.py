#!/usr/bin/python
"""Append one deploy to the app's record on the host: a JSON line and a structured journal entry.

The JSON-lines file is what playbooks/status.yml reads back and what an operator greps; the
journal entry puts the same deploy next to the service's own log lines (journalctl
SYSLOG_IDENTIFIER=fastapi_app). One write(2) of one line on an O_APPEND descriptor, so two apps'
runs or a reader never see half a record.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: fastapi_app_deploy_record
short_description: Append a deploy to the fastapi_app deploy record
description:
  - Adds C(time) (UTC, ISO 8601) to I(entry), appends it as one JSON line to I(path) and sends it to the
    journal with C(logger --journald) as C(FASTAPI_APP_<FIELD>) fields. Creates the file (0640, root and I(group))
    and its directory (0750) when missing. In check mode nothing is written.
options:
  path:
    description: The JSON-lines file.
    type: path
    required: true
  entry:
    description: The deploy's fields (app, host, release_old, release_new, action, result, ...).
    type: dict
    required: true
  group:
    description: Group that may read the record (C(adm) reads the logs under /var/log on Debian); root when it does not exist.
    type: str
    default: adm
  identifier:
    description: SYSLOG_IDENTIFIER of the journal entry.
    type: str
    default: fastapi_app
# No GitHub account speaks for the project yet: (!UNKNOWN) is validate-modules' form for that.
author: the fastapi_app authors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Record a deploy of hello
  fastapi_ops.app.fastapi_app_deploy_record:
    path: /var/log/fastapi_app/hello.deploys.jsonl
    entry:
      app: hello
      host: "{{ inventory_hostname }}"
      release_old: 1.0.0-0123abcdef01
      release_new: 1.0.1-89abcdef0123
      action: restart
      result: ok
"""

RETURN = r"""
entry:
  description: The record as written (with its time).
  type: dict
  returned: always
journal:
  description: Whether the journal took the entry.
  type: bool
  returned: always
"""

import grp
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ansible.module_utils.basic import AnsibleModule

RunCommand = Callable[..., tuple[int, str, str]]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def group_id(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return 0


def append_line(path: Path, line: str, gid: int) -> None:
    """Append line (one write) to path, creating it and its directory root-owned and not world-readable."""
    if not path.parent.is_dir():
        path.parent.mkdir(mode=0o750, parents=True)
        os.chown(path.parent, 0, gid)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        if os.fstat(fd).st_size == 0:
            os.fchown(fd, 0, gid)
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def summary(entry: dict[str, Any]) -> str:
    """The journal entry's MESSAGE: what a `journalctl -t fastapi_app` reader needs on one line."""
    old = entry.get("release_old") or "(none)"
    new = entry.get("release_new") or "(none)"
    text = (f"{entry.get('app')}: {entry.get('kind', 'deploy')} {old} -> {new}, switch {entry.get('action')}, "
            f"{entry.get('result')} in {entry.get('duration_s')} s by {entry.get('user')}@{entry.get('controller')}")
    if entry.get("failed_task"):
        text += f", at task '{entry['failed_task']}'"
    return text


def journal_fields(entry: dict[str, Any], identifier: str) -> str:
    """logger --journald input: one FIELD=value per line, so values lose their line breaks."""
    def flat(value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(value)
        return " ".join(text.splitlines())

    lines = [f"MESSAGE={flat(summary(entry))}", f"SYSLOG_IDENTIFIER={identifier}",
             f"PRIORITY={6 if entry.get('result') == 'ok' else 3}"]
    lines += [f"FASTAPI_APP_{key.upper()}={flat(value)}" for key, value in entry.items()
              if key.replace("_", "").isalnum() and key.isascii()]
    return "\n".join(lines)


def record(path: Path, entry: dict[str, Any], group: str, identifier: str, run_command: RunCommand) -> tuple[dict[str, Any], bool]:
    full = {"time": utc_now(), **entry}
    append_line(path, json.dumps(full), group_id(group))
    rc, _out, _err = run_command(["logger", "--journald"], data=journal_fields(full, identifier))
    return full, rc == 0


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "entry": {"type": "dict", "required": True},
            "group": {"type": "str", "default": "adm"},
            "identifier": {"type": "str", "default": "fastapi_app"},
        },
        supports_check_mode=True,
    )
    if module.check_mode:
        module.exit_json(changed=True, entry={"time": utc_now(), **module.params["entry"]}, journal=False)
    entry, journal = record(Path(module.params["path"]), module.params["entry"], module.params["group"],
                            module.params["identifier"], module.run_command)
    if not journal:
        module.warn("the journal did not take the deploy record (logger --journald failed); the JSON line is written")
    module.exit_json(changed=True, entry=entry, journal=journal)


if __name__ == "__main__":
    main()
