"""The job worker as systemd runs it: `python -m orders_app.worker` child processes."""

from __future__ import annotations

import re
import signal
import socket
import sys
import time
from collections.abc import Callable

from alembic import command
from sqlalchemy import create_engine, text

from orders_helpers import Proc, alembic_config, wait_until

WORKER = [sys.executable, "-m", "orders_app.worker"]


def enqueue(sql: Callable[..., list[tuple]], count: int) -> None:
    # The same two rows POST /orders writes, without going through HTTP 200 times.
    sql(
        "WITH o AS (INSERT INTO orders (id, payload, release) "
        "SELECT 'o-' || n, jsonb_build_object('n', n), 'r-test' FROM generate_series(1, :count) AS n RETURNING id) "
        "INSERT INTO jobs (order_id) SELECT id FROM o",
        count=count,
    )


def pending(sql: Callable[..., list[tuple]]) -> int:
    return sql("SELECT count(*) FROM jobs WHERE status = 'pending'")[0][0]


def test_two_workers_process_each_job_exactly_once(
    migrated: str, sql: Callable[..., list[tuple]], procs: Callable[..., Proc]
) -> None:
    env = {"FASTAPI_APP_RELEASE": "r-workers", "ORDERS_APP_LOG_LEVEL": "DEBUG"}
    workers = [procs(WORKER, env=env) for _unused in range(2)]
    for w in workers:
        start = w.wait_for("worker started")
        assert f"release=r-workers pid={w.popen.pid}" in start
    enqueue(sql, 200)  # after both are polling, so both compete for the whole batch

    wait_until(lambda: pending(sql) == 0, timeout=90, what="200 jobs drained")
    for w in workers:
        w.popen.send_signal(signal.SIGTERM)
    assert [w.finish() for w in workers] == [0, 0]

    assert sql("SELECT status, attempts, processed_by_release, processed_by_host, count(*) FROM jobs GROUP BY 1, 2, 3, 4") == [
        ("done", 1, "r-workers", socket.gethostname(), 200)
    ]
    # The workers' own accounts: disjoint, together every job, and both did work.
    done = [{int(m) for m in re.findall(r"job (\d+) \(order", w.output)} for w in workers]
    assert done[0] and done[1], [w.output[-500:] for w in workers]
    assert not done[0] & done[1]
    assert done[0] | done[1] == {r[0] for r in sql("SELECT id FROM jobs")}
    for w in workers:
        assert "worker stopping on SIGTERM" in w.output


def test_sigterm_while_busy_finishes_the_job(
    migrated: str, sql: Callable[..., list[tuple]], procs: Callable[..., Proc]
) -> None:
    worker = procs(WORKER, env={"ORDERS_WORKER_JOB_SECONDS": "1.5"})
    worker.wait_for("worker started")
    enqueue(sql, 1)

    # Claimed = still pending but locked: SKIP LOCKED hides it from this probe.
    probe = create_engine(migrated)
    try:

        def claimed() -> bool:
            with probe.begin() as conn:
                free = conn.execute(text("SELECT id FROM jobs WHERE status = 'pending' FOR UPDATE SKIP LOCKED")).all()
                return not free and pending(sql) == 1

        wait_until(claimed, timeout=10, what="the worker to claim the job")
    finally:
        probe.dispose()
    sent = time.monotonic()
    worker.popen.send_signal(signal.SIGTERM)
    assert worker.finish(timeout=15) == 0, worker.output
    assert time.monotonic() - sent < 5

    assert sql("SELECT status, attempts, processed_by_release FROM jobs") == [("done", 1, "r-test")]
    assert "SIGTERM received while processing job" in worker.output
    assert "worker stopping on SIGTERM: 1 jobs processed" in worker.output


def test_sigterm_while_idle_exits_promptly(migrated: str, procs: Callable[..., Proc]) -> None:
    worker = procs(WORKER)
    worker.wait_for("worker started")
    sent = time.monotonic()
    worker.popen.send_signal(signal.SIGTERM)
    assert worker.finish(timeout=10) == 0, worker.output
    assert time.monotonic() - sent < 3
    assert "worker stopping on SIGTERM: 0 jobs processed" in worker.output


def test_worker_outlives_a_missing_schema(database: str, sql: Callable[..., list[tuple]], procs: Callable[..., Proc]) -> None:
    # Started before the first migration (a fresh database host): it waits instead of dying.
    worker = procs(WORKER)
    worker.wait_for('database error, retrying in 1 s: relation "jobs" does not exist')
    command.upgrade(alembic_config(), "head")
    enqueue(sql, 3)
    wait_until(lambda: pending(sql) == 0, timeout=30, what="3 jobs drained after the migration")
    worker.popen.send_signal(signal.SIGTERM)
    assert worker.finish() == 0, worker.output


def test_worker_without_database_url_fails_clearly(procs: Callable[..., Proc]) -> None:
    worker = procs(WORKER, env={"DATABASE_URL": ""})
    assert worker.finish() == 2
    assert "DATABASE_URL is not set" in worker.output


def test_ignore_sigterm_seconds_lingers_after_the_last_job(migrated: str, procs: Callable[..., Proc]) -> None:
    # What a worker kept alive by a stray thread does: says it stops, then does not exit.
    worker = procs(WORKER, env={"ORDERS_WORKER_IGNORE_SIGTERM_SECONDS": "2"})
    worker.wait_for("worker started")
    sent = time.monotonic()
    worker.popen.send_signal(signal.SIGTERM)
    worker.wait_for("lingering 2 s before exiting")
    assert worker.finish(timeout=10) == 0, worker.output
    assert time.monotonic() - sent >= 2
    assert "worker stopping on SIGTERM: 0 jobs processed" in worker.output
