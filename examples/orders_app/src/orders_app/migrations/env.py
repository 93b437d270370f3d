"""Alembic environment: the URL comes from DATABASE_URL, the same variable the app reads."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from orders_app import config as app_config
from orders_app.models import metadata

alembic_config = context.config
if alembic_config.config_file_name is not None:
    fileConfig(alembic_config.config_file_name, disable_existing_loggers=False)


def run_offline() -> None:
    """`alembic upgrade head --sql`: print the DDL for review instead of running it."""
    context.configure(url=app_config.database_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    # NullPool: a migration run is one short-lived process, nothing to keep open.
    connectable = create_engine(
        app_config.database_url(),
        poolclass=pool.NullPool,
        connect_args={"application_name": f"orders_app alembic {app_config.release()}"[:63]},
    )
    with connectable.connect() as connection:
        # One transaction for the whole upgrade (PostgreSQL has transactional DDL): a failing
        # migration leaves the schema and alembic_version exactly as they were.
        context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=False)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
