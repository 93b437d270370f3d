"""The change plan of roles/fastapi_app/filter_plugins/fastapi_app_plan.py."""

from __future__ import annotations

import pytest
from modload import load

plan = load("fastapi_app_plan", "roles/fastapi_app/filter_plugins/fastapi_app_plan.py").change_plan

APPLIED = {"release": "r1", "gunicorn_conf": "g", "env": "e", "socket": "s", "service": "u"}


def test_nothing_changed_is_no_action() -> None:
    assert plan(APPLIED, dict(APPLIED), {}) == {
        "changes": [], "restart": False, "reload": False, "restart_socket": False, "units_changed": False}


def test_gunicorn_settings_alone_are_a_reload() -> None:
    result = plan(APPLIED, {**APPLIED, "gunicorn_conf": "g2"}, {})
    assert (result["changes"], result["restart"], result["reload"]) == (["gunicorn_conf"], False, True)


@pytest.mark.parametrize("part", ["release", "env", "service", "socket"])
def test_a_release_environment_or_unit_change_needs_a_new_master(part: str) -> None:
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
