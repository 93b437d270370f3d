"""Fixtures against a real PostgreSQL: the libpq variables that `pg_virtualenv` sets (PGHOST,
PGPORT, PGUSER, PGPASSWORD) or ORDERS_TEST_DATABASE_URL name a server; every test gets a
database of its own, created empty and dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url

from orders_app import db
from orders_helpers import PROJECT, Proc, alembic_config


def server_url() -> URL:
    explicit = os.environ.get("ORDERS_TEST_DATABASE_URL")
    if explicit:
        return make_url(explicit).set(drivername="postgresql+psycopg")
    host = os.environ.get("PGHOST")
    if not host:
        pytest.fail(
            "no PostgreSQL to test against: run the tests under Debian's pg_virtualenv "
            "(pg_virtualenv python -m pytest examples/orders_app) or set ORDERS_TEST_DATABASE_URL",
            pytrace=False,
        )
    # A socket directory goes in the query string; psycopg passes it to libpq as host.
    return URL.create(
        "postgresql+psycopg",
        username=os.environ.get("PGUSER"),
        password=os.environ.get("PGPASSWORD"),
        host=None if host.startswith("/") else host,
        port=int(os.environ["PGPORT"]) if os.environ.get("PGPORT") else None,
        database=os.environ.get("PGDATABASE", "postgres"),
        query={"host": host} if host.startswith("/") else {},
    )


@pytest.fixture(scope="session")
def admin() -> Iterator[Engine]:
    # CREATE/DROP DATABASE cannot run inside a transaction.
    engine = create_engine(server_url(), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
def database(admin: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty database; DATABASE_URL points at it (for the app and for child processes)."""
    name = f"orders_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server_url().set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("FASTAPI_APP_RELEASE", "r-test")
    yield url
    db.dispose_engines()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture
def migrated(database: str) -> str:
    """The database at head, migrated in-process (the CLI path is tested in test_migrations)."""
    command.upgrade(alembic_config(), "head")
    return database


@pytest.fixture
def sql(database: str) -> Iterator[Callable[..., list[tuple]]]:
    """Run one statement in the test database and return its rows (committed)."""
    engine = create_engine(database)

    def run(statement: str, **params: object) -> list[tuple]:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return [tuple(r) for r in result] if result.returns_rows else []

    yield run
    engine.dispose()


@pytest.fixture
def procs() -> Iterator[Callable[..., Proc]]:
    """Start child processes that are killed if the test leaves them running."""
    started: list[Proc] = []

    def start(args: list[str], env: dict[str, str] | None = None, cwd: Path = PROJECT) -> Proc:
        proc = Proc(args, env=env, cwd=cwd)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
