"""The scheduled report as a systemd timer runs it: `python -m orders_app.report`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from orders_helpers import run_cli

REPORT = [sys.executable, "-m", "orders_app.report"]


def test_report_inserts_a_row(migrated: str, sql: Callable[..., list[tuple]]) -> None:
    sql("INSERT INTO orders (id, release) VALUES ('a', 'r'), ('b', 'r')")
    first = run_cli(REPORT, env={"FASTAPI_APP_RELEASE": "r-report"})
    assert first.returncode == 0, first.stderr
    row = json.loads(first.stdout)
    assert row["release"] == "r-report"
    assert row["orders"] == 2
    assert row["id"] == 1 and row["ran_at"]

    sql("INSERT INTO orders (id, release) VALUES ('c', 'r')")
    assert run_cli(REPORT).returncode == 0
    assert sql("SELECT release, orders FROM reports ORDER BY id") == [("r-report", 2), ("r-test", 3)]


def test_report_fails_with_the_database_error(database: str) -> None:
    result = run_cli(REPORT)
    assert result.returncode == 1
    assert result.stdout == ""
    assert 'report failed: relation "orders" does not exist' in result.stderr


def test_report_without_database_url(database: str) -> None:
    result = run_cli(REPORT, env={"DATABASE_URL": ""})
    assert result.returncode == 1
    assert "report failed: DATABASE_URL is not set" in result.stderr
