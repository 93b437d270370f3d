"""plugins/modules/fastapi_app_write_file.py run as Ansible runs a module: a process given its arguments."""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from modload import ROOT

MODULE = ROOT / "plugins/modules/fastapi_app_write_file.py"
ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def run(tmp_path: Path, check: bool = False, diff: bool = False, **args: Any) -> dict[str, Any]:
    arguments = tmp_path / "args.json"
    module_args = {"owner": ME, "group": MY_GROUP, **args, "_ansible_check_mode": check, "_ansible_diff": diff}
    arguments.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": module_args}))
    done = subprocess.run([sys.executable, str(MODULE), str(arguments)], capture_output=True, text=True, check=False)
    return json.loads(done.stdout)


def test_writes_a_new_file_then_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "applied.json"
    result = run(tmp_path, path=str(path), content='{"release": "a"}\n', mode="0640")
    assert result["changed"] is True and not result.get("failed"), result
    assert path.read_text() == '{"release": "a"}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o640

    again = run(tmp_path, path=str(path), content='{"release": "a"}\n', mode="0640")
    assert again["changed"] is False, again


def test_new_content_replaces_the_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "release.json"
    path.write_text("old\n")
    inode = path.stat().st_ino
    result = run(tmp_path, path=str(path), content="new\n", diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"] == "old\n" and result["diff"]["after"] == "new\n"
    assert path.read_text() == "new\n" and path.stat().st_ino != inode, "rewritten in place, not replaced"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".fastapi_app-")] == []


def test_a_mode_that_differs_alone_is_a_change(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("same\n")
    path.chmod(0o600)
    assert run(tmp_path, path=str(path), content="same\n", mode="0644")["changed"] is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_check_mode_reports_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("old\n")
    assert run(tmp_path, check=True, path=str(path), content="new\n")["changed"] is True
    assert path.read_text() == "old\n"
    missing = tmp_path / "missing"
    assert run(tmp_path, check=True, path=str(missing), content="x\n")["changed"] is True
    assert not missing.exists()


def test_a_missing_directory_fails_naming_it(tmp_path: Path) -> None:
    result = run(tmp_path, path=str(tmp_path / "no" / "f"), content="x\n")
    assert result["failed"] is True and f"{tmp_path / 'no'} does not exist" in result["msg"]
