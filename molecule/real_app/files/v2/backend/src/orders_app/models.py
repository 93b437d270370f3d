"""The tables the code uses. The deep health check selects every column declared here, so a
release whose migrations did not run fails it; `alembic check` compares this with the migrations."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, ForeignKey, Index, Integer, MetaData, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB

# Deterministic constraint names, so migrations can drop or alter them by name later.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

orders = Table(
    "orders",
    metadata,
    Column("id", Text, primary_key=True),
    Column("payload", JSONB),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("release", Text, nullable=False),
    # 1.1.0, migration 0002 (expand): nullable, so 1.0.0 code that never writes it keeps working.
    Column("note", Text),
)

JOB_PENDING, JOB_DONE = "pending", "done"

jobs = Table(
    "jobs",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("order_id", Text, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("status", Text, nullable=False, server_default=JOB_PENDING),
    # No unique constraint on order_id on purpose: /orders/stats must be able to *see* a second
    # job for an order (a broken idempotency), not turn it into a 500.
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("enqueued_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("processed_at", DateTime(timezone=True)),
    Column("processed_by_release", Text),
    Column("processed_by_host", Text),
    CheckConstraint(f"status IN ('{JOB_PENDING}', '{JOB_DONE}')", name="status"),
)
# The worker's claim query scans only pending jobs, oldest first.
Index("ix_jobs_pending", jobs.c.id, postgresql_where=jobs.c.status == JOB_PENDING)

reports = Table(
    "reports",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("ran_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("release", Text, nullable=False),
    Column("orders", Integer, nullable=False),
)
