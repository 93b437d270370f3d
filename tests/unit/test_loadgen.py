"""Unit tests for tools/loadgen.py, the load generator the Molecule scenarios run during deploys.

Each test starts a tiny asyncio HTTP/1.1 server in-process (127.0.0.1 ephemeral port or a unix
socket in tmp_path) whose misbehaviour is scripted, runs the load generator against it in the
same event loop (or as a subprocess for the CLI) and checks the report's accounting.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import struct
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from modload import load

loadgen = load("loadgen", "tools/loadgen.py")


class Server:
    """HTTP/1.1 server; every `every`-th request (counted server-wide) gets `fault` instead of an answer."""

    def __init__(self, fault: str | None = None, every: int = 0, chunked: bool = False,
                 conn_close: bool = False, delay: float = 0.0) -> None:
        self.fault, self.every, self.chunked = fault, every, chunked
        self.conn_close, self.delay = conn_close, delay
        self.requests = 0
        self.faults = 0
        self.connections = 0
        self.abandoned = 0  # connections still open when the server stopped
        self.post_ids: list[str] = []
        self.hosts: set[str] = set()
        self.handlers: set[asyncio.Task[Any]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while await self.answer(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # client gone, or stop(): a cancelled stream handler would be logged as an error
        finally:
            writer.close()

    async def stop(self) -> None:
        """Cancel the handlers still running (a slow answer, a client that left) before the loop ends."""
        # Connections the client closed end on their own within a moment.
        _unused, pending = await asyncio.wait(self.handlers, timeout=1)
        self.abandoned = len(pending)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the connection must end."""
        lines = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        method, path, _unused = lines[0].split(" ")
        headers = {k.strip().lower(): v.strip() for k, _unused, v in (line.partition(":") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.hosts.add(headers["host"])
        self.requests += 1
        fault = self.fault if self.every and self.requests % self.every == 0 else None
        self.faults += fault is not None
        if self.delay:
            await asyncio.sleep(self.delay)
        if fault == "drop":  # read the request, never answer
            return False
        if fault == "reset":  # RST instead of FIN
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if method == "POST":
            assert path == "/items", path
            item_id = json.loads(body)["id"]
            self.post_ids.append(item_id)
            status, payload = "201 Created", json.dumps({"id": item_id}).encode()
        else:
            assert method == "GET" and path == "/", lines[0]
            status, payload = "200 OK", json.dumps({"n": self.requests, "pad": "x" * 300}).encode()
        if fault == "500":
            status, payload = "500 Internal Server Error", b'{"detail": "boom"}'
        if fault == "not_json":
            payload = b"<html>oops</html>"
        head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        if self.conn_close or headers.get("connection") == "close":
            head += "Connection: close\r\n"
        if fault == "truncate":
            writer.write(f"{head}Content-Length: {len(payload) + 50}\r\n\r\n".encode() + payload)
            await writer.drain()
            return False
        if self.chunked:
            half = len(payload) // 2
            chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in (payload[:half], payload[half:]))
            writer.write(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + chunks + b"0\r\n\r\n")
        else:
            writer.write(f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        await writer.drain()
        return "Connection: close" not in head


async def _serve(server: Server, unix_path: Path | None) -> tuple[asyncio.AbstractServer, list[str]]:
    if unix_path is not None:
        srv = await asyncio.start_unix_server(server.handle, str(unix_path))
        return srv, ["--url", "http://app.test", "--unix-socket", str(unix_path)]
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    return srv, ["--url", f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"]


def run_load(server: Server, tmp_path: Path, *args: str, unix: bool = False, during: Any = None) -> dict[str, Any]:
    """Serve, run the load generator in the same loop (with `during(tmp_path)` alongside), return its report."""

    async def scenario() -> dict[str, Any]:
        srv, target = await _serve(server, tmp_path / "app.sock" if unix else None)
        opts = loadgen.parse_args([*target, "--out", str(tmp_path / "load.json"), *args])
        async with srv:
            side = asyncio.create_task(during(tmp_path)) if during else None
            report = await asyncio.wait_for(loadgen.LoadGen(opts).run(handle_signals=False), 20)
            if side:
                side.cancel()
            await server.stop()
        return report

    report = asyncio.run(scenario())
    assert json.loads((tmp_path / "load.json").read_text()) == report
    assert report["total"]["requests"] == report["total"]["ok"] + report["total"]["failed"]
    assert report["total"]["requests"] == sum(p["requests"] for p in report["phases"].values())
    return report


def test_all_ok_content_length_keepalive_and_new_connections(tmp_path: Path) -> None:
    server = Server()
    report = run_load(server, tmp_path, "--concurrency", "10", "--max-requests", "300", "--host-header", "app.example")
    total = report["total"]
    assert (total["requests"], total["ok"], total["failed"]) == (300, 300, 0)
    assert report["stopped_by"] == "max_requests"
    assert server.requests == 300 and server.hosts == {"app.example"}
    assert set(total["by_kind"]) == {"get_keepalive", "get_new_conn", "post"}
    assert all(k["requests"] > 0 and k["failed"] == 0 for k in total["by_kind"].values())
    # 4 kept-alive GET and 3 POST workers hold one connection each; every other GET opens its own.
    assert server.connections == total["by_kind"]["get_new_conn"]["requests"] + 7
    assert 0 < total["p50_ms"] <= total["p99_ms"] <= total["max_ms"]
    assert report["failures"] == [] and total["failures_by_reason"] == {}


def test_chunked_bodies_over_unix_socket(tmp_path: Path) -> None:
    server = Server(chunked=True)
    report = run_load(server, tmp_path, "--concurrency", "6", "--max-requests", "200", unix=True)
    assert (report["total"]["ok"], report["total"]["failed"]) == (200, 0)
    assert server.hosts == {"app.test"}


def test_post_ids_unique_and_written_to_posts_file(tmp_path: Path) -> None:
    server = Server()
    report = run_load(server, tmp_path, "--concurrency", "9", "--max-requests", "240")
    posted = (tmp_path / "load.json.posts").read_text().splitlines()
    assert report["post_ids_ok"] == len(posted) == report["total"]["by_kind"]["post"]["ok"] > 0
    assert len(set(posted)) == len(posted)
    assert sorted(posted) == sorted(server.post_ids)
    assert all(p.startswith(report["run_id"] + "-") for p in posted)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("500", "status:500"), ("truncate", "short_read"), ("not_json", "bad_body")],
)
def test_faults_are_counted_and_classified(tmp_path: Path, fault: str, reason: str) -> None:
    server = Server(fault=fault, every=7)
    report = run_load(server, tmp_path, "--concurrency", "8", "--max-requests", "140")
    total = report["total"]
    assert server.requests == 140
    assert total["failures_by_reason"] == {reason: 20}
    assert (total["ok"], total["failed"]) == (120, 20)
    assert sum(k["failed"] for k in total["by_kind"].values()) == 20
    assert len(report["failures"]) == 20
    assert {(f["reason"], f["phase"]) for f in report["failures"]} == {(reason, "steady")}
    # A POST only counts as applied when it got its 201.
    assert report["post_ids_ok"] == total["by_kind"]["post"]["ok"]


@pytest.mark.parametrize(("fault", "reason"), [("drop", "eof"), ("reset", "reset")])
def test_closed_before_any_response_byte(tmp_path: Path, fault: str, reason: str) -> None:
    """On a reused keep-alive connection it is resent once (as HTTP clients do); otherwise it fails."""
    server = Server(fault=fault, every=7)
    report = run_load(server, tmp_path, "--concurrency", "8", "--max-requests", "140")
    total = report["total"]
    assert total["requests"] == 140
    resent = total["resent_stale_keepalive"]
    assert resent > 0  # kept-alive GETs and POSTs met closed connections
    assert server.requests == 140 + resent
    # Every fault either made a request be resent or failed it (fresh connections, second tries).
    assert server.faults == resent + total["failed"]
    assert total["failed"] > 0  # GETs on new connections are never resent
    assert set(total["failures_by_reason"]) == {reason}
    assert total["by_kind"]["get_new_conn"]["resent_stale_keepalive"] == 0
    # A resent POST keeps its id and is applied once.
    posted = (tmp_path / "load.json.posts").read_text().split()
    assert len(posted) == len(set(posted)) == len(server.post_ids) == len(set(server.post_ids))


def test_only_first_50_failures_recorded(tmp_path: Path) -> None:
    report = run_load(Server(fault="500", every=1), tmp_path, "--concurrency", "4", "--max-requests", "80")
    assert report["total"]["failures_by_reason"] == {"status:500": 80}
    assert len(report["failures"]) == 50


def test_connection_closed_after_an_error_answer(tmp_path: Path) -> None:
    """A failed request's connection is closed, not abandoned: a long outage must not exhaust the fds.

    (Python < 3.11.5 never closes an abandoned StreamWriter; later ones do when it is collected,
    with a ResourceWarning, so both are checked.)
    """
    server = Server(fault="500", every=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        report = run_load(server, tmp_path, "--concurrency", "4", "--max-requests", "40")
        gc.collect()
    assert report["total"]["failures_by_reason"] == {"status:500": 40}
    assert server.connections == 40
    assert server.abandoned == 0
    assert [str(w.message) for w in caught if "unclosed" in str(w.message)] == []


def test_server_connection_close_is_not_a_failure(tmp_path: Path) -> None:
    server = Server(conn_close=True)
    report = run_load(server, tmp_path, "--concurrency", "6", "--max-requests", "120")
    assert (report["total"]["ok"], report["total"]["failed"]) == (120, 0)
    assert server.connections == 120  # one new connection per request


def test_slow_server_times_out(tmp_path: Path) -> None:
    server = Server(delay=2.0)
    started = time.monotonic()
    report = run_load(server, tmp_path, "--concurrency", "3", "--max-requests", "3", "--timeout", "0.3")
    assert time.monotonic() - started < 1.5
    assert report["total"]["failures_by_reason"] == {"timeout": 3}
    assert report["total"]["max_ms"] >= 300


def test_requests_attributed_to_phase_when_sent(tmp_path: Path) -> None:
    # Each request takes 0.4 s: batches of 3 are sent at 0, 0.4 and 0.8 s. The phase changes at
    # 0.2 s while the first batch is in flight and the stop file appears at 1.0 s during the third.
    async def during(tmp: Path) -> None:
        await asyncio.sleep(0.2)
        (tmp / "phase").write_text("deploy\n")
        await asyncio.sleep(0.8)
        (tmp / "stop").touch()

    report = run_load(Server(delay=0.4), tmp_path, "--concurrency", "3", "--timeout", "5",
                      "--phase-file", str(tmp_path / "phase"), "--stop-file", str(tmp_path / "stop"), during=during)
    assert report["stopped_by"] == "stop_file"
    assert {name: p["requests"] for name, p in report["phases"].items()} == {"steady": 3, "deploy": 6}
    assert report["phases"]["steady"]["ok"] == 3


@pytest.mark.parametrize("how", ["stop_file", "signal"])
def test_cli_stops_early_and_writes_report(tmp_path: Path, how: str) -> None:
    out, ready, stop = tmp_path / "load.json", tmp_path / "ready", tmp_path / "stop"

    async def scenario() -> tuple[int, float]:
        server = Server()
        srv, target = await _serve(server, None)
        async with srv:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, loadgen.__file__, *target, "--concurrency", "4", "--duration", "30",
                "--out", str(out), "--ready-file", str(ready), "--stop-file", str(stop))
            for _unused in range(100):
                if ready.exists():
                    break
                await asyncio.sleep(0.05)
            assert ready.exists(), "load never started flowing"
            if how == "signal":
                proc.terminate()
            else:
                stop.touch()
            asked = time.monotonic()
            rc = await asyncio.wait_for(proc.wait(), 10)
            await server.stop()
            return rc, time.monotonic() - asked

    rc, took = asyncio.run(scenario())
    assert rc == 0 and took < 3
    report = json.loads(out.read_text())
    assert report["stopped_by"] == how
    assert report["duration_s"] < 10
    assert report["total"]["ok"] > 0 and report["total"]["failed"] == 0
    assert len((tmp_path / "load.json.posts").read_text().splitlines()) == report["post_ids_ok"]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_connect_failure_counted(tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        opts = loadgen.parse_args(["--url", "http://127.0.0.1:1", "--unix-socket", str(tmp_path / "missing.sock"),
                                   "--concurrency", "3", "--max-requests", "6", "--out", str(tmp_path / "load.json")])
        return await loadgen.LoadGen(opts).run(handle_signals=False)

    report = asyncio.run(scenario())
    assert report["total"]["failures_by_reason"] == {"connect": 6}


def test_percentile_nearest_rank() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert [loadgen.percentile(values, p) for p in (5, 30, 40, 50, 100)] == [15, 20, 20, 35, 50]
    hundred = [float(i) for i in range(1, 101)]
    assert (loadgen.percentile(hundred, 50), loadgen.percentile(hundred, 99)) == (50, 99)
    assert loadgen.percentile([], 50) is None
    results = [loadgen.Result("steady", "post", 0.0, ms / 1000, None) for ms in range(100, 0, -1)]
    stats = loadgen.summarize(results, 2.0)
    assert (stats["p50_ms"], stats["p99_ms"], stats["max_ms"], stats["rps"]) == (50, 99, 100, 50)


def test_rate_caps_requests_per_second(tmp_path: Path) -> None:
    report = run_load(Server(), tmp_path, "--concurrency", "4", "--rate", "200", "--duration", "1.5")
    total = report["total"]
    assert total["failed"] == 0
    # 1.5 s at 200/s is ~300 requests; unpaced, this server answers thousands.
    assert 200 <= total["requests"] <= 330, total["requests"]
