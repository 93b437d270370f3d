"""The role's documented contract stays in one piece: specs, defaults and docs/variables.md agree."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "fastapi_app"


def load_vars_table():
    spec = importlib.util.spec_from_file_location("vars_table", ROOT / "tools" / "vars_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def specs() -> dict:
    return yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]


def defaults() -> dict:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def test_every_default_is_declared_and_every_optional_input_has_a_default():
    optional = {name for name, option in specs().items() if not option.get("required")}
    assert set(defaults()) == optional


def test_spec_defaults_match_role_defaults():
    role_defaults = defaults()
    for name, option in specs().items():
        if option.get("required"):
            continue
        assert option.get("default") == role_defaults[name], name


def test_every_input_is_prefixed_typed_and_described():
    for name, option in specs().items():
        assert name.startswith("fastapi_app_"), name
        assert option.get("type"), name
        assert option.get("description"), name


def test_variables_page_is_current():
    vars_table = load_vars_table()
    page = (ROOT / "docs" / "variables.md").read_text()
    assert vars_table.render(page) == page, "docs/variables.md is stale: run tools/vars_table.py --write"
