import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hello_app.main import app

PROXY_HEADERS = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Real-IP": "203.0.113.7",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The knobs are read per request, so a value leaking in from the shell (or
    # from another test) would silently change what is being tested.
    for name in ("HELLO_APP_HEALTH_FAIL", "HELLO_APP_IMPORT_FAIL", "FASTAPI_APP_RELEASE", "STATE_DIRECTORY", "HELLO_APP_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HELLO_APP_DATA_DIR", str(tmp_path))


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def test_hello_is_the_benchmark_json(client: TestClient) -> None:
    r = client.get("/hello")
    assert r.status_code == 200
    assert r.json() == {"message": "Hello World"}


def test_root_reports_app_and_raw_forwarded_headers(client: TestClient) -> None:
    r = client.get("/", headers={**PROXY_HEADERS, "Host": "hello.example"})
    assert r.status_code == 200
    body = r.json()
    assert body["app"] == "hello-app"
    assert body["message"] == "Hello from FastAPI"
    assert body["pid"] == os.getpid()
    assert body["seen"] == {
        # No proxy-headers middleware under TestClient: raw peer and scheme.
        "client": "testclient",
        "scheme": "http",
        "host": "hello.example",
        "x_forwarded_for": "203.0.113.7",
        "x_forwarded_proto": "https",
        "x_real_ip": "203.0.113.7",
    }


def test_root_without_proxy_headers_reports_none(client: TestClient) -> None:
    seen = client.get("/").json()["seen"]
    assert seen["x_forwarded_for"] is None
    assert seen["x_forwarded_proto"] is None
    assert seen["x_real_ip"] is None


def test_root_honours_proxy_headers_behind_uvicorn_middleware() -> None:
    # The same middleware uvicorn applies with --proxy-headers / forwarded_allow_ips.
    proxy_headers = pytest.importorskip("uvicorn.middleware.proxy_headers")
    wrapped = proxy_headers.ProxyHeadersMiddleware(app, trusted_hosts="*")
    with TestClient(wrapped) as c:
        seen = c.get("/", headers=PROXY_HEADERS).json()["seen"]
    assert seen["client"] == "203.0.113.7"
    assert seen["scheme"] == "https"


def test_healthz_ok(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_healthz_failing_via_env(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELLO_APP_HEALTH_FAIL", "1")
    r = client.get("/healthz")
    assert r.status_code == 503
    assert r.json() == {"status": "failing"}


def test_import_fails_via_env() -> None:
    # A fresh interpreter, because the module is already imported in this one.
    env = {**os.environ, "HELLO_APP_IMPORT_FAIL": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", "import hello_app.main"], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0
    assert "RuntimeError: HELLO_APP_IMPORT_FAIL=1" in proc.stderr


def test_version_defaults(client: TestClient) -> None:
    assert client.get("/version").json() == {"version": "1.0.0", "release": "unknown"}


def test_version_reports_release(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTAPI_APP_RELEASE", "20250101T000000")
    assert client.get("/version").json() == {"version": "1.0.0", "release": "20250101T000000"}


def test_items_are_recorded_and_counted(client: TestClient, tmp_path: Path) -> None:
    assert client.get("/items/stats").json() == {"count": 0, "unique": 0}
    for item_id in ("a", "b", "a"):
        r = client.post("/items", json={"id": item_id, "payload": {"n": [1, 2]}})
        assert r.status_code == 201
        assert r.json() == {"id": item_id, "pid": os.getpid()}
    assert (tmp_path / "items.log").read_text() == "a\nb\na\n"
    assert client.get("/items/stats").json() == {"count": 3, "unique": 2}


def test_items_use_first_state_directory(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.delenv("HELLO_APP_DATA_DIR")
    monkeypatch.setenv("STATE_DIRECTORY", f"{first}:{second}")
    assert client.post("/items", json={"id": "x", "payload": None}).status_code == 201
    assert (first / "items.log").read_text() == "x\n"
    assert not second.exists()


@pytest.mark.parametrize("body", [{"payload": 1}, {"id": ""}, {"id": "a\nb"}, {"id": 7}])
def test_items_rejects_bad_ids(client: TestClient, tmp_path: Path, body: dict[str, object]) -> None:
    assert client.post("/items", json=body).status_code == 422
    assert not (tmp_path / "items.log").exists()


def test_websocket_echo(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "echo: hi"
        ws.send_text("again")
        assert ws.receive_text() == "echo: again"


def counted_total(text: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith("hello_app_counted_requests_total")]
    assert len(lines) == 1, text
    return float(lines[0].split()[-1])


def test_metrics_count_the_counted_requests(client: TestClient) -> None:
    before = counted_total(client.get("/metrics").text)
    for _unused in range(3):
        assert client.get("/counted").json() == {"pid": os.getpid()}
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert counted_total(r.text) == before + 3


def test_metrics_add_up_every_process_in_multiprocess_mode(tmp_path: Path) -> None:
    # What gunicorn's workers do under fastapi_app_metrics: each process writes its own file.
    code = (
        "from fastapi.testclient import TestClient\n"
        "from hello_app.main import app\n"
        "c = TestClient(app)\n"
        "[c.get('/counted') for _ in range({n})]\n"
        "print(c.get('/metrics').text)\n"
    )
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    outputs = [subprocess.run([sys.executable, "-c", code.format(n=n)], env=env, capture_output=True, text=True, check=True).stdout
               for n in (2, 5)]
    assert counted_total(outputs[0]) == 2
    assert counted_total(outputs[1]) == 7


def test_deep_health_needs_the_api_key(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    assert client.get("/healthz/deep").status_code == 503
    monkeypatch.setenv("HELLO_APP_API_TOKEN", "k3y")
    assert client.get("/healthz/deep").status_code == 401
    assert client.get("/healthz/deep", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = client.get("/healthz/deep", headers={"Authorization": "Bearer k3y"})
    assert r.status_code == 200 and r.json() == {"status": "ok", "deep": True}


def test_gunicorn_hooks_leave_their_marks(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from hello_app import gunicorn_hooks

    gunicorn_hooks.on_starting(SimpleNamespace(num_workers=3))
    gunicorn_hooks.post_fork(SimpleNamespace(), SimpleNamespace())
    lines = (tmp_path / "hooks.log").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["on_starting", "post_fork"]
    assert f"pid={os.getpid()}" in lines[0] and "workers=3" in lines[0]
