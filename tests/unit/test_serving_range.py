"""roles/fastapi_app/files/serving_range.json: the versions of the serving stack the role's worker
module (fastapi_app_worker.py) supports, read by the controller-side check and the wheel builder.
Its two ends are the ones tests/unit/test_fastapi_app_worker.py runs against: the role's pins
(fastapi_app_runtime_packages) and tests/unit/serving-low.txt."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "fastapi_app"
RANGE: dict[str, str] = json.loads((ROLE / "files" / "serving_range.json").read_text())


def pins(requirements: list[str]) -> dict[str, str]:
    found = {}
    for line in requirements:
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", line
        found[canonicalize_name(requirement.name)] = specifier.version
    return found


def default_pins() -> dict[str, str]:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    return pins(defaults["fastapi_app_runtime_packages"])


def low_pins() -> dict[str, str]:
    lines = (ROOT / "tests" / "unit" / "serving-low.txt").read_text().splitlines()
    return pins([line for line in lines if line.strip() and not line.lstrip().startswith("#")])


def test_the_range_names_the_serving_stack_with_two_ends() -> None:
    assert {"gunicorn", "uvicorn", "uvicorn-worker"} <= set(RANGE)
    for name, text in RANGE.items():
        assert name == canonicalize_name(name)
        operators = sorted(specifier.operator for specifier in SpecifierSet(text))
        assert operators == ["<", ">="], f"{name}: {text} is not a >=low,<high range"


@pytest.mark.parametrize("name", sorted(RANGE))
def test_the_default_pins_lie_inside_the_range(name: str) -> None:
    pinned = default_pins()
    assert name in pinned, f"fastapi_app_runtime_packages does not pin {name}"
    assert pinned[name] in SpecifierSet(RANGE[name]), f"{name}=={pinned[name]} is outside {RANGE[name]}"


@pytest.mark.parametrize("name", sorted(RANGE))
def test_the_low_end_venv_holds_the_lower_bounds(name: str) -> None:
    """What make unit's second worker run serves with is the range's low end, not something in between."""
    (lower,) = (s.version for s in SpecifierSet(RANGE[name]) if s.operator == ">=")
    assert low_pins().get(name) == lower, f"tests/unit/serving-low.txt must pin {name}=={lower}"


def test_the_makefile_runs_the_worker_tests_at_the_low_end() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^SERVING_LOW \?= \.venv-serving-low$", makefile, re.MULTILINE)
    assert re.search(r"^\$\(SERVING_LOW\)/\.installed: tests/unit/serving-low\.txt$", makefile, re.MULTILINE)
    assert re.search(r"^unit: .*\$\(SERVING_LOW\)/\.installed", makefile, re.MULTILINE)
    assert re.search(
        r"^\tpython -m pytest -q tests/unit/test_fastapi_app_worker\.py --serving-python \$\(SERVING_LOW\)/bin/python$",
        makefile,
        re.MULTILINE,
    )
