"""orders.note (expand)

Revision ID: 0002_order_note
Revises: 0001_initial
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_order_note"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Expand only: a nullable column without a default is a catalog change (no table rewrite,
    # a brief lock), and 1.0.0, still serving while this runs and after a rollback, ignores it.
    op.add_column("orders", sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    # Loses the notes: run only once no serving release reads them (the contract step).
    op.drop_column("orders", "note")
