"""hello-app: a tiny FastAPI app whose endpoints exist to be asserted on by
the role's demo and Molecule tests (proxy headers, health, releases, no
duplicate POSTs across reloads, websockets)."""

import os
import secrets
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, generate_latest, multiprocess
from pydantic import BaseModel, Field

# Lets the tests ship a release that cannot even be imported, so the role's
# rollback path for "workers never boot" can be exercised.
if os.environ.get("HELLO_APP_IMPORT_FAIL") == "1":
    raise RuntimeError("HELLO_APP_IMPORT_FAIL=1: refusing to import hello_app.main")

APP_NAME = "hello-app"

try:
    APP_VERSION = version(APP_NAME)
except PackageNotFoundError:  # running from a source tree that was never installed
    APP_VERSION = "0+unknown"

app = FastAPI(title=APP_NAME, version=APP_VERSION)

# Counted by /counted only, so a test knows exactly how many increments to expect.
COUNTED = Counter("hello_app_counted_requests", "Requests answered by /counted.")


class Item(BaseModel):
    # One id per line in items.log, so a line break inside an id would
    # corrupt the counts that /items/stats reports.
    id: str = Field(min_length=1, max_length=256, pattern=r"^[^\r\n]+$")
    payload: Any = None


def data_dir() -> Path:
    """Where items.log lives; resolved per request so tests can change the env."""
    explicit = os.environ.get("HELLO_APP_DATA_DIR")
    if explicit:
        path = Path(explicit)
    elif state := os.environ.get("STATE_DIRECTORY"):
        # systemd joins several StateDirectory= entries with ':'; the first is ours.
        path = Path(state.split(":")[0])
    else:
        # Per-uid, not per-process: every gunicorn worker must share one log.
        path = Path(tempfile.gettempdir()) / f"hello-app-{os.getuid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@app.get("/")
def root(request: Request) -> dict[str, Any]:
    # client/scheme are what uvicorn made of X-Forwarded-*; the raw headers are
    # echoed next to them so tests can tell "not sent" from "not trusted".
    return {
        "app": APP_NAME,
        "message": "Hello from FastAPI",
        "pid": os.getpid(),
        "seen": {
            "client": request.client.host if request.client else None,
            "scheme": request.url.scheme,
            "host": request.headers.get("host"),
            "x_forwarded_for": request.headers.get("x-forwarded-for"),
            "x_forwarded_proto": request.headers.get("x-forwarded-proto"),
            "x_real_ip": request.headers.get("x-real-ip"),
        },
    }


# The serving benchmark's endpoint (benchmarks/serving.sh): the smallest FastAPI JSON answer, on
# the event loop (no thread pool, no response model), so that the serving stack, not the app,
# decides the figures.
@app.get("/hello", response_model=None)
async def hello() -> dict[str, str]:
    return {"message": "Hello World"}


@app.get("/counted")
def counted() -> dict[str, int]:
    COUNTED.inc()
    return {"pid": os.getpid()}


@app.get("/metrics")
def metrics() -> Response:
    # Under the role's fastapi_app_metrics every worker writes its values to files in
    # PROMETHEUS_MULTIPROC_DIR; whichever worker answers must add up all of them.
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@app.get("/healthz")
def healthz() -> JSONResponse:
    # Read on every call (not at import) so a release can start cleanly and
    # only then report unhealthy, which is what the role's health gate checks.
    if os.environ.get("HELLO_APP_HEALTH_FAIL") == "1":
        return JSONResponse({"status": "failing"}, status_code=503)
    return JSONResponse({"status": "ok"})


@app.get("/healthz/deep")
def healthz_deep(request: Request) -> JSONResponse:
    # A check that needs the API key in the Authorization header, as a deep check that must not be
    # open to the world would: 401 without it, so a probe that does not send it fails.
    token = os.environ.get("HELLO_APP_API_TOKEN", "")
    if not token:
        return JSONResponse({"status": "no HELLO_APP_API_TOKEN"}, status_code=503)
    if not secrets.compare_digest(request.headers.get("authorization", ""), f"Bearer {token}"):
        return JSONResponse({"status": "unauthorized"}, status_code=401)
    return JSONResponse({"status": "ok", "deep": True})


@app.get("/version")
def get_version() -> dict[str, str]:
    return {"version": APP_VERSION, "release": os.environ.get("FASTAPI_APP_RELEASE", "unknown")}


# Plain `def` endpoints: FastAPI runs them in a thread pool, so the blocking
# file I/O below never stalls the event loop.
@app.post("/items", status_code=201)
def create_item(item: Item) -> dict[str, Any]:
    line = (item.id + "\n").encode()
    fd = os.open(data_dir() / "items.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # One write() with O_APPEND: concurrent workers cannot interleave lines.
        written = os.write(fd, line)
    finally:
        os.close(fd)
    if written != len(line):  # a short write would leave a torn line behind
        raise OSError(f"short write to items.log: {written} of {len(line)} bytes")
    return {"id": item.id, "pid": os.getpid()}


@app.get("/items/stats")
def item_stats() -> dict[str, int]:
    try:
        ids = (data_dir() / "items.log").read_text().splitlines()
    except FileNotFoundError:
        ids = []
    # count > unique means some POST was applied twice.
    return {"count": len(ids), "unique": len(set(ids))}


@app.websocket("/ws")
async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    # iter_text() ends on WebSocketDisconnect, whether the client closed or
    # the server is shutting down; the close frame has been sent by then, so
    # there is nothing to catch or override here.
    async for text in websocket.iter_text():
        await websocket.send_text(f"echo: {text}")
