"""orders-app: the HTTP API. Plain `def` endpoints: FastAPI runs them in its thread pool, so the
blocking database calls never stall the event loop."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import SQLAlchemyError

from orders_app import config
from orders_app.db import describe, engine
from orders_app.models import JOB_DONE, JOB_PENDING, jobs, metadata, orders

app = FastAPI(title=config.DIST_NAME, version=config.APP_VERSION)


DEFAULT_NOTE = "no note"


class OrderIn(BaseModel):
    id: str = Field(min_length=1, max_length=256)
    payload: Any = None

    def note(self) -> str:
        if isinstance(self.payload, dict) and self.payload.get("note") is not None:
            return str(self.payload["note"])
        return DEFAULT_NOTE


@app.get("/healthz")
def healthz() -> dict[str, str]:
    # Shallow on purpose: says the process serves, nothing about the database.
    return {"status": "ok"}


@app.get("/healthz/db", response_model=None)
def healthz_db() -> dict[str, str] | JSONResponse:
    """Deep check: every column of every table the code uses, and the schema revision."""
    try:
        with engine().connect() as conn:
            for table in metadata.sorted_tables:
                # LIMIT 0 reads no rows but makes PostgreSQL resolve each table and column.
                conn.execute(select(*table.c).limit(0))
            heads = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except (SQLAlchemyError, config.ConfigError) as exc:
        return JSONResponse({"status": "error", "error": describe(exc)}, status_code=503)
    if not heads:
        return JSONResponse({"status": "error", "error": "alembic_version is empty: no migration ran"}, status_code=503)
    return {"status": "ok", "schema": ",".join(sorted(heads))}


@app.get("/version")
def get_version() -> dict[str, str]:
    return {"version": config.APP_VERSION, "release": config.release()}


@app.get("/")
def root() -> dict[str, Any]:
    # The load generator's GET: one cheap read that still needs the database, and the new
    # column, so this release fails its reads on a schema whose migration did not run.
    with engine().connect() as conn:
        count, notes = conn.execute(select(func.count(), func.count(orders.c.note)).select_from(orders)).one()
    return {"orders": count, "notes": notes, "release": config.release()}


@app.post("/orders", status_code=201)
def create_order(order: OrderIn) -> dict[str, Any]:
    release = config.release()
    # Order and job in one transaction: a job never exists without its order, nor an order
    # without its job. ON CONFLICT makes a client's retry of the same id a no-op that still
    # answers 201, so a request resent across a deploy never enqueues a second job.
    with engine().begin() as conn:
        created = conn.execute(
            pg_insert(orders)
            .values(id=order.id, payload=order.payload, release=release, note=order.note())
            .on_conflict_do_nothing(index_elements=[orders.c.id])
            .returning(orders.c.id)
        ).first()
        if created is not None:
            conn.execute(insert(jobs).values(order_id=order.id))
    return {"id": order.id, "release": release, "created": created is not None}


@app.get("/orders/stats")
def order_stats() -> dict[str, Any]:
    # One snapshot for both queries: the workers keep committing in between.
    with engine().connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        row = conn.execute(text(STATS_SQL), {"pending": JOB_PENDING, "done": JOB_DONE}).mappings().one()
        by_release = conn.execute(
            text(
                "SELECT processed_by_release, count(*) FROM jobs WHERE status = :done "
                "GROUP BY processed_by_release ORDER BY processed_by_release"
            ),
            {"done": JOB_DONE},
        ).all()
    return {**row, "processed_by_release": {str(r): n for r, n in by_release}}


# jobs_duplicated counts every way "each order processed exactly once" can break: a done job
# processed more than once (attempts != 1), and an order with no job or with several.
STATS_SQL = """
SELECT
  (SELECT count(*) FROM orders) AS orders,
  (SELECT count(*) FROM jobs WHERE status = :pending) AS jobs_pending,
  (SELECT count(*) FROM jobs WHERE status = :done) AS jobs_done,
  (SELECT count(*) FROM jobs WHERE status = :done AND attempts <> 1)
  + (SELECT count(*) FROM (
       SELECT o.id FROM orders o LEFT JOIN jobs j ON j.order_id = o.id
       GROUP BY o.id HAVING count(j.id) <> 1) AS odd) AS jobs_duplicated
"""


@app.get("/orders/{order_id}")
def get_order(order_id: str) -> dict[str, Any]:
    with engine().connect() as conn:
        found = conn.execute(select(orders).where(orders.c.id == order_id)).mappings().first()
        if found is None:
            raise HTTPException(status_code=404, detail=f"no order {order_id!r}")
        order_jobs = conn.execute(
            select(jobs.c.id, jobs.c.status, jobs.c.attempts, jobs.c.processed_by_release, jobs.c.processed_by_host)
            .where(jobs.c.order_id == order_id)
            .order_by(jobs.c.id)
        ).mappings().all()
    return {**found, "jobs": [dict(j) for j in order_jobs]}
