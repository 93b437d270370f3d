"""Gunicorn worker for fastapi_app: uvicorn_worker.UvicornWorker with a drain that loses nothing.

Copied by the role into every release's site-packages and named in gunicorn.conf.py as
``fastapi_app_worker.UvicornWorker``. It changes three things, all measured to matter on the
role's pins (gunicorn 27 + uvicorn-worker 0.4 + uvicorn 0.54; tests/unit and the zero_downtime
scenario fail if an upgrade breaks them).

It runs on the versions in roles/fastapi_app/files/serving_range.json (gunicorn >=22.0.0,<28, uvicorn
>=0.30.0,<0.55, uvicorn-worker >=0.2.0,<0.5), so an app's locked serving stack wins: tests/unit runs
test_fastapi_app_worker.py at both ends (``make unit``: the pins, then tests/unit/serving-low.txt).
uvicorn-worker 0.2/0.3 run only with uvicorn <0.36, 0.4 only with uvicorn >=0.36. What differs
inside that range is found out, not looked up by version: the WebSocket protocol is the one
uvicorn's "auto" picks (websockets_sansio_impl from uvicorn 0.50, websockets_impl on websockets'
legacy API before, wsproto_impl without `websockets`), and a late response's ``Connection: close``
is added here wherever uvicorn's request cycle does not write it itself (httptools_impl before
uvicorn 0.53, h11_impl).

1. Draining. On shutdown uvicorn closes every connection that has no request in progress,
   including one it has just accepted whose request bytes are still unread and an idle upstream
   keep-alive connection that nginx may be writing a request into at that very moment: nginx
   sees a reset and answers 502 (and cannot retry a POST). Here such connections stay open for
   ``FASTAPI_APP_DRAIN_SECONDS`` (longer than nginx's upstream keepalive_timeout, so nginx drops
   its idle connections first); a request that still arrives is served with ``Connection:
   close``. WebSockets get their close frame (1012, service restart) after
   ``FASTAPI_APP_WEBSOCKET_GRACE_SECONDS``.
2. Readiness. gunicorn tells systemd READY=1 when its master is up, before any worker has
   imported the app, so "active" did not mean "serving". gunicorn.conf.py hides NOTIFY_SOCKET
   from the master (``defer_ready``); each worker marks itself serving once its app has started
   and it accepts connections, and the one that completes the set sends READY=1. With
   ``NotifyAccess=all`` a start job ends when every worker serves: a handover stops the old
   master only then, not while the new one still boots workers on the same CPUs.
3. Reloads. On a HUP gunicorn forks new workers and stops the old ones at once; nothing accepts
   until the new ones have imported the app (0.4 s idle, seconds on a loaded host). The master's
   on_reload hook marks the reload (``mark_reload``); an old worker told to stop keeps accepting
   until the master's count of workers has started serving since, for at most
   ``REPLACEMENT_WAIT_SECONDS``, then drains as above.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

from gunicorn.arbiter import Arbiter
from uvicorn.protocols.http.h11_impl import H11Protocol

# The WebSocket protocol uvicorn's "auto" picks: WebSocketsSansIOProtocol (websockets_sansio_impl,
# there from uvicorn 0.35, "auto"'s pick from 0.50), WebSocketProtocol (websockets_impl, on
# websockets' legacy API) before that, WSProtocol (wsproto_impl) without `websockets`; None with
# neither library.
from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker as _UvicornWorker

try:  # uvicorn[standard] brings httptools; "auto" falls back to h11 without it, and so do we.
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - the role always installs httptools
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

NOTIFY_ENV = "FASTAPI_APP_NOTIFY_SOCKET"
# Set by the master (defer_ready): where its workers mark themselves serving, and how many it has.
SERVING_DIR_ENV = "FASTAPI_APP_SERVING_DIR"
WORKERS_ENV = "FASTAPI_APP_WORKERS"
# In the serving directory: touched by the master when a HUP begins (not a worker's mark: no digits).
RELOAD_MARK = "reload"
# How long a worker stopped by a reload keeps accepting when its replacements do not come up.
REPLACEMENT_WAIT_SECONDS = 10.0
logger = logging.getLogger("uvicorn.error")
# Set once this worker's server starts shutting down (one server per worker process).
_draining = False


def _seconds(name: str, default: float) -> float:
    try:
        return max(0.0, float(os.environ.get(name, default)))
    except ValueError:
        return default


CLOSE_HEADER = (b"connection", b"close")


def _writes_connection_close(protocol: type | None) -> bool:
    """Whether the request cycle of this uvicorn protocol writes ``Connection: close`` itself
    once its keep_alive is off (httptools_impl of later uvicorns does; older ones, and h11_impl,
    only close the connection after the response, which an upstream keep-alive pool cannot see
    coming). Read from the code of its send(); if that ever moves, the header comes from
    close_after_response() instead, which uvicorn then does not repeat."""
    cycle = getattr(sys.modules.get(getattr(protocol, "__module__", "")), "RequestResponseCycle", None)
    send = getattr(getattr(cycle, "send", None), "__code__", None)
    return send is not None and any(
        isinstance(constant, bytes) and constant.lower().startswith(b"connection: close")
        for constant in send.co_consts
    )


def close_after_response(cycle: Any) -> None:
    """The connection closes once this request's response is sent, and the response says so."""
    cycle.keep_alive = False
    if cycle.response_started or _CYCLE_WRITES_CLOSE.get(type(cycle).__module__, False):
        return
    if CLOSE_HEADER not in cycle.default_headers:
        cycle.default_headers = [*cycle.default_headers, CLOSE_HEADER]


class DrainingMixin:
    """Keep idle connections open while draining; answer late requests with Connection: close."""

    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    _partial = False  # request bytes arrived that do not make a whole request head yet

    def shutdown(self) -> None:
        global _draining
        _draining = True
        if self.cycle is None or self.cycle.response_complete:
            self.loop.call_later(_seconds("FASTAPI_APP_DRAIN_SECONDS", 6.0), self._close_if_idle)
        else:
            close_after_response(self.cycle)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        self._partial = bool(data) and (self.cycle is None or self.cycle.response_complete)
        # A request parsed after the drain began: serve it, then close the connection.
        if _draining and self.cycle is not None:
            close_after_response(self.cycle)

    def _close_if_idle(self, retries: int = 3) -> None:
        # Upgraded to a WebSocket meanwhile: that protocol owns the transport now.
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return
        if self._partial and retries:
            self.loop.call_later(1.0, self._close_if_idle, retries - 1)
        elif self.cycle is None or self.cycle.response_complete:
            self.transport.close()
        else:
            close_after_response(self.cycle)


class DrainingH11Protocol(DrainingMixin, H11Protocol):
    pass


if HttpToolsProtocol is not None:

    class DrainingHttpToolsProtocol(DrainingMixin, HttpToolsProtocol):
        pass


# By the module of the request cycle (each protocol's module has its own RequestResponseCycle).
_CYCLE_WRITES_CLOSE = {
    protocol.__module__: _writes_connection_close(protocol) for protocol in (H11Protocol, HttpToolsProtocol) if protocol
}


class GraceWebSocketMixin:
    """Over the protocol uvicorn's "auto" picks: its close frame (1012, service restart) comes
    after a grace."""

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[misc]
        # Upgraded on a connection the drain kept open: the server's shutdown call has passed
        # it by, so it schedules its own close frame, after the same grace.
        if _draining:
            grace = _seconds("FASTAPI_APP_WEBSOCKET_GRACE_SECONDS", 0.0)
            self.loop.call_later(max(grace, 0.5), self._shutdown_now)

    def _handshake_complete(self) -> bool:
        # websockets_impl (websockets' legacy API) has an event; sansio and wsproto a flag.
        event = getattr(self, "handshake_completed_event", None)
        if event is not None:
            return bool(event.is_set())
        return bool(getattr(self, "handshake_complete", False))

    def shutdown(self) -> None:
        grace = _seconds("FASTAPI_APP_WEBSOCKET_GRACE_SECONDS", 0.0)
        # close_sent: a flag (sansio, wsproto) or the Close frame sent, None before (legacy).
        if grace and self._handshake_complete() and not getattr(self, "close_sent", None):
            self.loop.call_later(grace, self._shutdown_now)
        else:
            super().shutdown()  # type: ignore[misc]

    def _shutdown_now(self) -> None:
        if not self.transport.is_closing():
            super().shutdown()  # type: ignore[misc]


GraceWebSocketProtocol: type[asyncio.Protocol] | None = None
if AutoWebSocketsProtocol is not None:

    class GraceWebSocketProtocol(GraceWebSocketMixin, AutoWebSocketsProtocol):  # type: ignore[no-redef,misc,valid-type]
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def serving_marks(directory: str) -> list[str]:
    """The marks (file names: pids) of the workers in the serving directory that still run."""
    return [name for name in os.listdir(directory) if name.isdigit() and _alive(int(name))]


def all_workers_serving() -> bool:
    """Mark this worker serving; true once every worker of its master is. Each worker writes its
    mark before it counts, so the last one to start always sees them all; a worker that died
    after its mark does not count."""
    directory = os.environ.get(SERVING_DIR_ENV)
    if not directory:
        return True
    try:
        Path(directory, str(os.getpid())).touch()
        serving = serving_marks(directory)
    except OSError as error:
        logger.warning("could not count the serving workers, announcing readiness: %s", error)
        return True
    return len(serving) >= int(os.environ.get(WORKERS_ENV, "1"))


def mark_reload() -> None:
    """Called from gunicorn's on_reload hook, before the master forks the new workers."""
    directory = os.environ.get(SERVING_DIR_ENV)
    if directory:
        try:
            Path(directory, RELOAD_MARK).touch()
        except OSError as error:
            logger.warning("could not mark the reload; its old workers stop at once: %s", error)


def replacements_serving() -> bool:
    """False while a reload that began after this worker started serving has fewer workers
    serving since than the master runs: this worker is one the reload replaces, and the only kind
    that accepts yet. True for any other stop."""
    directory = os.environ.get(SERVING_DIR_ENV)
    if not directory:
        return True
    try:
        reload_at = os.stat(os.path.join(directory, RELOAD_MARK)).st_mtime_ns
        if reload_at < os.stat(os.path.join(directory, str(os.getpid()))).st_mtime_ns:
            return True
        newer = sum(1 for name in serving_marks(directory) if os.stat(os.path.join(directory, name)).st_mtime_ns >= reload_at)
    except OSError:
        return True
    return newer >= int(os.environ.get(WORKERS_ENV, "1"))


def notify_ready() -> None:
    """Send READY=1 to systemd on the socket gunicorn.conf.py kept aside for the workers, once
    every worker serves."""
    address = os.environ.get(NOTIFY_ENV, "")
    if not address or not all_workers_serving():
        return
    if address[0] == "@":
        address = "\0" + address[1:]
    # Like gunicorn's own sd_notify: a notification that cannot be sent must not stop the worker,
    # and must not block its event loop either.
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.send(b"READY=1\nSTATUS=serving", socket.MSG_DONTWAIT)
    except OSError as error:
        logger.warning("could not notify systemd of readiness: %s", error)


def defer_ready(workers: int = 1) -> None:
    """Called from gunicorn's on_starting hook: the master must not announce READY itself; its
    `workers` do once all of them serve, counted in the unit's runtime directory (without one,
    each worker announces itself)."""
    address = os.environ.pop("NOTIFY_SOCKET", None)
    if not address:
        return
    os.environ[NOTIFY_ENV] = address
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        serving = os.path.join(runtime, "serving")
        shutil.rmtree(serving, ignore_errors=True)
        os.makedirs(serving)
        os.environ[SERVING_DIR_ENV] = serving
        os.environ[WORKERS_ENV] = str(workers)


class ReadyServer(Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            notify_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Still accepting: stop only once the workers of a reload serve (or their wait is over).
        deadline = time.monotonic() + REPLACEMENT_WAIT_SECONDS
        while not replacements_serving() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await super().shutdown(sockets=sockets)


class UvicornWorker(_UvicornWorker):
    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "auto",
        "http": DrainingHttpToolsProtocol if HttpToolsProtocol is not None else DrainingH11Protocol,
        # No WebSocket library at all: "auto" (uvicorn then answers upgrades as plain HTTP).
        "ws": GraceWebSocketProtocol if GraceWebSocketProtocol is not None else "auto",
    }

    async def _serve(self) -> None:
        # uvicorn_worker.UvicornWorker._serve with ReadyServer in place of Server.
        self.config.app = self.wsgi
        server = ReadyServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
