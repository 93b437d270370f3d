#!/usr/bin/python
"""Read, in one module run, the host state the role's no-change path needs.

A re-run that changes nothing used to spend a module run on each of these reads (packages, group,
user, four directories, the release links and records): about 0.35 s each over a container or SSH
connection. Tasks that would change something run only when this state differs from the wanted one.
Read-only: it reports, it never changes the host.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: fastapi_app_host_state
short_description: Read the host state of one fastapi_app deploy
description:
  - Reads which Debian packages are installed, the app's group and user, owner and mode of its
    directories, the C(current) and C(previous) release links, the finished releases and the records
    C(applied.json) and C(current/release.json). Never changes anything.
options:
  packages:
    description: Debian packages to look up.
    type: list
    elements: str
    default: []
  group:
    description: Group name to look up.
    type: str
    required: true
  user:
    description: User name to look up.
    type: str
    required: true
  directories:
    description: Directories whose owner, group and mode are reported.
    type: list
    elements: path
    default: []
  base_dir:
    description: The app's base directory (holds releases/, current, previous and applied.json).
    type: path
    required: true
  unit_prefix:
    description:
      - "Name prefix of the app's process and timer units in I(unit_dir); only files whose first lines hold
        C(# fastapi_app: <unit_prefix without the trailing dash>) count, so another app whose name shares the prefix is never listed."
    type: str
    default: ""
  unit_dir:
    description: Where the role writes unit files.
    type: path
    default: /etc/systemd/system
  files:
    description:
      - "Files whose sha256, owner, group and mode are reported (the role's rendered configuration):
        a template task whose rendering equals the file skips its own module run."
    type: list
    elements: path
    default: []
  paths:
    description:
      - "Paths whose kind (and a link's target) is reported: a task that makes a link or removes a
        file skips its module run when the host already is as wanted."
    type: list
    elements: path
    default: []
  record:
    description: The app's deploy record (JSON lines, plugins/modules/fastapi_app_deploy_record.py).
    type: path
  record_last:
    description: How many of the last deploys in I(record) to return.
    type: int
    default: 0
  releases_detail:
    description:
      - "Also return, per finished release, when it was built and whether its canary failed (C(release_info)), and when it
        served (C(served)), read from the whole deploy record I(record) with its rotated files (C(<record>.1), C(<record>.2.gz)...)."
    type: bool
    default: false
  service_units:
    description:
      - Units whose ActiveState, SubState and LoadState are returned in C(unit_states), together with the app's
        process instances and timers; empty reads no unit state.
    type: list
    elements: str
    default: []
# No GitHub account speaks for the project yet: (!UNKNOWN) is validate-modules' form for that.
author: the fastapi_app authors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Read what a deploy of hello would change
  fastapi_ops.app.fastapi_app_host_state:
    packages: [nginx, python3-venv]
    group: hello
    user: hello
    directories: [/opt/hello, /opt/hello/releases]
    base_dir: /opt/hello
    unit_prefix: hello-
  register: host

- name: Read the last five deploys and the state of the web units
  fastapi_ops.app.fastapi_app_host_state:
    group: hello
    user: hello
    base_dir: /opt/hello
    unit_prefix: hello-
    record: /var/log/fastapi_app/hello.deploys.jsonl
    record_last: 5
    service_units: [hello.socket, hello.service]
  register: status
"""

RETURN = r"""
packages_missing:
  description: Packages of I(packages) that are not installed.
  type: list
  elements: str
  returned: always
group:
  description: gid, or null when the group does not exist.
  type: dict
  returned: always
user:
  description: uid, group, comment, home and shell, or null when the user does not exist.
  type: dict
  returned: always
directories:
  description: "Per path: owner, group and mode (octal string), or null when it is not a directory."
  type: dict
  returned: always
current:
  description: Release id that C(current) points at, or an empty string.
  type: str
  returned: always
previous:
  description: Release id that C(previous) points at, or an empty string.
  type: str
  returned: always
releases:
  description: Finished releases (with release.json) under releases/, oldest first.
  type: list
  elements: str
  returned: always
partial_releases:
  description: "Directories under releases/ without release.json: builds that did not finish."
  type: list
  elements: str
  returned: always
applied:
  description: Content of applied.json, or {}.
  type: dict
  returned: always
current_record:
  description: Content of the current release's release.json, or {}.
  type: dict
  returned: always
units:
  description: The app's process and timer unit files (file names), sorted.
  type: list
  elements: str
  returned: always
instances:
  description: Enabled instances of the app's process units (multi-user.target.wants), sorted.
  type: list
  elements: str
  returned: always
current_since:
  description: When C(current) was last pointed at a release (UTC, ISO 8601), or an empty string.
  type: str
  returned: always
current_age_s:
  description: Seconds since then, or null.
  type: int
  returned: always
deploys:
  description: The last I(record_last) entries of I(record), oldest first; lines that are not JSON objects are skipped.
  type: list
  elements: dict
  returned: always
files:
  description: "Per existing file of I(files): sha256, owner, group and mode (four octal digits)."
  type: dict
  returned: always
paths:
  description: "Per existing path of I(paths): type (file, link, directory, other) and target (a link's, else empty)."
  type: dict
  returned: always
release_info:
  description: "Per finished release: built (UTC, ISO 8601: the mtime of its release.json, written last by the build)
    and canary_failed (a CANARY_FAILED mark)."
  type: dict
  returned: with releases_detail
served:
  description: "Per release: the periods it was current, oldest first, each [from, to] (UTC, ISO 8601; to is empty while it
    serves, C(?) when not known), from the record's successful deploys and rollbacks and, for the serving release, the C(current) link."
  type: dict
  returned: with releases_detail
read_at:
  description: The host's clock when the state was read (seconds since the epoch); the deploy looks for what happened on the host since.
  type: float
  returned: always
unit_states:
  description: "Per unit of I(service_units), instances and timers: ActiveState, SubState, LoadState, UnitFileState; {} without I(service_units)."
  type: dict
  returned: always
"""

import glob
import grp
import gzip
import hashlib
import json
import os
import pwd
import stat
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule


def installed_packages(run_command: Any, packages: list[str]) -> set[str]:
    """Names among packages that dpkg reports as installed."""
    if not packages:
        return set()
    _rc, out, _err = run_command(["dpkg-query", "--show", "--showformat=${db:Status-Status} ${Package}\\n", *packages])
    return {line.split(" ", 1)[1].split(":", 1)[0] for line in out.splitlines() if line.startswith("installed ")}


def group_entry(name: str) -> dict[str, Any] | None:
    try:
        return {"gid": grp.getgrnam(name).gr_gid}
    except KeyError:
        return None


def user_entry(name: str) -> dict[str, Any] | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    try:
        group = grp.getgrgid(entry.pw_gid).gr_name
    except KeyError:
        group = str(entry.pw_gid)
    return {"uid": entry.pw_uid, "group": group, "comment": entry.pw_gecos, "home": entry.pw_dir, "shell": entry.pw_shell}


def name_of(lookup: Any, number: int) -> str:
    try:
        return str(lookup(number)[0])
    except KeyError:
        return str(number)


def ownership(info: os.stat_result) -> dict[str, str]:
    """Owner, group and mode (four octal digits) as the role's file tasks set them."""
    return {"owner": name_of(pwd.getpwuid, info.st_uid), "group": name_of(grp.getgrgid, info.st_gid),
            "mode": f"{stat.S_IMODE(info.st_mode):04o}"}


def directory_entry(path: str) -> dict[str, str] | None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        return None
    return ownership(info)


def link_release(link: Path) -> str:
    """Release id a `releases/<id>` link points at, or '' for no link."""
    try:
        return os.path.basename(os.readlink(link).rstrip("/"))
    except (FileNotFoundError, OSError):
        return ""


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def release_dirs(releases_dir: Path) -> tuple[list[str], list[str]]:
    """Releases whose build finished (release.json is written last), oldest first, and the
    directories of builds that did not finish (a run killed while it built)."""
    found: list[tuple[float, str]] = []
    partial: list[str] = []
    try:
        entries = list(os.scandir(releases_dir))
    except FileNotFoundError:
        return [], []
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        if (Path(entry.path) / "release.json").is_file():
            found.append((entry.stat(follow_symlinks=False).st_mtime, entry.name))
        else:
            partial.append(entry.name)
    return [name for _mtime, name in sorted(found)], sorted(partial)


def role_units(unit_dir: Path, prefix: str) -> tuple[list[str], list[str]]:
    """The app's own process and timer unit files, and the enabled instances of its process templates."""
    if not prefix:
        return [], []
    marker = f"# fastapi_app: {prefix.rstrip('-')}\n"
    units = []
    for path in sorted(unit_dir.glob(f"{prefix}*")):
        try:
            with path.open() as unit:
                head = [unit.readline() for _line in range(3)]
        except (OSError, UnicodeDecodeError):
            continue
        if path.is_file() and not path.is_symlink() and marker in head:
            units.append(path.name)
    templates = {u for u in units if u.endswith("@.service")}
    wants = unit_dir / "multi-user.target.wants"
    instances = sorted(link.name for link in wants.glob(f"{prefix}*@*.service")
                       if link.name.split("@", 1)[0] + "@.service" in templates) if wants.is_dir() else []
    return units, instances


def link_age(link: Path, now: float) -> tuple[str, int | None]:
    """When a link was last replaced (the role renames a new link over it), and its age in seconds."""
    try:
        changed = os.lstat(link).st_mtime
    except FileNotFoundError:
        return "", None
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(changed))
    return stamp, max(0, int(now - changed))


def last_records(path: str | None, count: int) -> list[dict[str, Any]]:
    """The last count JSON-object lines of a JSON-lines file; a torn or foreign line is skipped."""
    if not path or count <= 0:
        return []
    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            return list(deque(json_objects(lines), maxlen=count))
    except FileNotFoundError:
        return []


def json_objects(lines: Any) -> Iterator[dict[str, Any]]:
    """The lines that are JSON objects; a torn or foreign line is skipped."""
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield entry


def record_files(path: str) -> list[str]:
    """The record and the files logrotate made of it, oldest first: <path>.N(.gz) with the highest N
    first (rotate, compress, delaycompress), then <path> itself."""
    rotated = []
    for name in glob.glob(glob.escape(path) + ".*"):
        suffix = name[len(path) + 1:]
        number = suffix[:-3] if suffix.endswith(".gz") else suffix
        if number.isdigit():
            rotated.append((int(number), name))
    return [name for _number, name in sorted(rotated, reverse=True)] + [path]


def all_records(path: str | None) -> list[dict[str, Any]]:
    """Every JSON-object line of the record and its rotated files, oldest first; torn lines and
    unreadable files are skipped."""
    if not path:
        return []
    entries: list[dict[str, Any]] = []
    for name in record_files(path):
        opener = gzip.open if name.endswith(".gz") else open
        try:
            with opener(name, "rt", encoding="utf-8", errors="replace") as lines:
                entries.extend(json_objects(lines))
        except (OSError, EOFError):
            continue
    return entries


def served_periods(entries: list[dict[str, Any]], current: str, current_since: str) -> dict[str, list[list[str]]]:
    """When each release was current: a successful deploy or rollback to another release starts its
    period and ends the one before, a removal ends it. Failed runs are left out (where they stopped
    is not recorded). The serving release whose period the record does not show (record off, or a
    run whose line is missing) serves since the `current` link was last replaced; an end that is not
    known is "?"."""
    periods: dict[str, list[list[str]]] = {}
    serving = ""
    for entry in entries:
        if entry.get("result") != "ok":
            continue
        when, new = str(entry.get("time") or ""), str(entry.get("release_new") or "")
        if entry.get("kind") == "remove" or (new and new != serving):
            if serving:
                periods[serving][-1][1] = when
            serving = "" if entry.get("kind") == "remove" else new
            if serving:
                periods.setdefault(serving, []).append([when, ""])
    if serving and serving != current:
        periods[serving][-1][1] = current_since if current else "?"
    if current and serving != current:
        periods.setdefault(current, []).append([current_since, ""])
    return periods


def release_info(releases_dir: Path, releases: list[str]) -> dict[str, dict[str, Any]]:
    """When each finished release was built (release.json is written last) and whether it failed its canary."""
    info = {}
    for name in releases:
        try:
            built = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.stat(releases_dir / name / "release.json").st_mtime))
        except OSError:
            built = ""
        info[name] = {"built": built, "canary_failed": (releases_dir / name / "CANARY_FAILED").exists()}
    return info


def unit_states(run_command: Any, units: list[str]) -> dict[str, dict[str, str]]:
    """ActiveState, SubState and LoadState of each unit, from one `systemctl show`."""
    if not units:
        return {}
    _rc, out, _err = run_command(["systemctl", "show", "--property=Id,ActiveState,SubState,LoadState,UnitFileState", "--", *units])
    states: dict[str, dict[str, str]] = {}
    # One block per unit, in the order asked, separated by an empty line.
    for unit, block in zip(units, out.strip().split("\n\n")):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        states[unit] = {key: props.get(key, "") for key in ("ActiveState", "SubState", "LoadState", "UnitFileState")}
    return states


def file_entry(path: str) -> dict[str, str] | None:
    """sha256, owner, group and mode of a regular file; None when it is missing or not a file."""
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            return None
        with open(path, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None
    return {"sha256": digest, **ownership(info)}


def path_entry(path: str) -> dict[str, str] | None:
    """The kind of what is at path (file, link, directory, other) and a link's target; None when
    nothing is there."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return {"type": "link", "target": os.readlink(path)}
    kind = "file" if stat.S_ISREG(info.st_mode) else "directory" if stat.S_ISDIR(info.st_mode) else "other"
    return {"type": kind, "target": ""}


def host_state(params: dict[str, Any], run_command: Any) -> dict[str, Any]:
    base = Path(params["base_dir"])
    current = link_release(base / "current")
    units, instances = role_units(Path(params["unit_dir"]), params["unit_prefix"])
    installed = installed_packages(run_command, params["packages"])
    read_at = time.time()
    since, age = link_age(base / "current", read_at)
    releases, partial = release_dirs(base / "releases")
    detail = {}
    if params.get("releases_detail"):
        detail = {"release_info": release_info(base / "releases", releases),
                  "served": served_periods(all_records(params["record"]), current, since)}
    watched = [*params["service_units"], *instances, *(u for u in units if u.endswith(".timer"))] if params["service_units"] else []
    return {
        "packages_missing": [p for p in params["packages"] if p not in installed],
        "group": group_entry(params["group"]),
        "user": user_entry(params["user"]),
        "directories": {path: directory_entry(path) for path in params["directories"]},
        "current": current,
        "previous": link_release(base / "previous"),
        "releases": releases,
        "partial_releases": partial,
        "applied": read_json(base / "applied.json"),
        "current_record": read_json(base / "releases" / current / "release.json") if current else {},
        "units": units,
        "instances": instances,
        "current_since": since,
        "current_age_s": age,
        "deploys": last_records(params["record"], params["record_last"]),
        "unit_states": unit_states(run_command, watched),
        "read_at": read_at,
        "files": {path: entry for path in params["files"] if (entry := file_entry(path))},
        "paths": {path: entry for path in params["paths"] if (entry := path_entry(path))},
        **detail,
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "packages": {"type": "list", "elements": "str", "default": []},
            "group": {"type": "str", "required": True},
            "user": {"type": "str", "required": True},
            "directories": {"type": "list", "elements": "path", "default": []},
            "base_dir": {"type": "path", "required": True},
            "unit_prefix": {"type": "str", "default": ""},
            "unit_dir": {"type": "path", "default": "/etc/systemd/system"},
            "record": {"type": "path"},
            "record_last": {"type": "int", "default": 0},
            "service_units": {"type": "list", "elements": "str", "default": []},
            "releases_detail": {"type": "bool", "default": False},
            "files": {"type": "list", "elements": "path", "default": []},
            "paths": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    module.exit_json(changed=False, **host_state(module.params, module.run_command))


if __name__ == "__main__":
    main()
