"""Settings from the environment, read on each call so tests (and one process per release) see the
current values; the role sets FASTAPI_APP_RELEASE and the operator sets DATABASE_URL."""

from __future__ import annotations

import logging
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from sqlalchemy.engine import URL, make_url

DIST_NAME = "orders-app"

try:
    APP_VERSION = version(DIST_NAME)
except PackageNotFoundError:  # running from a source tree that was never installed
    APP_VERSION = "0+unknown"


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


def database_url() -> URL:
    raw = os.environ.get("DATABASE_URL", "").strip()
    if not raw:
        raise ConfigError("DATABASE_URL is not set (e.g. postgresql+psycopg://orders:secret@db/orders)")
    try:
        url = make_url(raw)
    except Exception as exc:  # SQLAlchemy raises ArgumentError; its text has no variable name
        raise ConfigError(f"DATABASE_URL is not a database URL: {exc}") from None
    # Only psycopg 3 is installed: a plain postgresql:// URL (what most tools print) would
    # otherwise make SQLAlchemy look for psycopg2.
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def release() -> str:
    return os.environ.get("FASTAPI_APP_RELEASE") or "unknown"


def int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def setup_logging() -> None:
    """Plain lines on stdout: under systemd they land in the journal with their own timestamps."""
    level = os.environ.get("ORDERS_APP_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(stream=sys.stdout, level=level, format="%(levelname)s %(name)s: %(message)s")
