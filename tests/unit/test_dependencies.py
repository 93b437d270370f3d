"""The requires-python check of plugins/filter/fastapi_app_dependencies.py."""

from __future__ import annotations

import pytest
from modload import load

deps = load("fastapi_app_dependencies", "plugins/filter/fastapi_app_dependencies.py")


@pytest.mark.parametrize(("requires", "version"), [("", "3.11.2"), (">=3.11", "3.11.2"), (">=3.11,<3.14", "3.13.5"), ("~=3.11", "3.12.0")])
def test_a_satisfied_requirement_passes(requires: str, version: str) -> None:
    assert deps.python_mismatch(requires, version, "/usr/bin/python3") == ""


def test_a_mismatch_names_interpreter_version_requirement_and_variable() -> None:
    message = deps.python_mismatch(">=3.12", "3.11.2", "/usr/bin/python3")
    assert message == (
        "the app requires Python >=3.12 (requires-python in its pyproject.toml) but fastapi_app_python=/usr/bin/python3 "
        "is Python 3.11.2; set fastapi_app_python to an interpreter that satisfies it, or change requires-python")


def test_an_unreadable_requirement_is_reported() -> None:
    assert "cannot be read" in deps.python_mismatch(">=three", "3.11.2", "/usr/bin/python3")
