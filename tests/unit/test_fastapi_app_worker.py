"""End-to-end tests of roles/fastapi_app/files/fastapi_app_worker.py, the role's gunicorn worker.

Every test starts a real gunicorn master (``sys.executable -m gunicorn``) from a config file
written to tmp_path, shaped like the role's gunicorn.conf.py: bound to a unix socket in tmp_path,
``worker_class = "fastapi_app_worker.UvicornWorker"``, ``on_starting`` calling
``fastapi_app_worker.defer_ready(server.num_workers)`` and the drain / WebSocket-grace seconds exported through
``os.environ``. ``roles/fastapi_app/files`` is put on the subprocess' PYTHONPATH, as the role
puts the module into the release's site-packages. NOTIFY_SOCKET points to a unix datagram socket
the test owns, with SO_PASSCRED on so every datagram carries its sender's pid, like systemd's.

The app (written to tmp_path) sleeps in its lifespan startup and then drops a marker file named
after its pid, so "READY=1 only after the app started" is checked per sender, not guessed from
timing. Worker log lines ("Shutting down" from uvicorn) tell the test when a worker has begun
its drain. Baselines run the same scenarios against gunicorn's and uvicorn-worker's own
behaviour to show the assertions do fail when the module's behaviour is missing.

Only unix sockets in tmp_path are used; each gunicorn runs in its own session and the fixture
kills that process group when the test ends.

The servers run on ``--serving-python`` (or $TEST_SERVING_PYTHON), by default this interpreter:
``make unit`` runs this module once with the toolchain's venv (the role's pins, the top of
roles/fastapi_app/files/serving_range.json) and once with .venv-serving-low (tests/unit/serving-low.txt,
its low end). The clients (this process) are the same in both runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

websockets_sync = pytest.importorskip("websockets.sync.client")
from websockets.exceptions import ConnectionClosed  # noqa: E402

FILES = Path(__file__).resolve().parents[2] / "roles" / "fastapi_app" / "files"
SERVING_RANGE = FILES / "serving_range.json"
WORKER = "fastapi_app_worker.UvicornWorker"
PLAIN_WORKER = "uvicorn_worker.UvicornWorker"

DRAIN = 2.0  # FASTAPI_APP_DRAIN_SECONDS
STARTUP_DELAY = 0.5  # the app's lifespan startup
BOOT_TIMEOUT = 20.0  # generous: only reached when something is broken
# An answer this fast cannot have waited for a worker's lifespan startup (STARTUP_DELAY).
AT_ONCE = 0.4

APP_SOURCE = '''
import asyncio
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

MARKERS = Path(os.environ["TEST_MARKER_DIR"])


@asynccontextmanager
async def lifespan(app):
    # A file in the working directory overrides the delay for workers booted after it is written.
    override = Path("startup-delay")
    await asyncio.sleep(float(override.read_text() if override.exists() else os.environ["TEST_STARTUP_DELAY"]))
    if os.environ.get("TEST_STARTUP_FAIL"):
        raise RuntimeError("lifespan startup fails on purpose")
    (MARKERS / f"started-{os.getpid()}").write_text(repr(time.time()))
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def root():
    return {"ok": True, "pid": os.getpid()}


@app.get("/slow")
async def slow(seconds: float = 1.0):
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@app.websocket("/ws")
async def echo(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass
'''

BROKEN_IMPORT_SOURCE = 'raise RuntimeError("the app fails to import on purpose")\n'

CONFIG_TEMPLATE = '''
import os

wsgi_app = {app!r}
worker_class = {worker_class!r}
workers = {workers}
bind = [{bind!r}]
chdir = {chdir!r}
# Longer than the drain: an idle connection closed during the drain was closed by the drain.
keepalive = 30
timeout = 30
graceful_timeout = 15
loglevel = "info"
errorlog = "-"
control_socket = {control_socket!r}

os.environ["FASTAPI_APP_DRAIN_SECONDS"] = {drain!r}
os.environ["FASTAPI_APP_WEBSOCKET_GRACE_SECONDS"] = {ws_grace!r}
'''

ON_STARTING = '''

def on_starting(server):
    import fastapi_app_worker

    fastapi_app_worker.defer_ready(server.num_workers)


def on_reload(server):
    import fastapi_app_worker

    fastapi_app_worker.mark_reload()
'''

# uvicorn's Server.shutdown() logs exactly this before it calls shutdown() on every connection;
# the master's own line is "Shutting down: Master".
WORKER_SHUTDOWN = re.compile(r"^\[[^]]+\] \[(\d+)\] \[INFO\] Shutting down$", re.MULTILINE)
CLOSED = (EOFError, ConnectionResetError, BrokenPipeError)


# --------------------------------------------------------------------------------------------
# systemd's side: the notify socket


@dataclass(frozen=True)
class Datagram:
    pid: int
    payload: bytes
    received: float  # time.monotonic()
    app_started: bool  # the sender's app had written its "started" marker when it arrived


class NotifySocket:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET (sender pid via SCM_CREDENTIALS)."""

    def __init__(self, path: Path, markers: Path) -> None:
        self.path = path
        self.markers = markers
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(str(path))
        self.received: list[Datagram] = []

    def receive(self, timeout: float) -> Datagram | None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            payload, ancillary, _unused, _unused = self.sock.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
        except TimeoutError:
            return None
        now = time.monotonic()
        pid = 0
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", data[: struct.calcsize("3i")])[0]
        assert pid, "no SCM_CREDENTIALS on the notify datagram"
        datagram = Datagram(pid, payload, now, (self.markers / f"started-{pid}").exists())
        self.received.append(datagram)
        return datagram

    def receive_all(self, timeout: float) -> list[Datagram]:
        """Everything that arrives within `timeout` (the socket stays quiet once nothing comes)."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            self.receive(remaining)
        return self.received

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------------------------
# HTTP/1.1 over the unix socket


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpConnection:
    """One client connection; requests are sent keep-alive, as nginx does upstream."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buffer = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the server")
        self.buffer += chunk

    def send(self, target: str = "/") -> None:
        self.sock.sendall(f"GET {target} HTTP/1.1\r\nHost: test\r\nConnection: keep-alive\r\n\r\n".encode())

    def request(self, target: str = "/", timeout: float = 5.0) -> Response:
        self.sock.settimeout(timeout)
        self.send(target)
        return self.read_response(timeout)

    def read_response(self, timeout: float = 5.0) -> Response:
        self.sock.settimeout(timeout)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _unused, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Response(int(status_line.split()[1]), headers, body)

    def wait_closed(self, deadline: float) -> float:
        """monotonic time at which the server closed the connection (EOF or reset)."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("the server did not close the connection in time")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return time.monotonic()
            except TimeoutError:
                continue
            if not chunk:
                return time.monotonic()
            raise AssertionError(f"unexpected bytes on an idle connection: {chunk!r}")

    def is_open(self) -> bool:
        """True when the server has neither closed nor written to the connection (non-blocking peek)."""
        self.sock.setblocking(False)
        try:
            return self.sock.recv(1, socket.MSG_PEEK) != b""  # data would be unexpected, but open
        except BlockingIOError:
            return True
        except ConnectionResetError:
            return False
        finally:
            self.sock.setblocking(True)

    def close(self) -> None:
        self.sock.close()


def closes_without_answer(connection: HttpConnection) -> bool:
    try:
        connection.request("/", timeout=3.0)
    except CLOSED:
        return True
    return False


# --------------------------------------------------------------------------------------------
# gunicorn


class Gunicorn:
    def __init__(self, tmp: Path, notify: NotifySocket, process: subprocess.Popen[bytes], log: Path) -> None:
        self.tmp = tmp
        self.notify = notify
        self.process = process
        self.log_path = log
        self.sock_path = tmp / "app.sock"
        self.terminated_at: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> set[int]:
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return {int(pid) for pid in children.read_text().split()}
        except FileNotFoundError:
            return set()

    def connect(self) -> HttpConnection:
        return HttpConnection(self.sock_path)

    def wait_serving(self, timeout: float = BOOT_TIMEOUT) -> Response:
        """First answer to GET / (the socket exists once the master bound it)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"gunicorn exited early:\n{self.log()}"
            assert time.monotonic() < deadline, f"gunicorn never listened on its socket:\n{self.log()}"
            try:
                connection = self.connect()
                break
            except (FileNotFoundError, ConnectionRefusedError):  # not bound yet, or bound but not listening
                time.sleep(0.02)
        try:
            response = connection.request("/", timeout=deadline - time.monotonic())
        finally:
            connection.close()
        assert response.status == 200, self.log()
        return response

    def terminate(self) -> float:
        """SIGTERM to the master, as systemd's KillMode=mixed does; returns when it was sent."""
        self.terminated_at = time.monotonic()
        os.kill(self.pid, signal.SIGTERM)
        return self.terminated_at

    def wait_worker_shutdown(self, count: int = 1, timeout: float = 5.0) -> None:
        """Until `count` workers logged uvicorn's "Shutting down", i.e. began their drain."""
        deadline = time.monotonic() + timeout
        while len(WORKER_SHUTDOWN.findall(self.log())) < count:
            assert time.monotonic() < deadline, f"no worker began shutting down:\n{self.log()}"
            time.sleep(0.01)

    def wait_exit(self, deadline: float) -> int:
        try:
            return self.process.wait(timeout=max(deadline - time.monotonic(), 0.001))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"gunicorn still runs at its deadline:\n{self.log()}") from None

    def kill(self) -> None:
        """Finalizer: the master's whole process group (master and workers) goes, whatever state it is in."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignored
            pass


StartGunicorn = Callable[..., Gunicorn]

VERSIONS_SCRIPT = """
import json, sys
from importlib.metadata import PackageNotFoundError, version

names = sys.argv[1:]
found = {}
for name in names:
    try:
        found[name] = version(name)
    except PackageNotFoundError:
        found[name] = None
print(json.dumps(found))
"""


@pytest.fixture(scope="session")
def serving_python(pytestconfig: pytest.Config) -> str:
    """The interpreter the gunicorn masters (and so their workers) run."""
    # Absolute, not resolved: the masters start in tmp_path, and a venv's python must keep its path.
    python = os.path.abspath(pytestconfig.getoption("--serving-python") or sys.executable)
    assert os.access(python, os.X_OK), f"--serving-python {python!r} is not an executable"
    return python


@pytest.fixture(scope="session")
def serving_versions(serving_python: str) -> dict[str, str | None]:
    """Versions of the serving stack in the serving interpreter's site-packages."""
    names = [*json.loads(SERVING_RANGE.read_text()), "websockets", "wsproto", "httptools", "uvloop"]
    out = subprocess.run(
        [serving_python, "-c", VERSIONS_SCRIPT, *names], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    markers = tmp_path / "markers"
    markers.mkdir()
    sock = NotifySocket(tmp_path / "notify.sock", markers)
    yield sock
    sock.close()


@pytest.fixture
def start_gunicorn(tmp_path: Path, notify: NotifySocket, serving_python: str) -> Iterator[StartGunicorn]:
    started: list[Gunicorn] = []
    log_files: list[Any] = []

    def start(
        *,
        worker_class: str = WORKER,
        workers: int = 1,
        app: str = "testapp:app",
        defer_ready: bool = True,
        ws_grace: float = 0.0,
        extra_env: dict[str, str] | None = None,
    ) -> Gunicorn:
        assert not started, "one gunicorn per test: they would share the socket path"
        (tmp_path / "testapp.py").write_text(APP_SOURCE)
        (tmp_path / "brokenapp.py").write_text(BROKEN_IMPORT_SOURCE)
        sock_path = tmp_path / "app.sock"
        assert len(str(sock_path)) < 100, "unix socket path too long for sun_path"
        config = CONFIG_TEMPLATE.format(
            app=app,
            worker_class=worker_class,
            workers=workers,
            bind=f"unix:{sock_path}",
            chdir=str(tmp_path),
            control_socket=str(tmp_path / "gunicorn.ctl"),
            drain=str(DRAIN),
            ws_grace=str(ws_grace),
        )
        if defer_ready:
            config += ON_STARTING
        config_path = tmp_path / "gunicorn.conf.py"
        config_path.write_text(config)

        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("LISTEN_", "GUNICORN_", "FASTAPI_APP_", "NOTIFY_SOCKET", "PYTHONPATH"))
        }
        runtime = tmp_path / "run"
        runtime.mkdir()
        env.update(
            # systemd's RuntimeDirectory=, where the workers count themselves serving.
            RUNTIME_DIRECTORY=str(runtime),
            PYTHONPATH=os.pathsep.join([str(FILES), str(tmp_path)]),
            PYTHONUNBUFFERED="1",
            NOTIFY_SOCKET=str(notify.path),
            TEST_MARKER_DIR=str(notify.markers),
            TEST_STARTUP_DELAY=str(STARTUP_DELAY),
        )
        env.update(extra_env or {})
        log_path = tmp_path / "gunicorn.log"
        log_file = log_path.open("wb")
        log_files.append(log_file)
        process = subprocess.Popen(
            [serving_python, "-m", "gunicorn", "--config", str(config_path)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the finalizer kills master and workers
        )
        gunicorn = Gunicorn(tmp_path, notify, process, log_path)
        started.append(gunicorn)
        return gunicorn

    yield start

    for gunicorn in started:
        gunicorn.kill()
    for log_file in log_files:
        log_file.close()


# --------------------------------------------------------------------------------------------
# 0. the serving stack under test


def test_the_serving_stack_lies_in_the_supported_range(serving_versions: dict[str, str | None]) -> None:
    """Whatever --serving-python holds is inside serving_range.json, or these tests prove nothing
    about the range (the worker module itself makes no version check)."""
    from packaging.specifiers import SpecifierSet

    for name, specifier in json.loads(SERVING_RANGE.read_text()).items():
        installed = serving_versions[name]
        assert installed is not None, f"{name} is not installed for the serving python"
        assert installed in SpecifierSet(specifier), f"{name} {installed} is outside {specifier}"


# --------------------------------------------------------------------------------------------
# 1. readiness


def test_ready_comes_once_every_worker_serves(start_gunicorn: StartGunicorn, notify: NotifySocket) -> None:
    gunicorn = start_gunicorn(workers=3)

    first = notify.receive(BOOT_TIMEOUT)
    assert first is not None, f"no READY=1 at all:\n{gunicorn.log()}"
    # At that very moment every worker's app has started, and a request is answered at once.
    workers = gunicorn.worker_pids()
    started = {int(marker.name.removeprefix("started-")) for marker in notify.markers.iterdir()}
    assert len(workers) == 3 and started >= workers, f"READY=1 while only {started} of {workers} serve"
    began = time.monotonic()
    connection = gunicorn.connect()
    response = connection.request("/")
    answered_in = time.monotonic() - began
    connection.close()
    assert response.status == 200
    assert answered_in < AT_ONCE, f"READY=1 came {answered_in:.2f}s before the app could answer"

    notify.receive_all(0.3)  # nothing else but, at most, a worker that counted all at the same moment
    for datagram in notify.received:
        assert datagram.pid != gunicorn.pid, "the master announced READY=1 itself"
        assert datagram.pid in workers
        assert datagram.payload == b"READY=1\nSTATUS=serving"
        assert datagram.app_started, "READY=1 before the sender's lifespan startup finished"
    count = len(notify.received)
    assert count < 3, "every worker announced itself, not the one that completed the set"

    gunicorn.terminate()
    assert gunicorn.wait_exit(time.monotonic() + DRAIN + 5) == 0
    assert len(notify.received) == count, "no notification on shutdown"


def test_without_a_runtime_directory_each_worker_announces_itself(
    start_gunicorn: StartGunicorn, notify: NotifySocket
) -> None:
    gunicorn = start_gunicorn(workers=2, extra_env={"RUNTIME_DIRECTORY": ""})
    while len(notify.received) < 2:
        assert notify.receive(BOOT_TIMEOUT) is not None, f"only one READY=1:\n{gunicorn.log()}"
    assert {d.pid for d in notify.received} == gunicorn.worker_pids()
    assert all(d.app_started for d in notify.received)


def test_baseline_without_defer_ready_the_master_announces_too_early(
    start_gunicorn: StartGunicorn, notify: NotifySocket
) -> None:
    """Without the on_starting hook gunicorn's master says READY=1 before any app started:
    the assertions of the test above catch exactly that."""
    gunicorn = start_gunicorn(defer_ready=False)

    first = notify.receive(BOOT_TIMEOUT)
    assert first is not None
    began = time.monotonic()
    connection = gunicorn.connect()
    response = connection.request("/")
    answered_in = time.monotonic() - began
    connection.close()

    assert first.pid == gunicorn.pid
    assert first.payload.startswith(b"READY=1\n")
    assert not first.app_started
    assert response.status == 200
    assert answered_in >= AT_ONCE, "the request had to wait for the worker's startup"


def test_an_unreachable_notify_socket_does_not_stop_the_worker(
    start_gunicorn: StartGunicorn, notify: NotifySocket, tmp_path: Path
) -> None:
    """READY=1 that cannot be sent (no socket at that path) is logged; the worker serves on."""
    missing = tmp_path / "no-such-notify.sock"
    gunicorn = start_gunicorn(extra_env={"NOTIFY_SOCKET": str(missing)})
    first = gunicorn.wait_serving(timeout=10.0)
    worker = first.json()["pid"]

    # Served for a while by that same worker, which was the only one ever booted: no crash loop.
    connection = gunicorn.connect()
    for _unused in range(5):
        time.sleep(0.1)
        try:
            response = connection.request("/")
        except CLOSED as error:
            raise AssertionError(f"the worker dropped its connection:\n{gunicorn.log()}") from error
        assert response.status == 200
        assert response.json()["pid"] == worker
    connection.close()
    assert gunicorn.worker_pids() == {worker}
    log = gunicorn.log()
    assert log.count("Booting worker") == 1, log
    assert "could not notify systemd of readiness" in log, log
    assert not missing.exists()
    assert notify.receive_all(0.05) == [], "READY=1 went to the socket NOTIFY_SOCKET no longer names"

    terminated = gunicorn.terminate()
    assert gunicorn.wait_exit(terminated + DRAIN + 2) == 0, gunicorn.log()


# --------------------------------------------------------------------------------------------
# 2.-4. draining HTTP connections


def test_drain_answers_late_requests_on_idle_and_fresh_connections(start_gunicorn: StartGunicorn) -> None:
    gunicorn = start_gunicorn()
    gunicorn.wait_serving()

    # Accepted, request not yet sent (nginx has just opened it). Opened before `idle`, whose answer
    # proves the single worker has accepted it: the listen backlog is served in order.
    fresh = gunicorn.connect()
    idle = gunicorn.connect()
    first = idle.request("/")
    assert first.status == 200
    assert first.headers.get("connection", "").lower() != "close"

    terminated = gunicorn.terminate()
    gunicorn.wait_worker_shutdown()

    # 0.5 s after SIGTERM: the request on the just-accepted connection gets a full answer.
    time.sleep(max(0.0, terminated + 0.5 - time.monotonic()))
    assert idle.is_open() and fresh.is_open(), "a connection was closed when the drain began"
    late = fresh.request("/")
    assert late.status == 200
    assert late.json()["ok"] is True
    assert late.headers.get("connection", "").lower() == "close"
    fresh.wait_closed(time.monotonic() + 1.0)

    # 1 s after SIGTERM, well inside the drain: the idle keep-alive connection still serves.
    time.sleep(max(0.0, terminated + 1.0 - time.monotonic()))
    assert time.monotonic() - terminated < DRAIN
    late = idle.request("/")
    assert late.status == 200
    assert late.json()["ok"] is True
    assert late.headers.get("connection", "").lower() == "close"
    idle.wait_closed(time.monotonic() + 1.0)

    # Nothing is left open, so the worker need not wait out the drain.
    assert gunicorn.wait_exit(terminated + DRAIN + 2) == 0, gunicorn.log()
    fresh.close()
    idle.close()


def test_drain_lets_a_request_in_progress_finish(start_gunicorn: StartGunicorn) -> None:
    gunicorn = start_gunicorn()
    gunicorn.wait_serving()
    busy = gunicorn.connect()
    busy.send("/slow?seconds=1")
    time.sleep(0.2)  # the request is in the app now
    terminated = gunicorn.terminate()
    gunicorn.wait_worker_shutdown()
    response = busy.read_response()
    assert response.status == 200
    assert response.json() == {"slept": 1.0}
    assert response.headers.get("connection", "").lower() == "close"
    busy.wait_closed(time.monotonic() + 1.0)
    assert gunicorn.wait_exit(terminated + DRAIN + 2) == 0
    busy.close()


def test_idle_connections_are_closed_after_the_drain(start_gunicorn: StartGunicorn) -> None:
    gunicorn = start_gunicorn()
    gunicorn.wait_serving()
    used = gunicorn.connect()
    assert used.request("/").status == 200
    untouched = gunicorn.connect()
    assert gunicorn.connect().request("/").status == 200  # `untouched` has been accepted

    terminated = gunicorn.terminate()
    closed_used = used.wait_closed(terminated + DRAIN + 3) - terminated
    closed_untouched = untouched.wait_closed(terminated + DRAIN + 3) - terminated
    for closed_after in (closed_used, closed_untouched):
        assert DRAIN - 0.3 <= closed_after <= DRAIN + 1.0, f"closed {closed_after:.2f}s after SIGTERM"

    rc = gunicorn.wait_exit(terminated + DRAIN + 2)
    assert rc == 0, gunicorn.log()
    used.close()
    untouched.close()


def test_a_request_head_split_across_the_drain_deadline_is_answered(start_gunicorn: StartGunicorn) -> None:
    """Half a request head arrives just before the drain ends, the rest just after: not cut off."""
    gunicorn = start_gunicorn()
    gunicorn.wait_serving()
    idle = gunicorn.connect()
    assert idle.request("/").status == 200

    terminated = gunicorn.terminate()
    gunicorn.wait_worker_shutdown()
    # The drain timer started when the worker logged "Shutting down", just before we saw it.
    deadline = time.monotonic() + DRAIN
    head = b"GET /?split=1 HTTP/1.1\r\nHost: test\r\nConnection: keep-alive\r\n\r\n"
    time.sleep(max(0.0, deadline - 0.3 - time.monotonic()))
    assert idle.is_open()
    idle.sock.sendall(head[: len(head) // 2])
    time.sleep(0.8)  # the drain deadline passes in between
    try:
        idle.sock.sendall(head[len(head) // 2 :])
        response = idle.read_response(timeout=3.0)
    except CLOSED as error:
        after = time.monotonic() - terminated
        raise AssertionError(f"closed {after:.2f}s after SIGTERM with half a request head in it") from error
    assert response.status == 200
    assert response.json()["ok"] is True
    assert response.headers.get("connection", "").lower() == "close"
    idle.wait_closed(time.monotonic() + 1.0)
    assert gunicorn.wait_exit(terminated + DRAIN + 3) == 0, gunicorn.log()
    idle.close()


def test_baseline_plain_uvicorn_worker_drops_idle_and_fresh_connections(start_gunicorn: StartGunicorn) -> None:
    """The scenario of the drain test with uvicorn_worker's own worker: both connections are lost."""
    gunicorn = start_gunicorn(worker_class=PLAIN_WORKER)
    gunicorn.wait_serving()
    fresh = gunicorn.connect()
    idle = gunicorn.connect()
    assert idle.request("/").status == 200

    terminated = gunicorn.terminate()
    gunicorn.wait_worker_shutdown()
    # Closed at once, not after a drain.
    assert idle.wait_closed(time.monotonic() + 0.5) - terminated < DRAIN / 2
    assert closes_without_answer(idle)
    time.sleep(max(0.0, terminated + 0.5 - time.monotonic()))
    assert closes_without_answer(fresh)
    assert gunicorn.wait_exit(terminated + 2) == 0
    fresh.close()
    idle.close()


# --------------------------------------------------------------------------------------------
# 5. WebSockets


@pytest.mark.parametrize("grace", [1.0, 0.0])
def test_websocket_close_1012_after_the_grace(start_gunicorn: StartGunicorn, grace: float) -> None:
    gunicorn = start_gunicorn(ws_grace=grace)
    gunicorn.wait_serving()
    with websockets_sync.unix_connect(
        str(gunicorn.sock_path), uri="ws://test/ws", open_timeout=5, close_timeout=1
    ) as ws:
        ws.send("before")
        assert ws.recv(timeout=2) == "before"

        terminated = gunicorn.terminate()
        gunicorn.wait_worker_shutdown()
        if grace:
            ws.send("during the grace")
            assert ws.recv(timeout=grace / 2) == "during the grace"

        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=max(terminated + grace + 2 - time.monotonic(), 0.001))
        closed_after = time.monotonic() - terminated

    assert closed.value.rcvd is not None, "no close frame from the server"
    assert closed.value.rcvd.code == 1012
    if grace:
        assert grace - 0.2 <= closed_after <= grace + 1.0, f"1012 came {closed_after:.2f}s after SIGTERM"
    else:
        assert closed_after < 0.5, f"1012 came {closed_after:.2f}s after SIGTERM"
    assert gunicorn.wait_exit(terminated + grace + 2) == 0, gunicorn.log()


def test_websocket_upgraded_during_the_drain_gets_1012_after_the_grace(start_gunicorn: StartGunicorn) -> None:
    """A WebSocket opened on a connection the drain kept open, an idle keep-alive one and one
    accepted before SIGTERM, is served and then closed with 1012, not cut by the drain's timer."""
    grace = 1.0
    gunicorn = start_gunicorn(ws_grace=grace)
    gunicorn.wait_serving()
    fresh = gunicorn.connect()  # accepted (see `idle`), nothing sent yet
    idle = gunicorn.connect()
    assert idle.request("/").status == 200

    terminated = gunicorn.terminate()
    gunicorn.wait_worker_shutdown()
    time.sleep(max(0.0, terminated + 0.3 - time.monotonic()))
    assert fresh.is_open() and idle.is_open()

    upgraded: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        clients = {}
        for name, connection in (("fresh", fresh), ("idle", idle)):
            assert time.monotonic() - terminated < DRAIN - 1.0, "too late: the drain would be over"
            ws = stack.enter_context(
                websockets_sync.connect("ws://test/ws", sock=connection.sock, open_timeout=2, close_timeout=1)
            )
            upgraded[name] = time.monotonic()  # 101 received
            clients[name] = ws
            ws.send(f"hello {name}")
            assert ws.recv(timeout=1) == f"hello {name}"

        for name, ws in clients.items():
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=max(upgraded[name] + grace + 2 - time.monotonic(), 0.001))
            closed_after = time.monotonic() - upgraded[name]
            cut_after = time.monotonic() - terminated
            assert closed.value.rcvd is not None, f"{name}: no close frame, EOF {cut_after:.2f}s after TERM"
            assert closed.value.rcvd.code == 1012, name
            assert grace - 0.2 <= closed_after <= grace + 1.5, f"{name}: 1012 {closed_after:.2f}s after 101"

    assert gunicorn.wait_exit(terminated + DRAIN + 2) == 0, gunicorn.log()
    fresh.close()
    idle.close()


# --------------------------------------------------------------------------------------------
# 6. an app that cannot start


@pytest.mark.parametrize(
    ("app", "extra_env", "code", "reason"),
    [
        ("testapp:app", {"TEST_STARTUP_FAIL": "1"}, 3, "Worker failed to boot."),
        ("brokenapp:app", {}, 3, "Worker failed to boot."),
    ],
    ids=["lifespan-startup-raises", "import-raises"],
)
def test_an_app_that_cannot_start_stops_gunicorn_without_ready(
    start_gunicorn: StartGunicorn,
    notify: NotifySocket,
    app: str,
    extra_env: dict[str, str],
    code: int,
    reason: str,
) -> None:
    gunicorn = start_gunicorn(app=app, extra_env=extra_env)
    rc = gunicorn.wait_exit(time.monotonic() + BOOT_TIMEOUT)
    assert rc == code, gunicorn.log()
    assert f"Reason: {reason}" in gunicorn.log()
    assert notify.receive_all(0.1) == [], "READY=1 from an app that never served"


# --------------------------------------------------------------------------------------------
# 5. reloads (HUP)

RELOAD_STARTUP_DELAY = 3.0  # the new workers' lifespan startup after the HUP


def ask_new_connection(gunicorn: Gunicorn, timeout: float) -> tuple[int, float]:
    """The pid that answers GET / on a fresh connection, and how long the answer took."""
    began = time.monotonic()
    connection = gunicorn.connect()
    try:
        response = connection.request("/", timeout=timeout)
    finally:
        connection.close()
    assert response.status == 200
    return response.json()["pid"], time.monotonic() - began


@pytest.mark.parametrize("worker_class", [WORKER, PLAIN_WORKER])
def test_a_reload_keeps_the_old_workers_accepting_until_the_new_ones_serve(
    start_gunicorn: StartGunicorn, tmp_path: Path, worker_class: str
) -> None:
    """After a HUP the new workers spend RELOAD_STARTUP_DELAY starting their app. The role's
    worker keeps the old ones accepting meanwhile: a request on a new connection is answered at
    once, by an old worker. uvicorn-worker's own (the baseline) stops them at once: the request
    waits for a new worker. A stop after the reload does not wait for anything."""
    gunicorn = start_gunicorn(worker_class=worker_class, workers=2)
    gunicorn.wait_serving()
    old = gunicorn.worker_pids()
    assert len(old) == 2
    (tmp_path / "startup-delay").write_text(str(RELOAD_STARTUP_DELAY))

    os.kill(gunicorn.pid, signal.SIGHUP)
    time.sleep(0.5)  # the old workers were told to stop; the new ones are starting their app
    pid, took = ask_new_connection(gunicorn, timeout=RELOAD_STARTUP_DELAY + 5)

    if worker_class == PLAIN_WORKER:
        assert pid not in old and took >= AT_ONCE, "the baseline answered from an old worker"
        return
    assert pid in old, f"answered by a new worker after {took:.2f} s: the old ones stopped accepting\n{gunicorn.log()}"
    assert took < AT_ONCE

    # The new workers take over, the old ones leave.
    deadline = time.monotonic() + RELOAD_STARTUP_DELAY + DRAIN + 5
    while gunicorn.worker_pids() & old or len(gunicorn.worker_pids()) != 2:
        assert time.monotonic() < deadline, f"the old workers {old} still run:\n{gunicorn.log()}"
        time.sleep(0.1)
    pid, _unused = ask_new_connection(gunicorn, timeout=5)
    assert pid in gunicorn.worker_pids()

    # The reload is over: stopping now drains and exits without waiting for replacements.
    terminated = gunicorn.terminate()
    assert gunicorn.wait_exit(terminated + DRAIN + 2) == 0, gunicorn.log()
