"""The real_app scenario's releases (molecule/real_app/files/<overlay>/backend, copied over this app,
the scenario's uv workspace member):
1.1.0 expands the schema and uses it, 1.2.0 carries a migration that fails. Each release runs
from its own source tree (PYTHONPATH), the way a deployed release runs from its own venv."""

from __future__ import annotations

import json
import shutil
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from orders_app.main import app
from orders_app.worker import Worker
from orders_helpers import PROJECT, VENV_BIN, run_cli

OVERLAYS = PROJECT.parents[1] / "molecule" / "real_app" / "files"
if not OVERLAYS.is_dir():
    pytest.skip(f"no scenario overlays at {OVERLAYS} (app copied out of the project)", allow_module_level=True)

ALEMBIC = str(VENV_BIN / "alembic")

# Requests through the app of a release tree, in a child process that imports that tree.
CLIENT = """
import json, sys
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from orders_app.main import app
with TestClient(app, raise_server_exceptions=False) as c:
    responses = [c.request(m, p, json=b) for m, p, b in json.loads(sys.argv[1])]
# A 500 has a plain-text body.
print(json.dumps([[r.status_code, r.json() if "json" in r.headers.get("content-type", "") else r.text] for r in responses]))
"""


def release_tree(tmp_path: Path, *overlays: str) -> Path:
    tree = tmp_path / "-".join(("app", *overlays))
    shutil.copytree(PROJECT, tree, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".venv", ".pytest_cache"))
    for overlay in overlays:
        shutil.copytree(OVERLAYS / overlay / "backend", tree, dirs_exist_ok=True)
    return tree


def in_tree(tree: Path, args: list[str]) -> tuple[int, str, str]:
    result = run_cli(args, cwd=tree, env={"PYTHONPATH": str(tree / "src")})
    return result.returncode, result.stdout, result.stderr


def requests(tree: Path, *calls: tuple[str, str, object]) -> list[list]:
    rc, out, err = in_tree(tree, [sys.executable, "-c", CLIENT, json.dumps(calls)])
    assert rc == 0, err
    return json.loads(out)


@pytest.fixture
def v1() -> Iterator[TestClient]:
    # The installed package: the 1.0.0 release, still serving while 1.1.0 migrates.
    with TestClient(app) as c:
        yield c


def test_v2_expands_and_v1_keeps_working(tmp_path: Path, migrated: str, v1: TestClient, sql: Callable[..., list[tuple]]) -> None:
    v2 = release_tree(tmp_path, "v2")
    assert v1.post("/orders", json={"id": "before", "payload": {"note": "ignored by 1.0.0"}}).status_code == 201

    # 1.1.0 before its migration: the deep check and its reads fail, so no canary would pass it.
    [[status, body], [get_status, _unused]] = requests(v2, ("GET", "/healthz/db", None), ("GET", "/", None))
    assert (status, get_status) == (503, 500)
    assert "note" in body["error"]

    rc, _unused, err = in_tree(v2, [ALEMBIC, "upgrade", "head"])
    assert rc == 0, err
    assert "Running upgrade 0001_initial -> 0002_order_note" in err
    rc, out, _unused = in_tree(v2, [ALEMBIC, "current"])
    assert "0002_order_note (head)" in out
    rc, out, err = in_tree(v2, [ALEMBIC, "check"])
    assert rc == 0, out + err

    health, posted, plain, root = requests(
        v2,
        ("GET", "/healthz/db", None),
        ("POST", "/orders", {"id": "v2-note", "payload": {"note": "gift wrap"}}),
        ("POST", "/orders", {"id": "v2-plain", "payload": [1, 2]}),
        ("GET", "/", None),
    )
    assert health == [200, {"status": "ok", "schema": "0002_order_note"}]
    assert posted[0] == plain[0] == 201
    assert root == [200, {"orders": 3, "notes": 2, "release": "r-test"}]
    assert sql("SELECT id, note FROM orders ORDER BY id") == [("before", None), ("v2-note", "gift wrap"), ("v2-plain", "no note")]

    # 1.0.0 against the expanded schema (during the switch, and after a rollback).
    assert v1.get("/healthz/db").json() == {"status": "ok", "schema": "0002_order_note"}
    assert v1.post("/orders", json={"id": "after", "payload": None}).status_code == 201
    assert v1.get("/").json()["orders"] == 4
    worker = Worker(create_engine(migrated), release="r-v1", host="h", job_seconds=0, idle_seconds=0)
    while worker.process_one():
        pass
    worker.db.dispose()
    assert v1.get("/orders/stats").json()["jobs_duplicated"] == 0
    assert sql("SELECT count(*) FROM jobs WHERE status = 'done' AND attempts = 1") == [(4,)]


def test_bad_migration_fails_with_the_database_error(
    tmp_path: Path, migrated: str, v1: TestClient, sql: Callable[..., list[tuple]]
) -> None:
    rc, _unused, err = in_tree(release_tree(tmp_path, "v2"), [ALEMBIC, "upgrade", "head"])
    assert rc == 0, err
    bad = release_tree(tmp_path, "v2", "bad_migration")
    rc, _unused, err = in_tree(bad, [ALEMBIC, "upgrade", "head"])
    assert rc != 0
    assert 'column "customer_id" does not exist' in err
    assert "Running upgrade 0002_order_note -> 0003_orders_customer_index" in err
    # Rolled back as a whole: the serving releases see the schema they had.
    assert sql("SELECT version_num FROM alembic_version") == [("0002_order_note",)]
    assert sql("SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_orders_customer_id'") == [(0,)]
    assert v1.get("/healthz/db").status_code == 200


def test_overlays_are_releases_of_this_app() -> None:
    base = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    # The scenario's workspace lock of 1.0.0: this app's lock with the workspace's manifest.
    base_lock = (OVERLAYS / "workspace" / "uv.lock").read_text()
    assert base_lock.replace('[manifest]\nmembers = [\n    "orders-app",\n]\n\n', "").replace(
        'source = { editable = "backend" }', 'source = { editable = "." }') == (PROJECT / "uv.lock").read_text()
    for overlay, version in (("v2", "1.1.0"), ("bad_migration", "1.2.0")):
        project = tomllib.loads((OVERLAYS / overlay / "backend" / "pyproject.toml").read_text())["project"]
        assert project["version"] == version
        assert {k: v for k, v in project.items() if k != "version"} == {k: v for k, v in base.items() if k != "version"}
        # uv.lock records the project's own version: same lock but for that one line.
        lock = (OVERLAYS / overlay / "uv.lock").read_text()
        assert lock == base_lock.replace(
            'name = "orders-app"\nversion = "1.0.0"', f'name = "orders-app"\nversion = "{version}"'
        ), overlay
    # bad_migration goes over v2 (the scenario lays both): it adds its migration and nothing else.
    added = sorted(str(p.relative_to(OVERLAYS / "bad_migration" / "backend")) for p in (OVERLAYS / "bad_migration").rglob("*.py"))
    assert added == ["src/orders_app/migrations/versions/0003_orders_customer_index.py"]
