"""The change plan of plugins/filter/fastapi_app_plan.py."""

from __future__ import annotations

import hashlib

import pytest
from modload import load

plan = load("fastapi_app_plan", "plugins/filter/fastapi_app_plan.py").change_plan

APPLIED = {"release": "r1", "gunicorn_conf": "g", "env": "e", "socket": "s", "service": "u"}


def test_nothing_changed_is_no_action() -> None:
    assert plan(APPLIED, dict(APPLIED), {}) == {
        "changes": [], "restart": False, "restart_socket": False, "units_changed": False}


# A gunicorn setting too: a HUP leaves the socket without an accepting worker while new ones boot.
@pytest.mark.parametrize("part", ["release", "gunicorn_conf", "env", "service", "socket"])
def test_every_change_starts_a_new_master(part: str) -> None:
    result = plan(APPLIED, {**APPLIED, part: "new"}, {})
    assert result["changes"] == [part] and result["restart"]
    assert result["units_changed"] == (part in ("socket", "service"))
    assert result["restart_socket"] == (part == "socket")


def test_what_this_run_changed_counts_even_when_the_sums_match() -> None:
    # Check mode writes nothing: only the registered results tell.
    result = plan(APPLIED, dict(APPLIED), {"env": True, "gunicorn_conf": False})
    assert result["changes"] == ["env"] and result["restart"]


def test_a_host_that_never_served_starts_without_a_socket_restart() -> None:
    result = plan({}, dict(APPLIED), {})
    assert result["changes"] == ["release", "gunicorn_conf", "env", "socket", "service"]
    assert result["restart"] and not result["restart_socket"]


def test_an_incomplete_desired_state_is_refused() -> None:
    with pytest.raises(ValueError, match="desired lacks env"):
        plan(APPLIED, {"release": "r1", "gunicorn_conf": "g", "socket": "s", "service": "u"}, {})


file_is = load("fastapi_app_plan", "plugins/filter/fastapi_app_plan.py").file_is


def test_a_file_with_the_same_content_owner_group_and_mode_needs_no_write() -> None:
    found = {"/etc/a": {"sha256": hashlib.sha256(b"x = 1\n").hexdigest(), "owner": "root", "group": "hello", "mode": "0640"}}
    assert file_is(found, "/etc/a", "x = 1\n", "root", "hello", "0640")
    assert file_is(found, "/etc/a", "x = 1\n", "root", "hello", "640")


@pytest.mark.parametrize(("path", "content", "group", "mode"), [
    ("/etc/a", "x = 2\n", "hello", "0640"),  # content
    ("/etc/a", "x = 1\n", "root", "0640"),  # group
    ("/etc/a", "x = 1\n", "hello", "0644"),  # mode
    ("/etc/b", "x = 1\n", "hello", "0640"),  # missing on the host
])
def test_any_difference_means_the_file_is_written(path: str, content: str, group: str, mode: str) -> None:
    found = {"/etc/a": {"sha256": hashlib.sha256(b"x = 1\n").hexdigest(), "owner": "root", "group": "hello", "mode": "0640"}}
    assert not file_is(found, path, content, "root", group, mode)


disk_sums = load("fastapi_app_plan", "plugins/filter/fastapi_app_plan.py").disk_sums


def test_disk_sums_take_what_this_run_wrote_and_otherwise_what_the_host_had() -> None:
    found = {"/etc/a": {"sha256": "old-a"}, "/etc/b": {"sha256": "old-b"}}
    entries = [
        {"path": "/etc/a", "written": True, "content": "new a\n"},
        {"path": "/etc/b", "written": False, "content": "ignored"},
        {"path": "/etc/c", "written": False, "content": "ignored"},
    ]
    assert disk_sums(found, entries, False) == [hashlib.sha256(b"new a\n").hexdigest(), "old-b", ""]
    # Check mode writes nothing: the host keeps its files.
    assert disk_sums(found, entries, True) == ["old-a", "old-b", ""]


unit_is_up = load("fastapi_app_plan", "plugins/filter/fastapi_app_plan.py").unit_is_up


@pytest.mark.parametrize(("state", "up"), [
    ({"ActiveState": "active", "UnitFileState": "enabled"}, True),
    ({"ActiveState": "active", "UnitFileState": "disabled"}, False),
    ({"ActiveState": "inactive", "UnitFileState": "enabled"}, False),
    ({"ActiveState": "active", "UnitFileState": "enabled-runtime"}, False),
    ({}, False),  # not read: the unit was not there
])
def test_only_a_running_enabled_unit_needs_no_start(state: dict[str, str], up: bool) -> None:
    assert unit_is_up(state) is up
