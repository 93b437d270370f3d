"""Make molecule/resources/tests importable and expose the scenario's settings."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources" / "tests"))

from stack import inventory_hosts, scenario_vars  # noqa: E402


@pytest.fixture(scope="session")
def app() -> dict[str, Any]:
    return scenario_vars()


@pytest.fixture(scope="session")
def hosts() -> dict[str, Any]:
    """Every host of the scenario by name: a module fixture prepares and reads them all around one
    playbook run without --limit, and the tests parametrized by `host` assert on their own."""
    return inventory_hosts()
