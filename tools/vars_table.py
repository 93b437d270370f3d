#!/usr/bin/env python3
"""Render the role's variables table for docs/variables.md from meta/argument_specs.yml.

argument_specs.yml is the single source of the role's inputs; docs/variables.md carries this table
between two markers, and tests/unit/test_role_contract.py fails when they drift apart.
Usage: tools/vars_table.py [--write]   (--write updates docs/variables.md in place)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "roles" / "fastapi_app" / "meta" / "argument_specs.yml"
PAGE = ROOT / "docs" / "variables.md"
BEGIN = "<!-- BEGIN VARIABLES (tools/vars_table.py) -->"
END = "<!-- END VARIABLES -->"


def options() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(SPECS.read_text())["argument_specs"]["main"]["options"]


def plain(text: str) -> str:
    """Ansible doc markup (C(x), O(x)) to Markdown code, pipes escaped for the table."""
    text = re.sub(r"[CO]\(([^)]*)\)", r"`\1`", text)
    return text.replace("|", "\\|").replace("\n", " ")


def describe(option: dict[str, Any]) -> str:
    description = option.get("description", "")
    lines = description if isinstance(description, list) else [description]
    extra = f" Choices: {', '.join(f'`{c}`' for c in option['choices'])}." if "choices" in option else ""
    return plain(" ".join(lines)) + extra


def default(option: dict[str, Any]) -> str:
    if option.get("required"):
        return "**required**"
    value = option.get("default")
    if value in ("", [], {}):
        return f"`{value!r}`".replace("''", '""')
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`" if not isinstance(value, list) else "`" + ", ".join(map(str, value)) + "`"


def table() -> str:
    rows = ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
    for name, option in options().items():
        kind = option["type"] + (f" of {option['elements']}" if "elements" in option else "")
        rows.append(f"| `{name}` | {kind} | {default(option)} | {describe(option)} |")
    return "\n".join(rows)


def render(page: str) -> str:
    start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
    return page[:start] + "\n" + table() + "\n" + page[end:]


def main(argv: list[str]) -> int:
    if argv[1:] == ["--write"]:
        PAGE.write_text(render(PAGE.read_text()))
        return 0
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
