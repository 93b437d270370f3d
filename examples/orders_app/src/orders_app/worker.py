"""Job worker: `python -m orders_app.worker`. Claims one pending job at a time with
FOR UPDATE SKIP LOCKED, so any number of workers on any number of hosts process each job once.
SIGTERM (systemd's stop) lets the job in hand finish and commit, then exits 0.

ORDERS_WORKER_IGNORE_SIGTERM_SECONDS (tests only) makes it linger that long after its last job
before exiting, as a worker whose library threads keep it alive does: systemd kills it after
TimeoutStopSec=."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from types import FrameType

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from orders_app import config
from orders_app.db import describe, engine
from orders_app.models import JOB_DONE, JOB_PENDING

log = logging.getLogger("orders_app.worker")

CLAIM_SQL = text(
    "SELECT id, order_id FROM jobs WHERE status = :pending ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
)
# By id only, not "AND status = 'pending'": if two workers ever claimed the same job, the
# second UPDATE would still apply and attempts would reach 2, which /orders/stats reports.
DONE_SQL = text(
    "UPDATE jobs SET status = :done, attempts = attempts + 1, processed_at = now(),"
    " processed_by_release = :release, processed_by_host = :host WHERE id = :id"
)


class Worker:
    def __init__(self, db: Engine, release: str, host: str, job_seconds: float, idle_seconds: float,
                 linger_seconds: float = 0.0) -> None:
        self.db, self.release, self.host = db, release, host
        self.job_seconds, self.idle_seconds, self.linger_seconds = job_seconds, idle_seconds, linger_seconds
        self.stop = threading.Event()
        self.stop_signal: int | None = None
        self.processed = 0
        self.last_job: int | None = None

    def request_stop(self, signum: int, _frame: FrameType | None) -> None:
        # Only flags: logging from a signal handler can deadlock on the logging lock.
        self.stop_signal = signum
        self.stop.set()

    def process_one(self) -> bool:
        """Claim, process and mark one job in a single transaction; False when none is pending."""
        with self.db.begin() as conn:
            job = conn.execute(CLAIM_SQL, {"pending": JOB_PENDING}).first()
            if job is None:
                return False
            in_hand = self.stop_signal
            # Stand-in for real work; a SIGTERM arriving now only sets the flag, so the sleep
            # (restarted by Python after the handler) and the commit below still happen.
            time.sleep(self.job_seconds)
            conn.execute(DONE_SQL, {"done": JOB_DONE, "release": self.release, "host": self.host, "id": job.id})
        self.processed += 1
        self.last_job = job.id
        if in_hand is None and self.stop_signal is not None:
            log.info("%s received while processing job %s: finished it", signal.Signals(self.stop_signal).name, job.id)
        log.debug("job %s (order %s) done", job.id, job.order_id)
        return True

    def run(self) -> int:
        log.info("worker started: release=%s pid=%d host=%s", self.release, os.getpid(), self.host)
        while not self.stop.is_set():
            try:
                busy = self.process_one()
            except SQLAlchemyError as exc:
                # A database restart (or a schema not migrated yet) must not kill the worker: the
                # claim rolled back, the job stays pending, and a crash-restart loop helps nobody.
                log.warning("database error, retrying in 1 s: %s", describe(exc))
                self.stop.wait(1.0)
                continue
            if not busy:
                self.stop.wait(self.idle_seconds)
        name = signal.Signals(self.stop_signal).name if self.stop_signal else "stop"
        log.info(
            "worker stopping on %s: %d jobs processed (last %s), exiting 0",
            name,
            self.processed,
            self.last_job,
        )
        if self.linger_seconds > 0:
            # Holds no job: the claim's transaction is committed, so a SIGKILL now loses nothing.
            log.warning("lingering %.0f s before exiting (ORDERS_WORKER_IGNORE_SIGTERM_SECONDS)", self.linger_seconds)
            time.sleep(self.linger_seconds)
        return 0


def main() -> int:
    config.setup_logging()
    try:
        worker = Worker(
            engine("worker"),
            release=config.release(),
            host=socket.gethostname(),
            job_seconds=config.float_env("ORDERS_WORKER_JOB_SECONDS", 0.02),
            idle_seconds=config.float_env("ORDERS_WORKER_IDLE_SECONDS", 0.2),
            linger_seconds=config.float_env("ORDERS_WORKER_IGNORE_SIGTERM_SECONDS", 0.0),
        )
    except config.ConfigError as exc:
        log.error("%s", exc)
        return 2
    signal.signal(signal.SIGTERM, worker.request_stop)
    signal.signal(signal.SIGINT, worker.request_stop)
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
