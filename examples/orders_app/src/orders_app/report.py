"""Scheduled report: `python -m orders_app.report` (a systemd timer's oneshot). Records one row
in reports and prints it; any database failure exits non-zero with the database's message, so
the failed run shows in `systemctl list-timers` and the journal."""

from __future__ import annotations

import json
import sys

from sqlalchemy import func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from orders_app import config
from orders_app.db import describe, engine
from orders_app.models import orders, reports


def run() -> dict[str, object]:
    with engine("report").begin() as conn:
        count = conn.execute(select(func.count()).select_from(orders)).scalar_one()
        row = conn.execute(
            insert(reports)
            .values(release=config.release(), orders=count)
            .returning(reports.c.id, reports.c.ran_at, reports.c.release, reports.c.orders)
        ).mappings().one()
    return {**row, "ran_at": row["ran_at"].isoformat()}


def main() -> int:
    try:
        row = run()
    except (SQLAlchemyError, config.ConfigError) as exc:
        print(f"report failed: {describe(exc)}", file=sys.stderr)
        return 1
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
