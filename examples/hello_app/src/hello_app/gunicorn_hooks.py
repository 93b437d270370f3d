"""gunicorn server hooks of hello-app, named by the role's fastapi_app_gunicorn_hooks.

Each leaves a mark, one line in ``hooks.log`` of the app's data directory (the unit's
StateDirectory, /var/lib/<app>), so a test can tell that the app's hooks ran beside the role's:
``on_starting`` once per master (where an app would run its start-up work), ``post_fork`` once per
worker (where an app resets what a fork must not share, such as a database pool).
"""

from __future__ import annotations

import os
import time
from typing import Any

from hello_app.main import data_dir


def mark(hook: str, **fields: Any) -> None:
    line = " ".join([hook, f"pid={os.getpid()}", f"release={os.environ.get('FASTAPI_APP_RELEASE', '')}", f"time={time.time():.3f}",
                     *(f"{k}={v}" for k, v in fields.items())]) + "\n"
    # One write with O_APPEND: the master and its workers never interleave lines.
    fd = os.open(data_dir() / "hooks.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def on_starting(server: Any) -> None:
    mark("on_starting", workers=server.num_workers)


def post_fork(server: Any, worker: Any) -> None:
    mark("post_fork", master=os.getppid())
