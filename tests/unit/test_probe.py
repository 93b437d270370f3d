"""Unit tests for plugins/modules/fastapi_app_probe.py against real HTTP servers (TCP and a unix socket)."""

from __future__ import annotations

import http.server
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modload import load

pr = load("fastapi_app_probe", "plugins/modules/fastapi_app_probe.py")


class Handler(http.server.BaseHTTPRequestHandler):
    calls: dict[str, int] = {}

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        Handler.calls[self.path] = Handler.calls.get(self.path, 0) + 1
        if self.path == "/healthz":
            self.answer(200, '{"status":"ok"}')
        elif self.path == "/fail":
            self.answer(503, '{"status":"failing"}')
        elif self.path == "/starting":  # 503 twice, then 200
            self.answer(200 if Handler.calls[self.path] > 2 else 503, "up")
        elif self.path == "/host":
            self.answer(200, self.headers.get("Host", ""))
        else:
            self.answer(404, "not found")

    def answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self) -> tuple[Any, Any]:
        request, _unused = super().get_request()
        return request, ("local", 0)  # BaseHTTPRequestHandler logs a (host, port) pair


def serve(server: socketserver.BaseServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def tcp() -> Iterator[str]:
    Handler.calls = {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    serve(server)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def unix(tmp_path: Path) -> Iterator[str]:
    Handler.calls = {}
    path = tmp_path / "app.sock"
    server = UnixHTTPServer(str(path), Handler)
    serve(server)
    yield str(path)
    server.shutdown()
    server.server_close()


def params(url: str, checks: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"url": url, "unix_socket": None, "host": None, "checks": checks, "wait": 0, "timeout": 5, **extra}


def test_all_checks_pass_over_tcp(tcp: str) -> None:
    result = pr.probe(params(tcp, [{"path": "/healthz", "status": 200, "contains": ""},
                                   {"path": "/fail", "status": 503, "contains": "failing"}]))
    assert "msg" not in result
    assert [a["status"] for a in result["answers"]] == [200, 503]
    assert result["url"] == f"{tcp}/healthz" and result["status"] == 200 and result["content"] == '{"status":"ok"}'


def test_over_a_unix_socket_with_a_host_header(unix: str) -> None:
    result = pr.probe(params("http://localhost", [{"path": "/host", "contains": "health.example.com"}],
                             unix_socket=unix, host="health.example.com"))
    assert "msg" not in result and result["content"] == "health.example.com"


def test_the_failed_check_is_reported_with_its_answer(tcp: str) -> None:
    result = pr.probe(params(tcp, [{"path": "/healthz"}, {"path": "/fail"}, {"path": "/healthz"}]))
    assert result["msg"] == f"GET {tcp}/fail answered 503, expected 200"
    assert result["url"] == f"{tcp}/fail" and result["status"] == 503 and result["content"] == '{"status":"failing"}'
    assert len(result["answers"]) == 2, "checks after the failed one are not asked"


def test_a_body_without_the_expected_text_fails(tcp: str) -> None:
    result = pr.probe(params(tcp, [{"path": "/healthz", "status": 200, "contains": "database ok"}]))
    assert result["msg"] == f"GET {tcp}/healthz answered 200 without 'database ok' in its body"


def test_the_first_check_is_retried_until_it_passes_within_the_wait(tcp: str) -> None:
    result = pr.probe(params(tcp, [{"path": "/starting"}], wait=5))
    assert "msg" not in result and result["status"] == 200
    assert Handler.calls["/starting"] == 3


def test_no_wait_means_one_try(tcp: str) -> None:
    result = pr.probe(params(tcp, [{"path": "/starting"}]))
    assert result["msg"].endswith("answered 503, expected 200") and Handler.calls["/starting"] == 1


def test_nothing_listening_fails_after_the_wait(tmp_path: Path) -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    result = pr.probe(params("http://localhost", [{"path": "/healthz"}], unix_socket=str(tmp_path / "none.sock"), wait=1),
                      sleep=sleep, clock=lambda: now[0])
    assert result["msg"].startswith("GET http://localhost/healthz got no answer: FileNotFoundError")
    assert result["status"] == 0 and sum(slept) == pytest.approx(1.0)
