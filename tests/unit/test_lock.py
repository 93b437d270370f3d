"""Unit tests for plugins/modules/fastapi_app_lock.py (the deploy lock)."""

from __future__ import annotations

import json
from pathlib import Path

from modload import load

lock = load("fastapi_app_lock", "plugins/modules/fastapi_app_lock.py")

NOW = 1_800_000_000.0


def test_a_free_lock_is_taken_with_the_holder_recorded(tmp_path: Path) -> None:
    path = tmp_path / "lock" / "shop.lock"
    assert lock.take(path, "t1", "ana@ctl", False, NOW, False) == {"changed": True, "previous": None}
    record = json.loads(path.read_text())
    assert record["token"] == "t1" and record["holder"] == "ana@ctl" and record["since"] == NOW


def test_the_same_run_takes_it_again_without_change(tmp_path: Path) -> None:
    path = tmp_path / "shop.lock"
    lock.take(path, "t1", "ana@ctl", False, NOW, False)
    assert lock.take(path, "t1", "ana@ctl", False, NOW + 5, False) == {"changed": False, "previous": None}


def test_another_run_is_refused_with_who_and_since_when(tmp_path: Path) -> None:
    path = tmp_path / "shop.lock"
    lock.take(path, "t1", "ana@ctl", False, NOW, False)
    result = lock.take(path, "t2", "bob@ci", False, NOW + 42, False)
    assert result["msg"] == "held" and result["previous"]["holder"] == "ana@ctl"
    message = lock.held_message("shop", result["previous"], NOW + 42)
    assert "shop is being deployed on this host by ana@ctl since 2027-01-15 08:00:00 UTC (42 s ago)" in message
    assert "fastapi_app_break_lock=true" in message
    assert json.loads(path.read_text())["token"] == "t1"


def test_force_breaks_a_lock_left_by_a_killed_run(tmp_path: Path) -> None:
    path = tmp_path / "shop.lock"
    lock.take(path, "t1", "ana@ctl", False, NOW, False)
    result = lock.take(path, "t2", "bob@ci", True, NOW + 60, False)
    assert result["changed"] and result["previous"]["token"] == "t1"
    assert json.loads(path.read_text())["token"] == "t2"


def test_check_mode_reports_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "shop.lock"
    assert lock.take(path, "t1", "ana@ctl", False, NOW, True)["changed"] is True
    assert not path.exists()


def test_only_the_holder_gives_it_back(tmp_path: Path) -> None:
    path = tmp_path / "shop.lock"
    lock.take(path, "t1", "ana@ctl", False, NOW, False)
    assert lock.give_back(path, "t2", False) is False and path.exists()
    assert lock.give_back(path, "t1", False) is True and not path.exists()
    assert lock.give_back(path, "t1", False) is False


def test_an_unreadable_lock_still_counts_as_held(tmp_path: Path) -> None:
    path = tmp_path / "shop.lock"
    path.write_text("{half")
    result = lock.take(path, "t2", "bob@ci", False, NOW, False)
    assert result["msg"] == "held"
    assert "by an unknown run since an unknown time" in lock.held_message("shop", result["previous"], NOW)
