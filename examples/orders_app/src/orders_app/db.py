"""One SQLAlchemy engine per process and database URL, created on first use."""

from __future__ import annotations

import os
import threading

from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError

from orders_app import config

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def engine(component: str = "web") -> Engine:
    """The engine for the current DATABASE_URL. Created lazily so that a gunicorn master that
    imports the app before forking never holds a connection its workers would share."""
    url = config.database_url()
    key = f"{component} {url.render_as_string(hide_password=False)}"
    with _lock:
        found = _engines.get(key)
        if found is None:
            found = _engines[key] = create_engine(
                url,
                # A connection the database closed (restart, failover) is replaced, not served as a 500.
                pool_pre_ping=True,
                # Every gunicorn worker has its own pool: keep the sum under max_connections.
                pool_size=config.int_env("DATABASE_POOL_SIZE", 5),
                max_overflow=config.int_env("DATABASE_MAX_OVERFLOW", 5),
                pool_timeout=10,
                connect_args={
                    # A deep health check must answer 503 quickly when the database is unreachable.
                    "connect_timeout": config.int_env("DATABASE_CONNECT_TIMEOUT", 5),
                    # pg_stat_activity then shows which release and component holds each connection.
                    "application_name": f"orders_app {component} {config.release()}"[:63],
                },
            )
    return found


def dispose_engines() -> None:
    """Close every pooled connection (tests, before dropping their database)."""
    with _lock:
        for found in _engines.values():
            found.dispose()
        _engines.clear()


def _forget_engines_in_child() -> None:
    global _lock
    # Another thread of the parent may have held the lock at fork time; the child has only this one.
    _lock = threading.Lock()
    # After a fork the child must not use (nor close) the parent's sockets: drop the references only.
    for found in _engines.values():
        found.dispose(close=False)
    _engines.clear()


os.register_at_fork(after_in_child=_forget_engines_in_child)


def describe(exc: BaseException) -> str:
    """The database's own message (first line), which names the missing table or column."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        text = str(exc.orig)
    else:
        text = str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
