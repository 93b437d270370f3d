"""index orders by customer: BROKEN on purpose (the column was never added)

Revision ID: 0003_orders_customer_index
Revises: 0002_order_note

The scenario's failing release: a classic mistake (an index on a column whose add_column was
forgotten), deterministic whatever the data. PostgreSQL answers
`column "customer_id" does not exist`, alembic exits non-zero with that text, and the whole
upgrade is rolled back (one transaction), leaving the schema at 0002_order_note.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_orders_customer_index"
down_revision: str | Sequence[str] | None = "0002_order_note"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_orders_customer_id", "orders", ["customer_id"])


def downgrade() -> None:
    op.drop_index("ix_orders_customer_id", table_name="orders")
