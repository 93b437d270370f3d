"""Unit tests for plugins/modules/fastapi_app_platform.py (the validation's one read of the host)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from modload import load

pf = load("fastapi_app_platform", "plugins/modules/fastapi_app_platform.py")


def run(argv: list[str]) -> tuple[int, str, str]:
    """AnsibleModule.run_command's contract, on real processes."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


class Recorder:
    """Answers like run(), and keeps the commands it was given."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        self.calls.append(argv)
        return run(argv)


def host(tmp_path: Path, os_release: str | None, systemd: bool) -> Path:
    if os_release is not None:
        (tmp_path / "etc").mkdir()
        (tmp_path / "etc/os-release").write_text(os_release)
    if systemd:
        (tmp_path / "run/systemd/system").mkdir(parents=True)
    return tmp_path


BOOKWORM = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
TRIXIE = 'NAME="Debian GNU/Linux"\nVERSION_ID="13"\nID=debian\n# a comment=ignored\n'


@pytest.mark.parametrize(("text", "expected"), [
    (BOOKWORM, ("Debian", "12")),
    (TRIXIE, ("Debian", "13")),
    ('NAME="Fedora Linux"\nID=fedora\nVERSION_ID=41\n', ("Fedora Linux", "41")),
    ('NAME="Ubuntu"\nID=ubuntu\nVERSION_ID="24.04"\n', ("Ubuntu", "24")),
    # Debian testing/sid: no VERSION_ID, so no supported major version.
    ('NAME="Debian GNU/Linux"\nID=debian\n', ("Debian", "")),
])
def test_distribution_as_ansible_facts_name_it(text: str, expected: tuple[str, str]) -> None:
    assert pf.distribution(pf.os_release(text)) == expected


def test_a_systemd_debian_host(tmp_path: Path) -> None:
    result = pf.read_platform({"python": sys.executable, "calendars": []}, Recorder(), host(tmp_path, BOOKWORM, True))
    assert result["distribution"] == "Debian" and result["distribution_major_version"] == "12"
    assert result["service_mgr"] == "systemd"
    assert result["python_version"] == platform.python_version() and result["python_machine"] == platform.machine()
    assert result["python_error"] == "" and result["calendar_errors"] == {}


def test_a_host_without_systemd_or_os_release(tmp_path: Path) -> None:
    result = pf.read_platform({"python": sys.executable, "calendars": []}, Recorder(), host(tmp_path, None, False))
    assert result["service_mgr"] == "unknown"
    assert result["distribution"] == "" and result["distribution_major_version"] == ""


def test_the_modules_own_interpreter_answers_without_a_process() -> None:
    recorder = Recorder()
    assert pf.interpreter(recorder, sys.executable) == (platform.python_version(), platform.machine(), "")
    assert recorder.calls == []


def test_another_interpreter_is_asked(tmp_path: Path) -> None:
    # A copy of this interpreter under another name: realpath differs, so it runs.
    python = tmp_path / "python-other"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    recorder = Recorder()
    assert pf.interpreter(recorder, str(python)) == (platform.python_version(), platform.machine(), "")
    assert recorder.calls and recorder.calls[0][0] == str(python)


def test_an_interpreter_that_is_missing_or_fails(tmp_path: Path) -> None:
    missing = tmp_path / "python3.99"
    assert pf.interpreter(Recorder(), str(missing)) == ("", "", f"{missing} does not exist or is not executable")
    broken = tmp_path / "python-broken"
    broken.write_text("#!/bin/sh\necho 'cannot start' >&2\nexit 3\n")
    broken.chmod(0o755)
    assert pf.interpreter(Recorder(), str(broken)) == ("", "", "cannot start")


def test_calendars_judged_by_systemd_one_process_when_all_are_valid() -> None:
    recorder = Recorder()
    assert pf.calendar_errors(recorder, ["daily", "*:0/15", "daily"]) == {}
    assert recorder.calls == [["systemd-analyze", "calendar", "daily", "*:0/15"]]

    recorder = Recorder()
    errors = pf.calendar_errors(recorder, ["daily", "every full moon"])
    assert list(errors) == ["every full moon"] and "Failed to parse" in errors["every full moon"]
    assert len(recorder.calls) == 3  # all together, then each alone to name the bad one


def test_no_calendars_no_process() -> None:
    recorder = Recorder()
    assert pf.calendar_errors(recorder, []) == {}
    assert recorder.calls == []
