"""The HTTP API against a real PostgreSQL database."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from alembic import command
from fastapi.testclient import TestClient

from orders_app import config
from orders_app.main import OrderIn, app, create_order
from orders_helpers import alembic_config


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def test_shallow_health_needs_no_database(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_deep_health_without_database_url(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    r = client.get("/healthz/db")
    assert r.status_code == 503
    assert "DATABASE_URL is not set" in r.json()["error"]


def test_deep_health_fails_before_migrations_and_passes_after(database: str, client: TestClient) -> None:
    before = client.get("/healthz/db")
    assert before.status_code == 503
    assert before.json()["status"] == "error"
    assert 'relation "orders" does not exist' in before.json()["error"]

    command.upgrade(alembic_config(), "head")
    after = client.get("/healthz/db")
    assert after.status_code == 200, after.text
    assert after.json() == {"status": "ok", "schema": "0001_initial"}


def test_deep_health_names_a_missing_column(migrated: str, client: TestClient, sql: Callable[..., list[tuple]]) -> None:
    sql("ALTER TABLE jobs DROP COLUMN processed_by_host")
    r = client.get("/healthz/db")
    assert r.status_code == 503
    assert "processed_by_host" in r.json()["error"]


def test_deep_health_without_migration_record(migrated: str, client: TestClient, sql: Callable[..., list[tuple]]) -> None:
    sql("DELETE FROM alembic_version")
    r = client.get("/healthz/db")
    assert r.status_code == 503
    assert "no migration ran" in r.json()["error"]


def test_deep_health_with_database_down_answers_fast(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://orders:x@127.0.0.1:1/orders")
    start = time.monotonic()
    r = client.get("/healthz/db")
    assert r.status_code == 503
    assert "127.0.0.1" in r.json()["error"]
    assert time.monotonic() - start < 5


def test_version_reports_release(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTAPI_APP_RELEASE", "20250101-abc")
    assert client.get("/version").json() == {"version": config.APP_VERSION, "release": "20250101-abc"}
    monkeypatch.delenv("FASTAPI_APP_RELEASE")
    assert client.get("/version").json()["release"] == "unknown"


def test_post_then_stats(migrated: str, client: TestClient) -> None:
    assert client.get("/").json() == {"orders": 0, "release": "r-test"}
    for n in range(3):
        r = client.post("/orders", json={"id": f"o-{n}", "payload": {"seq": n}})
        assert r.status_code == 201
        assert r.json() == {"id": f"o-{n}", "release": "r-test", "created": True}
    assert client.get("/").json() == {"orders": 3, "release": "r-test"}
    assert client.get("/orders/stats").json() == {
        "orders": 3,
        "jobs_pending": 3,
        "jobs_done": 0,
        "jobs_duplicated": 0,
        "processed_by_release": {},
    }
    order = client.get("/orders/o-1").json()
    assert order["payload"] == {"seq": 1}
    assert order["release"] == "r-test"
    assert [(j["status"], j["attempts"]) for j in order["jobs"]] == [("pending", 0)]
    assert client.get("/orders/nope").status_code == 404


def test_post_is_idempotent_on_id(migrated: str, client: TestClient, sql: Callable[..., list[tuple]]) -> None:
    first = client.post("/orders", json={"id": "same", "payload": {"a": 1}})
    again = client.post("/orders", json={"id": "same", "payload": {"a": 2}})
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["created"] is True
    assert again.json() == {"id": "same", "release": "r-test", "created": False}
    assert sql("SELECT count(*) FROM orders") == [(1,)]
    assert sql("SELECT count(*) FROM jobs WHERE order_id = 'same'") == [(1,)]
    assert sql("SELECT payload->>'a' FROM orders") == [("1",)]  # the first write wins
    assert client.get("/orders/stats").json()["jobs_duplicated"] == 0


def test_concurrent_resends_enqueue_one_job(migrated: str, sql: Callable[..., list[tuple]]) -> None:
    # The same id from 8 threads at once (a client retrying across a deploy): ON CONFLICT, not luck.
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def post() -> None:
        barrier.wait()
        results.append(create_order(OrderIn(id="race", payload=None))["created"])

    threads = [threading.Thread(target=post) for _unused in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert sql("SELECT count(*) FROM jobs") == [(1,)]


def test_stats_see_duplicates(migrated: str, client: TestClient, sql: Callable[..., list[tuple]]) -> None:
    # What the metric is for: it must not stay 0 when processing did go wrong.
    for oid in ("a", "b", "c"):
        client.post("/orders", json={"id": oid, "payload": None})
    sql("INSERT INTO jobs (order_id) VALUES ('a')")  # a second job for one order
    sql("UPDATE jobs SET status = 'done', attempts = 2 WHERE order_id = 'b'")  # processed twice
    sql("DELETE FROM jobs WHERE order_id = 'c'")  # an order whose job was lost
    stats = client.get("/orders/stats").json()
    assert stats["jobs_duplicated"] == 3
    assert stats["orders"] == 3


def test_post_validates_id(migrated: str, client: TestClient) -> None:
    assert client.post("/orders", json={"payload": {}}).status_code == 422
    assert client.post("/orders", json={"id": "", "payload": {}}).status_code == 422
