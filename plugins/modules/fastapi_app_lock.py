#!/usr/bin/python
"""Take or give back the deploy lock of one app on one host.

Two runs that deploy the same app to the same host at the same time would interleave their
builds, links and restarts. The lock is a file created with O_EXCL: the second run fails at once,
naming the holder and since when. A run that fails gives the lock back (tasks/main.yml, always);
a run that was killed leaves it, and the next run breaks it only when asked to (force).
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: fastapi_app_lock
short_description: Take or give back the deploy lock of a fastapi_app app on a host
description:
  - O(state=held) creates O(path) exclusively with the holder's description and token; it fails when another token holds it,
    unless O(force). Taking a lock the same token holds changes nothing.
  - O(state=released) removes O(path) when the same token holds it; a lock of another token is left alone.
options:
  path:
    description: The lock file (under /run/lock, so a reboot clears it).
    type: path
    required: true
  state:
    description: Whether this run takes the lock or gives it back.
    type: str
    choices: [held, released]
    default: held
  token:
    description: Identifies this run; only it can give the lock back.
    type: str
    required: true
  holder:
    description: Who holds it (user, controller, start), for the message another run gets.
    type: str
    default: ""
  force:
    description: Take the lock even when another run holds it (a run that was killed).
    type: bool
    default: false
  app:
    description: The app's name, for messages.
    type: str
    default: app
# No GitHub account speaks for the project yet: (!UNKNOWN) is validate-modules' form for that.
author: the fastapi_app authors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Take the deploy lock of hello
  fastapi_ops.app.fastapi_app_lock:
    path: /run/lock/fastapi_app-hello.lock
    token: "{{ lock_token }}"
    holder: "{{ lookup('ansible.builtin.env', 'USER') }}@{{ lookup('ansible.builtin.pipe', 'hostname') }}"
    app: hello
  register: lock

- name: Give it back
  fastapi_ops.app.fastapi_app_lock:
    path: /run/lock/fastapi_app-hello.lock
    state: released
    token: "{{ lock_token }}"
"""

RETURN = r"""
previous:
  description:
    - The lock record (token, holder, since, pid) that O(force) broke, or null.
    - When the task fails because another run holds the lock, that run's record.
  type: dict
  returned: always
"""

import json
import os
import time
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule


def read_record(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def held_message(app: str, record: dict[str, Any], now: float) -> str:
    since = record.get("since", 0)
    age = int(now - since) if isinstance(since, (int, float)) and since else None
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since)) if age is not None else "an unknown time"
    return (f"{app} is being deployed on this host by {record.get('holder') or 'an unknown run'} since {started}"
            f"{f' ({age} s ago)' if age is not None else ''}; this run changed nothing. Wait for it, or, if that run was"
            f" killed, run again with -e fastapi_app_break_lock=true.")


def take(path: Path, token: str, holder: str, force: bool, now: float, check_mode: bool) -> dict[str, Any]:
    """changed, previous and msg (msg set: the lock is another run's)."""
    record = {"token": token, "holder": holder, "since": now, "pid": os.getpid()}
    existing = read_record(path) if path.exists() else None
    if existing is not None and existing.get("token") == token:
        return {"changed": False, "previous": None}
    if existing is not None and not force:
        return {"changed": False, "previous": existing, "msg": "held"}
    if check_mode:
        return {"changed": existing is None or force, "previous": existing}
    path.parent.mkdir(parents=True, exist_ok=True)
    if existing is not None:
        path.unlink(missing_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:  # another run took it between our look and our create
        return {"changed": False, "previous": read_record(path), "msg": "held"}
    with os.fdopen(fd, "w") as out:
        json.dump(record, out)
        out.write("\n")
    return {"changed": True, "previous": existing}


def give_back(path: Path, token: str, check_mode: bool) -> bool:
    if read_record(path).get("token") != token:
        return False
    if not check_mode:
        path.unlink(missing_ok=True)
    return True


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["held", "released"], "default": "held"},
            "token": {"type": "str", "required": True, "no_log": False},
            "holder": {"type": "str", "default": ""},
            "force": {"type": "bool", "default": False},
            "app": {"type": "str", "default": "app"},
        },
        supports_check_mode=True,
    )
    p = module.params
    path = Path(p["path"])
    if p["state"] == "released":
        module.exit_json(changed=give_back(path, p["token"], module.check_mode), previous=None)
    now = time.time()
    result = take(path, p["token"], p["holder"], p["force"], now, module.check_mode)
    if result.pop("msg", None):
        module.fail_json(msg=held_message(p["app"], result["previous"] or {}, now), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
