"""Migrations through the alembic CLI, run the way the role runs them: project root as working
directory, the venv on PATH, DATABASE_URL in the environment, the installed package's scripts."""

from __future__ import annotations

from collections.abc import Callable

from orders_helpers import VENV_BIN, run_cli

ALEMBIC = str(VENV_BIN / "alembic")

TABLES_SQL = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"


def columns(sql: Callable[..., list[tuple]], table: str) -> list[str]:
    rows = sql(
        "SELECT column_name FROM information_schema.columns WHERE table_name = :t ORDER BY ordinal_position",
        t=table,
    )
    return [r[0] for r in rows]


def test_upgrade_to_head_and_downgrade_to_base(database: str, sql: Callable[..., list[tuple]]) -> None:
    up = run_cli([ALEMBIC, "upgrade", "head"])
    assert up.returncode == 0, up.stderr
    assert "Running upgrade  -> 0001_initial" in up.stderr

    assert sql(TABLES_SQL) == [("alembic_version",), ("jobs",), ("orders",), ("reports",)]
    assert columns(sql, "orders") == ["id", "payload", "created_at", "release"]
    assert columns(sql, "jobs") == [
        "id", "order_id", "status", "attempts", "enqueued_at",
        "processed_at", "processed_by_release", "processed_by_host",
    ]  # fmt: skip
    assert columns(sql, "reports") == ["id", "ran_at", "release", "orders"]
    payload_type = "SELECT data_type FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'payload'"
    assert sql(payload_type) == [("jsonb",)]

    current = run_cli([ALEMBIC, "current"])
    assert current.returncode == 0, current.stderr
    assert "0001_initial (head)" in current.stdout

    # The models the code uses and the migrations agree (no pending autogenerate operation).
    check = run_cli([ALEMBIC, "check"])
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr

    down = run_cli([ALEMBIC, "downgrade", "base"])
    assert down.returncode == 0, down.stderr
    assert sql(TABLES_SQL) == [("alembic_version",)]
    assert sql("SELECT count(*) FROM alembic_version") == [(0,)]

    again = run_cli([ALEMBIC, "upgrade", "head"])
    assert again.returncode == 0, again.stderr
    assert sql("SELECT version_num FROM alembic_version") == [("0001_initial",)]


def test_check_fails_before_migrations(database: str) -> None:
    # The other side of `alembic check`: it does see a schema that lags the models.
    check = run_cli([ALEMBIC, "check"])
    assert check.returncode != 0
    assert "Target database is not up to date" in check.stdout + check.stderr


def test_offline_sql_for_review(database: str, sql: Callable[..., list[tuple]]) -> None:
    offline = run_cli([ALEMBIC, "upgrade", "head", "--sql"])
    assert offline.returncode == 0, offline.stderr
    assert "CREATE TABLE orders" in offline.stdout
    assert "FOR UPDATE" not in offline.stdout
    assert sql(TABLES_SQL) == []  # printed, not run


def test_missing_database_url_is_named(database: str) -> None:
    result = run_cli([ALEMBIC, "upgrade", "head"], env={"DATABASE_URL": ""})
    assert result.returncode != 0
    assert "DATABASE_URL is not set" in result.stderr
