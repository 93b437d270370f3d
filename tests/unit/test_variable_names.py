"""Unit tests for the check of fastapi_app_* variable names (issue 14, part 6).

plugins/filter/fastapi_app_variables.py decides which names are unknown and
what to suggest; roles/fastapi_app/tasks/validate_names.yml feeds it every fastapi_app_* variable
the host sees. The last tests run that task file with ansible-playbook against localhost (local
connection; the task is an assert, so nothing runs on or changes the machine) to prove the
variable lookup sees inventory, play and extra vars, not only the role's defaults.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from modload import load

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "fastapi_app"
TASK_NAME = "Check that every fastapi_app_* variable is a known one"

names = load("fastapi_app_variables", "plugins/filter/fastapi_app_variables.py")

KNOWN = ["fastapi_app_name", "fastapi_app_gunicorn_workers", "fastapi_app_gunicorn_timeout", "fastapi_app_secrets", "fastapi_app_user"]


def inputs() -> set[str]:
    """The options of every entry point of the role, as tasks/validate_names.yml reads them."""
    entry_points = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"].values()
    return {name for entry_point in entry_points for name in entry_point.get("options", {})}


def name_task() -> dict[str, Any]:
    tasks = yaml.safe_load((ROLE / "tasks" / "validate_names.yml").read_text())
    return next(task for task in tasks if task["name"] == TASK_NAME)


def playbook_variables() -> list[str]:
    return name_task()["vars"]["__fastapi_app_playbook_variables"]


# --- the filter ---


def test_a_typo_is_named_with_the_closest_known_name() -> None:
    found = names.unknown_variables(["fastapi_app_name", "fastapi_app_gunicron_workers"], KNOWN)
    assert found == [{"name": "fastapi_app_gunicron_workers", "suggestion": "fastapi_app_gunicorn_workers"}]


def test_known_names_pass() -> None:
    assert names.unknown_variables(KNOWN, KNOWN) == []


def test_own_names_pass_and_are_suggested_for_their_own_typos() -> None:
    own = ["fastapi_app_database_url"]
    assert names.unknown_variables(["fastapi_app_database_url"], KNOWN, own) == []
    assert names.unknown_variables(["fastapi_app_databse_url"], KNOWN, own) == [
        {"name": "fastapi_app_databse_url", "suggestion": "fastapi_app_database_url"}
    ]


def test_names_without_the_prefix_are_not_judged() -> None:
    assert names.unknown_variables(["__fastapi_app_release_id", "_fastapi_app_x", "app_port", "FASTAPI_APP_X", "fastapi_apps"], KNOWN) == []


def test_no_suggestion_when_nothing_is_close() -> None:
    assert names.unknown_variables(["fastapi_app_sentry_dsn"], KNOWN) == [{"name": "fastapi_app_sentry_dsn", "suggestion": None}]


def test_the_shared_prefix_does_not_make_names_close() -> None:
    # With the prefix counted, "fastapi_app_sentry_dsn" and "fastapi_app_user" are 79 % alike.
    assert names.unknown_variables(["fastapi_app_sentry_dsn"], ["fastapi_app_user"]) == [{"name": "fastapi_app_sentry_dsn", "suggestion": None}]


def test_every_unknown_name_once_in_order() -> None:
    found = names.unknown_variables(["fastapi_app_secret", "fastapi_app_zzz", "fastapi_app_secret", "fastapi_app_gunicorn_timeuot"], KNOWN)
    assert [entry["name"] for entry in found] == ["fastapi_app_gunicorn_timeuot", "fastapi_app_secret", "fastapi_app_zzz"]
    assert [entry["suggestion"] for entry in found] == ["fastapi_app_gunicorn_timeout", "fastapi_app_secrets", None]


def test_the_task_uses_the_filter_the_plugin_exports() -> None:
    exported = names.FilterModule().filters()
    assert exported["fastapi_app_unknown_variables"] is names.unknown_variables
    assert "fastapi_ops.app.fastapi_app_unknown_variables(" in (ROLE / "tasks" / "validate_names.yml").read_text()


# --- the project's playbook variables ---

# An identifier, not part of a path or a longer word (conf.d/fastapi_app_default_80.conf is a file).
IDENTIFIER_RE = re.compile(r"(?<![\w./-])fastapi_app_[a-z0-9_]+")
# Its fastapi_app_* names are wrong on purpose: each must fail.
BAD_INPUTS = ROOT / "molecule" / "hardening" / "vars" / "bad_inputs.yml"


def project_names() -> dict[str, Path]:
    """Every fastapi_app_* identifier in the project's playbooks, inventories, Molecule scenarios and templates."""
    found: dict[str, Path] = {}
    for top in ("playbooks", "inventory", "molecule", "templates"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix not in {".yml", ".yaml", ".j2"} or path == BAD_INPUTS:
                continue
            for name in IDENTIFIER_RE.findall(path.read_text()):
                found.setdefault(name, path.relative_to(ROOT))
    return found


def test_every_name_the_project_uses_is_an_input_or_a_listed_playbook_variable() -> None:
    allowed = inputs() | set(playbook_variables())
    stray = {name: str(path) for name, path in project_names().items() if name not in allowed}
    assert stray == {}, "list these in __fastapi_app_playbook_variables (tasks/validate_names.yml) or declare them as inputs"


def test_the_playbook_variables_are_used_and_are_no_inputs() -> None:
    listed = playbook_variables()
    assert not set(listed) & inputs()
    assert set(listed) <= set(project_names()), "a listed playbook variable that no playbook uses any more"


# --- the task against localhost ---


def run_check(
    tmp_path: Path, host_vars: dict[str, dict[str, Any]], play_vars: dict[str, Any] | None = None, extra_vars: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Runs the role's tasks/validate_names.yml for each host (all of them localhost); its result per host."""
    inventory = {"all": {"hosts": {host: {"ansible_connection": "local", **values} for host, values in host_vars.items()}}}
    (tmp_path / "hosts.yml").write_text(json.dumps(inventory))
    play = {
        "name": "Check the variable names",
        "hosts": "all",
        "gather_facts": False,
        "vars": play_vars or {},
        "tasks": [{"ansible.builtin.include_role": {"name": "fastapi_app", "tasks_from": "validate_names"}}],
    }
    (tmp_path / "check.yml").write_text(json.dumps([play]))
    # The role calls its filters as fastapi_ops.app.*: this checkout is that collection (playbooks/collections).
    (tmp_path / "ansible.cfg").write_text(f"[defaults]\nroles_path = {ROOT / 'roles'}\ncollections_path = {ROOT / 'playbooks' / 'collections'}\n")
    env = {**os.environ, "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_NOCOLOR": "1"}
    argv = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "hosts.yml", "check.yml", "--extra-vars", json.dumps(extra_vars or {})]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    tasks = [task for play in json.loads(done.stdout)["plays"] for task in play["tasks"] if task["task"]["name"] == f"fastapi_app : {TASK_NAME}"]
    assert len(tasks) == 1, done.stdout[-2000:] + done.stderr[-2000:]
    return tasks[0]["hosts"]


@pytest.fixture(scope="module")
def inventory_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return run_check(
        tmp_path_factory.mktemp("inventory"),
        {
            "clean": {"fastapi_app_name": "hello", "fastapi_app_gunicorn_workers": 2, "fastapi_app_hosts": "web", "__fastapi_app_anything": 1},
            "typo": {"fastapi_app_gunicron_workers": 3},
            "two_typos": {"fastapi_app_gunicron_workers": 3, "fastapi_app_sentry_dsn": "https://x"},
            "own": {"fastapi_app_sentry_dsn": "https://x", "fastapi_app_own_variables": ["fastapi_app_sentry_dsn"]},
        },
    )


def test_known_internal_and_own_names_pass(inventory_results: dict[str, dict[str, Any]]) -> None:
    assert not inventory_results["clean"].get("failed"), inventory_results["clean"]
    assert not inventory_results["own"].get("failed"), inventory_results["own"]


def test_an_inventory_typo_fails_with_the_name_and_the_suggestion(inventory_results: dict[str, dict[str, Any]]) -> None:
    result = inventory_results["typo"]
    assert result.get("failed")
    assert result["msg"] == (
        "fastapi_app_gunicron_workers is not a variable of the fastapi_app role; did you mean fastapi_app_gunicorn_workers?"
        " If it is yours, list it in fastapi_app_own_variables."
    )


def test_every_unknown_name_is_in_the_one_message(inventory_results: dict[str, dict[str, Any]]) -> None:
    result = inventory_results["two_typos"]
    assert result.get("failed")
    assert result["msg"] == (
        "fastapi_app_gunicron_workers is not a variable of the fastapi_app role; did you mean fastapi_app_gunicorn_workers?"
        " fastapi_app_sentry_dsn is not a variable of the fastapi_app role (no variable of the role has a similar name)."
        " If one of them is yours, list it in fastapi_app_own_variables."
    )


def test_play_and_extra_vars_are_checked_too(tmp_path: Path) -> None:
    typos = ["fastapi_app_gunicron_workers", "fastapi_app_keep_releses"]
    results = run_check(
        tmp_path,
        {"typos": {}, "own": {"fastapi_app_own_variables": typos}},
        play_vars={"fastapi_app_keep_releses": 2},
        extra_vars={"fastapi_app_gunicron_workers": 3},
    )
    assert results["typos"].get("failed")
    assert "fastapi_app_gunicron_workers is not a variable of the fastapi_app role; did you mean fastapi_app_gunicorn_workers?" in results["typos"]["msg"]
    assert "fastapi_app_keep_releses is not a variable of the fastapi_app role; did you mean fastapi_app_keep_releases?" in results["typos"]["msg"]
    assert not results["own"].get("failed"), results["own"]
