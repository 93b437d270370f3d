"""Unit tests for plugins/modules/fastapi_app_journal.py (playbooks/logs.yml): which units an app's
selection reads, how journalctl's JSON becomes lines prefixed by unit, and that a window or pattern
journalctl refuses fails naming the variable. journalctl is faked; the Molecule default scenario
runs the real one (molecule/default/tests/test_logs.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modload import load

jr = load("fastapi_app_journal", "plugins/modules/fastapi_app_journal.py")


def unit_file(unit_dir: Path, name: str, app: str | None) -> None:
    unit_dir.mkdir(parents=True, exist_ok=True)
    marker = f"# fastapi_app: {app}\n" if app else ""
    (unit_dir / name).write_text(f"# Ansible managed\n{marker}[Service]\n")


def record(stamp_s: float, message: Any, seq: int = 1, **fields: str) -> str:
    return json.dumps({"__REALTIME_TIMESTAMP": str(int(stamp_s * 1_000_000)), "__CURSOR": f"s=ab;i={seq:x};b=cd", "MESSAGE": message,
                       **fields})


class FakeJournalctl:
    """journalctl's answers: the units the journal knows, the window's records, and errors for inputs it refuses."""

    def __init__(self, known: list[str], output: str = "", refuse: dict[str, str] | None = None) -> None:
        self.known, self.output, self.refuse = known, output, refuse or {}
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        self.calls.append(argv)
        for arg in argv:
            if arg in self.refuse:
                return 1, "", self.refuse[arg] + "\n"
        if any(arg.startswith("--field=") for arg in argv):
            return 0, "".join(f"{unit}\n" for unit in self.known), ""
        if "--lines=0" in argv:
            return 0, "", ""
        return (0 if self.output else 1), self.output, ""


def params(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    values = {"app": "shop", "units": ["all"], "since": "1 hour ago", "until": "", "grep": "", "lines": 500,
              "unit_dir": str(tmp_path / "units"), "base_dir": "/opt/shop"}
    values.update(overrides)
    return values


KNOWN = ["shop.service", "shop.socket", "shop-handover.service", "shop-worker@1.service", "shop-worker@2.service", "shop-report.service",
         "shop-report.timer", "shop-cmd-migrate.service", "shop-run-20261127140000.service", "shop-cmd-x@1.service", "shop-admin.service",
         "nginx.service", "init.scope"]


@pytest.fixture
def units(tmp_path: Path) -> Path:
    unit_dir = tmp_path / "units"
    unit_file(unit_dir, "shop-worker@.service", "shop")
    unit_file(unit_dir, "shop-report.service", "shop")
    unit_file(unit_dir, "shop-report.timer", "shop")
    # Another app whose name starts with shop-: its process is no release command of shop.
    unit_file(unit_dir, "shop-cmd-x@.service", "shop-cmd-x")
    unit_file(unit_dir, "shop-notes.service", None)  # no marker: not the role's
    return unit_dir


@pytest.mark.parametrize(("selection", "expected"), [
    (["web"], ["shop-handover.service", "shop.service", "shop.socket"]),
    (["processes"], ["shop-worker@1.service", "shop-worker@2.service"]),
    (["timers"], ["shop-report.service", "shop-report.timer"]),
    (["commands"], ["shop-cmd-migrate.service", "shop-run-20261127140000.service"]),
    (["web", "commands"], ["shop-cmd-migrate.service", "shop-handover.service", "shop-run-20261127140000.service", "shop.service",
                           "shop.socket"]),
    (["all"], ["shop-cmd-migrate.service", "shop-handover.service", "shop-report.service", "shop-report.timer",
               "shop-run-20261127140000.service", "shop-worker@1.service", "shop-worker@2.service", "shop.service", "shop.socket"]),
])
def test_a_selection_reads_the_units_of_its_groups_and_no_other_apps(units: Path, selection: list[str], expected: list[str]) -> None:
    owned, foreign = jr.role_units(units, "shop")
    assert owned == ["shop-report.service", "shop-report.timer", "shop-worker@.service"]
    assert foreign == ["shop-cmd-x@.service"]
    assert jr.select_units(jr.unit_patterns("shop", selection, owned), set(KNOWN), owned, foreign) == expected


def test_a_process_named_like_a_command_is_a_process() -> None:
    owned = ["shop-cmd-sync@.service"]
    patterns = jr.unit_patterns("shop", ["commands"], owned)
    assert jr.select_units(patterns, {"shop-cmd-sync@1.service", "shop-cmd-migrate.service"}, owned, []) == ["shop-cmd-migrate.service"]


def test_lines_are_oldest_first_prefixed_by_the_unit_they_are_about(tmp_path: Path, units: Path) -> None:
    # journalctl with --grep and --lines can print newest first; systemd's own lines name the unit in UNIT.
    output = "\n".join([
        record(1_800_000_002, "Booting worker with pid: 7", seq=3, _SYSTEMD_UNIT="shop.service", _PID="6"),
        record(1_800_000_001, "Started shop.service.", seq=2, _SYSTEMD_UNIT="init.scope", UNIT="shop.service", _PID="1"),
        record(1_800_000_001, "first\nsecond", seq=1, _SYSTEMD_UNIT="shop-worker@1.service"),
        record(1_800_000_003, [104, 105, 255], seq=4, _SYSTEMD_UNIT="shop-worker@2.service"),
        "not json",
    ])
    fake = FakeJournalctl(KNOWN, output)
    result = jr.journal(params(tmp_path, units=["web", "processes"]), fake)
    assert [(e["unit"], e["message"]) for e in result["entries"]] == [
        ("shop-worker@1.service", "first"), ("shop-worker@1.service", "second"), ("shop.service", "Started shop.service."),
        ("shop.service", "Booting worker with pid: 7"), ("shop-worker@2.service", "hi\ufffd")]
    assert result["entries"][0]["time"] == "2027-01-15T08:00:01Z"
    assert result["changed"] is False and result["truncated"] is False
    assert result["report"] == [
        "shop: 5 lines of web, processes (5 units) since '1 hour ago'",
        "shop-worker@1.service 2027-01-15T08:00:01Z first",
        "shop-worker@1.service 2027-01-15T08:00:01Z second",
        "shop.service          2027-01-15T08:00:01Z Started shop.service.",
        "shop.service          2027-01-15T08:00:02Z Booting worker with pid: 7",
        "shop-worker@2.service 2027-01-15T08:00:03Z hi\ufffd",
    ]
    read = fake.calls[-1]
    assert read[:3] == ["journalctl", "--quiet", "--no-pager"] and "--since=1 hour ago" in read and "--lines=501" in read
    assert [a for a in read if a.startswith("--unit=")] == [f"--unit={u}" for u in result["units"]]


def test_the_window_the_pattern_and_the_limit_go_to_journalctl_and_older_lines_are_left_out(tmp_path: Path, units: Path) -> None:
    output = "\n".join(record(1_800_000_000 + n, f"line {n}", seq=n, _SYSTEMD_UNIT="shop.service") for n in range(4))
    fake = FakeJournalctl(KNOWN, output)
    result = jr.journal(params(tmp_path, units=["web"], since="2026-11-27 14:00", until="2026-11-27 15:00", grep="line", lines=3), fake)
    assert fake.calls[-1][5:9] == ["--since=2026-11-27 14:00", "--until=2026-11-27 15:00", "--grep=line", "--lines=4"]
    assert [e["message"] for e in result["entries"]] == ["line 1", "line 2", "line 3"] and result["truncated"]
    assert result["report"][:2] == [
        "shop: 3 lines of web (3 units) since '2026-11-27 14:00' until '2026-11-27 15:00' matching 'line'",
        "(only the newest 3; older lines of the window were left out: raise fastapi_app_logs_lines)"]
    every = FakeJournalctl(KNOWN, output)
    assert len(jr.journal(params(tmp_path, units=["web"], lines=0), every)["entries"]) == 4
    assert not [a for a in every.calls[-1] if a.startswith("--lines")]


def test_no_lines_and_no_units_are_a_report_not_a_failure(tmp_path: Path, units: Path) -> None:
    # A --grep that matches nothing: journalctl exits 1 without a word.
    result = jr.journal(params(tmp_path, units=["web"], grep="nothing"), FakeJournalctl(KNOWN, ""))
    assert result["entries"] == [] and result["report"][0] == "shop: 0 lines of web (3 units) since '1 hour ago' matching 'nothing'"
    # An app without timers: no unit to read, journalctl is not asked for lines (a glob that matches nothing fails it).
    fake = FakeJournalctl(["shop.service"])
    result = jr.journal(params(tmp_path, app="shop", units=["timers"], unit_dir=str(tmp_path / "none")), fake)
    assert result["units"] == [] and result["report"] == ["shop: 0 lines of timers (0 units) since '1 hour ago'"]
    assert not [c for c in fake.calls if "--output=json" in c]


def test_the_commands_note_says_where_their_output_is(tmp_path: Path, units: Path) -> None:
    result = jr.journal(params(tmp_path, units=["commands"]), FakeJournalctl(KNOWN, ""))
    assert result["report"][-1] == ("(a release command's output goes to the deploy, not the journal: "
                                    "/opt/shop/releases/<release>/commands/<name>.log)")


@pytest.mark.parametrize(("overrides", "refused", "named"), [
    ({"since": "bogus"}, "--since=bogus", "fastapi_app_logs_since='bogus': journalctl cannot read it as a time (Failed to parse timestamp: bogus)"),
    ({"until": "soon"}, "--until=soon", "fastapi_app_logs_until='soon': journalctl cannot read it as a time"),
    ({"grep": "("}, "--grep=(", "fastapi_app_logs_grep='(': journalctl refuses the pattern"),
])
def test_an_input_journalctl_refuses_fails_naming_the_variable(tmp_path: Path, overrides: dict[str, str], refused: str, named: str) -> None:
    fake = FakeJournalctl(KNOWN, refuse={refused: "Failed to parse timestamp: bogus" if "since" in overrides else "refused"})
    result = jr.journal(params(tmp_path, **overrides), fake)
    assert result["failed"] and result["msg"].startswith(named), result["msg"]
    # Nothing is read before the inputs passed.
    assert not [c for c in fake.calls if "--output=json" in c or any(a.startswith("--field=") for a in c)]


def test_a_window_that_ends_before_it_starts_names_both_variables(tmp_path: Path) -> None:
    class Window(FakeJournalctl):
        def __call__(self, argv: list[str]) -> tuple[int, str, str]:
            if any(a.startswith("--since=") for a in argv) and any(a.startswith("--until=") for a in argv):
                return 1, "", "--since= must be before --until=.\n"
            return super().__call__(argv)

    result = jr.journal(params(tmp_path, since="1 min ago", until="1 hour ago"), Window(KNOWN))
    assert result["failed"] and result["msg"].startswith(
        "fastapi_app_logs_since='1 min ago' and fastapi_app_logs_until='1 hour ago': journalctl refuses the window")
