"""Unit tests for plugins/modules/fastapi_app_probe.py against real HTTP servers (TCP and a unix socket)."""

from __future__ import annotations

import http.server
import json
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modload import ROOT, load

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
        elif self.path == "/secured":  # 401 without the key; its answer echoes the key and every Host sent
            key = self.headers.get("Authorization", "")
            hosts = ",".join(self.headers.get_all("Host") or [])
            self.answer(200 if key == "Bearer k3y-for-tests" else 401, f"key={key} hosts={hosts}")
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


SECRET = {"Authorization": "Bearer k3y-for-tests"}


def test_a_check_sends_its_headers_and_its_host_replaces_the_probes(unix: str) -> None:
    checks = [{"path": "/secured", "contains": "hosts=api.example.com", "headers": {**SECRET, "host": "api.example.com"}}]
    result = pr.probe(params("http://localhost", checks, unix_socket=unix, host="health.example.com"))
    assert "msg" not in result, result
    assert result["content"] == "key=Bearer k3y-for-tests hosts=api.example.com", "one Host header, the check's"


def test_a_check_without_its_header_gets_the_apps_401(tcp: str) -> None:
    result = pr.probe(params(tcp, [{"path": "/healthz"}, {"path": "/secured"}]))
    assert result["msg"] == f"GET {tcp}/secured answered 401, expected 200"


def run_module(args: dict[str, Any]) -> dict[str, Any]:
    """The module as Ansible runs it: a process given its arguments, its JSON result on stdout."""
    done = subprocess.run([sys.executable, str(ROOT / "plugins/modules/fastapi_app_probe.py")],
                          input=json.dumps({"ANSIBLE_MODULE_ARGS": args}), capture_output=True, text=True, check=False)
    return json.loads(done.stdout)


@pytest.mark.parametrize("key", ["Bearer k3y-for-tests", "Bearer wrong-k3y-for-tests"])
def test_header_values_never_appear_in_the_modules_result(tcp: str, key: str) -> None:
    # The answer echoes the key: passing, failing, in the invocation and in the content, it is masked.
    result = run_module({"url": tcp, "checks": [{"path": "/secured", "headers": {"Authorization": key}}]})
    assert bool(result.get("failed")) == (key != SECRET["Authorization"]), result
    text = json.dumps(result)
    assert "k3y-for-tests" not in text, text
    assert result["invocation"]["module_args"]["checks"][0]["headers"]["Authorization"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert result["answers"][0]["content"].startswith("key=********"), result
