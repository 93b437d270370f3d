"""HTTP/1.1 load generator that proves a deploy drops zero requests (stdlib only, Python >= 3.11).

Workers are split in fixed proportions: ~40% GET on a kept-alive connection, ~30% GET on a new
connection each time, ~30% POST (kept-alive) of a unique id that the app must echo. Every request
sent is counted exactly once as ok or failed; a request that was written and got no complete,
valid response is a failure. The run stops at the first of --duration, --max-requests, the stop
file, SIGTERM/SIGINT; in-flight requests then finish (each bounded by --timeout), the ids of the
POSTs that got 201 are written to <out>.posts and the JSON report to <out> (both atomically), and
the exit code is 0 whatever failed: the caller judges the report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

GET_KEEPALIVE, GET_NEW_CONN, POST = "get_keepalive", "get_new_conn", "post"
# Worker i gets KIND_PATTERN[i % 10]: 40/30/30 overall, and every kind present from 3 workers up.
KIND_PATTERN = [GET_KEEPALIVE, GET_NEW_CONN, POST] * 3 + [GET_KEEPALIVE]
MAX_RECORDED_FAILURES = 50
PHASE_REREAD_S = 0.05
STOP_POLL_S = 0.05


class Failure(Exception):
    """A request that did not get the expected complete response; reason is its class."""

    def __init__(self, reason: str, detail: str = "", conn: "Conn | None" = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail
        self.conn = conn  # the connection the failure happened on, to be closed by the caller


@dataclass
class Options:
    url: str
    concurrency: int = 16
    duration: float = 60.0
    max_requests: int | None = None
    rate: float | None = None  # requests per second over all workers; None = as fast as possible
    out: str = "/tmp/load.json"
    unix_socket: str | None = None
    host_header: str | None = None
    phase_file: str | None = None
    stop_file: str | None = None
    ready_file: str | None = None
    timeout: float = 10.0
    get_path: str = "/"
    post_path: str = "/items"


@dataclass(slots=True)
class Result:
    phase: str
    kind: str
    start: float  # monotonic, when the request was started
    latency: float  # seconds, until the response was complete or the failure was seen
    reason: str | None  # None when ok
    resent: bool = False  # sent again after a reused keep-alive connection closed under it


@dataclass
class Response:
    status: int
    body: bytes
    close: bool  # the server will close the connection after this response


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        self.writer.close()


async def read_response(reader: asyncio.StreamReader) -> Response:
    """Read one HTTP/1.1 response: Content-Length, chunked or close-delimited body."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise Failure("eof", "connection closed before any response byte") from None
        raise Failure("short_read", f"closed after {len(exc.partial)} bytes of response head") from None
    except asyncio.LimitOverrunError:
        raise Failure("protocol", "response head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    version, _unused, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise Failure("protocol", f"bad status line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _unused, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    status = int(code)
    tokens = {t.strip() for t in headers.get("connection", "").lower().split(",")}
    close = "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens)
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await read_chunked(reader)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:  # no framing: the body runs until the server closes
            body, close = await reader.read(), True
    except asyncio.IncompleteReadError as exc:
        raise Failure("short_read", f"body cut after {len(exc.partial)} bytes") from None
    except (ValueError, asyncio.LimitOverrunError) as exc:
        raise Failure("protocol", f"bad body framing: {exc}") from None
    return Response(status, body, close)


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16):
        chunks.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
        pass
    return b"".join(chunks)


class PhaseReader:
    """Current phase name from a file, re-read at most every 50 ms; missing file = "steady"."""

    def __init__(self, path: str | None) -> None:
        self.path, self.name, self.read_at = path, "steady", -math.inf

    def current(self) -> str:
        now = time.monotonic()
        if self.path and now - self.read_at >= PHASE_REREAD_S:
            self.read_at = now
            try:
                # Empty content is a writer caught mid-rewrite: keep the previous name.
                self.name = Path(self.path).read_text().strip() or self.name
            except FileNotFoundError:
                self.name = "steady"
        return self.name


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    return sorted_values[max(1, math.ceil(p / 100 * len(sorted_values))) - 1]


def summarize(results: list[Result], duration: float, by_kind: bool = True) -> dict[str, Any]:
    """Counts, rate and latency (all requests, failed ones included) of a group of results."""
    latencies = sorted(r.latency for r in results)
    failed = Counter(r.reason for r in results if r.reason is not None)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    stats: dict[str, Any] = {
        "requests": len(results),
        "ok": len(results) - failed.total(),
        "failed": failed.total(),
        "duration_s": round(duration, 3),
        "rps": round(len(results) / duration, 1) if duration > 0 else 0.0,
        "p50_ms": ms(percentile(latencies, 50)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(latencies[-1] if latencies else None),
        "failures_by_reason": dict(sorted(failed.items())),
        "resent_stale_keepalive": sum(r.resent for r in results),
    }
    if by_kind:
        kinds: dict[str, list[Result]] = defaultdict(list)
        for r in results:
            kinds[r.kind].append(r)
        stats["by_kind"] = {k: summarize(v, duration, by_kind=False) for k, v in sorted(kinds.items())}
    return stats


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class LoadGen:
    def __init__(self, opts: Options) -> None:
        url = urlsplit(opts.url)
        if url.scheme != "http" or not url.hostname or url.path not in ("", "/"):
            raise ValueError(f"--url must be http://host[:port] (no path: see --get-path), not {opts.url}")
        self.opts = opts
        self.host, self.port = url.hostname, url.port or 80
        self.host_header = opts.host_header or url.netloc
        self.run_id = str(uuid.uuid4())
        self.phases = PhaseReader(opts.phase_file)
        self.stopped = asyncio.Event()
        self.stop_reason = ""
        self.started = 0.0
        self.issued = 0
        self.results: list[Result] = []
        self.failures: list[dict[str, Any]] = []
        self.post_ids_ok: list[str] = []
        self.ready = False

    def stop(self, reason: str) -> None:
        if not self.stopped.is_set():
            self.stop_reason = reason
            self.stopped.set()

    def claim(self) -> bool:
        """May a worker send one more request?"""
        if self.opts.max_requests is not None and self.issued >= self.opts.max_requests:
            self.stop("max_requests")
        if self.stopped.is_set():
            return False
        self.issued += 1
        return True

    async def watch(self) -> None:
        deadline = self.started + self.opts.duration
        while not self.stopped.is_set():
            if self.opts.stop_file and os.path.exists(self.opts.stop_file):
                self.stop("stop_file")
            elif time.monotonic() >= deadline:
                self.stop("duration")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopped.wait(), STOP_POLL_S)

    async def connect(self) -> Conn:
        if self.opts.unix_socket:
            return Conn(*await asyncio.open_unix_connection(self.opts.unix_socket))
        return Conn(*await asyncio.open_connection(self.host, self.port))

    def build(self, kind: str, worker: int, seq: int) -> tuple[bytes, str | None]:
        """The request bytes, and the POST id (None for a GET)."""
        head = f"Host: {self.host_header}\r\nUser-Agent: loadgen\r\nAccept: application/json\r\n"
        if kind == GET_NEW_CONN:
            head += "Connection: close\r\n"
        if kind != POST:
            return f"GET {self.opts.get_path} HTTP/1.1\r\n{head}\r\n".encode(), None
        post_id = f"{self.run_id}-{worker}-{seq}"
        body = json.dumps({"id": post_id, "payload": {"worker": worker, "seq": seq}}).encode()
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        return f"POST {self.opts.post_path} HTTP/1.1\r\n{head}\r\n".encode() + body, post_id

    @staticmethod
    def check(resp: Response, post_id: str | None) -> None:
        expected = 201 if post_id else 200
        if resp.status != expected:
            raise Failure(f"status:{resp.status}", resp.body[:200].decode("utf-8", "replace"))
        try:
            data = json.loads(resp.body)
        except ValueError:
            raise Failure("bad_body", f"not JSON: {resp.body[:200]!r}") from None
        if post_id and (not isinstance(data, dict) or data.get("id") != post_id):
            raise Failure("bad_body", f"id {post_id} not echoed: {resp.body[:200]!r}")

    async def attempt(self, payload: bytes, post_id: str | None, conn: Conn | None) -> tuple[Conn, Response]:
        """One try of a request; raises Failure with a reason, and leaves the connection on it."""
        stage = "connect"
        try:
            async with asyncio.timeout(self.opts.timeout):
                if conn is None:
                    conn = await self.connect()
                stage = "send"
                conn.writer.write(payload)
                await conn.writer.drain()
                stage = "read"
                resp = await read_response(conn.reader)
            self.check(resp, post_id)
        except TimeoutError:
            raise Failure("connect" if stage == "connect" else "timeout",
                          f"not done within {self.opts.timeout}s ({stage})", conn) from None
        except OSError as exc:  # refused, reset, broken pipe...
            raise Failure("connect" if stage == "connect" else "reset",
                          f"{type(exc).__name__}: {exc} ({stage})", conn) from None
        except Failure as exc:  # the caller closes it: the event loop would keep an abandoned one open
            exc.conn = conn
            raise
        return conn, resp

    async def request(self, kind: str, worker: int, seq: int, conn: Conn | None) -> Conn | None:
        """Send one request (connecting if needed); record it; return the connection to reuse.

        Like any HTTP/1.1 client (RFC 9112, 9.3.1), a request whose REUSED keep-alive connection
        closes before a single response byte arrives is sent once more on a new connection: the
        server closed the idle connection as the request crossed it, and never saw it. Such
        resends are counted; the POST ids let a test prove that none was applied twice.
        """
        payload, post_id = self.build(kind, worker, seq)
        phase, start = self.phases.current(), time.monotonic()
        resent = False
        try:
            try:
                conn, resp = await self.attempt(payload, post_id, conn)
            except Failure as exc:
                if conn is None or exc.reason not in ("eof", "reset"):
                    raise
                conn.close()
                resent = True
                conn, resp = await self.attempt(payload, post_id, None)
        except Failure as exc:
            self.record(Result(phase, kind, start, time.monotonic() - start, exc.reason, resent))
            if len(self.failures) < MAX_RECORDED_FAILURES:
                self.failures.append({"t": round(start - self.started, 3), "phase": phase, "kind": kind,
                                      "worker": worker, "reason": exc.reason, "resent": resent,
                                      "detail": exc.detail[:300]})
            if exc.conn is not None:
                exc.conn.close()
            return None
        self.record(Result(phase, kind, start, time.monotonic() - start, None, resent))
        if post_id:
            self.post_ids_ok.append(post_id)
        if resp.close or kind == GET_NEW_CONN:
            conn.close()
            return None
        return conn

    def record(self, result: Result) -> None:
        self.results.append(result)
        if result.reason is None and not self.ready and self.opts.ready_file:
            self.ready = True
            Path(self.opts.ready_file).touch()

    async def worker(self, index: int, kind: str) -> None:
        conn: Conn | None = None
        seq = 0
        # Each worker paces itself to its share of --rate; a slow answer only delays that worker.
        interval = self.opts.concurrency / self.opts.rate if self.opts.rate else 0.0
        next_at = time.monotonic()
        try:
            while self.claim():
                if interval:
                    next_at = max(next_at + interval, time.monotonic() - interval)
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                # The server may have closed an idle kept-alive connection: reconnect before writing.
                if conn is not None and conn.reader.at_eof():
                    conn.close()
                    conn = None
                seq += 1
                conn = await self.request(kind, index, seq, conn)
        finally:
            if conn is not None:
                conn.close()

    async def run(self, handle_signals: bool = True) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
        for sig in signals:
            loop.add_signal_handler(sig, self.stop, "signal")
        started_wall = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        self.started = time.monotonic()
        try:
            watcher = asyncio.create_task(self.watch())
            workers = [asyncio.create_task(self.worker(i, KIND_PATTERN[i % len(KIND_PATTERN)]))
                       for i in range(self.opts.concurrency)]
            await asyncio.gather(*workers)  # each in-flight request is bounded by --timeout
            self.stop(self.stop_reason or "done")
            await watcher
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
        duration = time.monotonic() - self.started
        phases: dict[str, list[Result]] = defaultdict(list)
        for r in self.results:
            phases[r.phase].append(r)
        report = {
            "run_id": self.run_id,
            "started": started_wall,
            "duration_s": round(duration, 3),
            "stopped_by": self.stop_reason,
            "config": dict(vars(self.opts)),
            "total": summarize(self.results, duration),
            "phases": {name: summarize(rs, max(r.start + r.latency for r in rs) - min(r.start for r in rs))
                       for name, rs in phases.items()},
            "failures": self.failures,
            "post_ids_ok": len(self.post_ids_ok),
        }
        out = Path(self.opts.out)
        write_atomic(out.with_name(out.name + ".posts"), "".join(i + "\n" for i in self.post_ids_ok))
        write_atomic(out, json.dumps(report, indent=2) + "\n")  # last: once it exists, .posts does too
        return report


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    p.add_argument("--url", required=True, help="http://host[:port]; gives the Host header too")
    p.add_argument("--unix-socket", help="connect to this unix socket instead of host:port")
    p.add_argument("--host-header", help="Host header (default: host[:port] of --url)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--duration", type=float, default=60.0, help="seconds")
    p.add_argument("--max-requests", type=int)
    p.add_argument("--rate", type=float, help="cap on requests/s over all workers (leaves CPU for the deploy)")
    p.add_argument("--out", default="/tmp/load.json", help="JSON report; POST ids go to <out>.posts")
    p.add_argument("--phase-file", help="file holding the current phase name (missing: steady)")
    p.add_argument("--stop-file", help="stop as soon as this file exists")
    p.add_argument("--ready-file", help="touched once the first request succeeded")
    p.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    p.add_argument("--get-path", default="/")
    p.add_argument("--post-path", default="/items")
    args = p.parse_args(argv)
    if args.concurrency < 1:
        p.error("--concurrency must be >= 1")
    if args.rate is not None and args.rate <= 0:
        p.error("--rate must be > 0")
    return Options(**vars(args))


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    try:
        gen = LoadGen(opts)
    except ValueError as exc:
        sys.exit(f"loadgen: {exc}")
    report = asyncio.run(gen.run())
    t = report["total"]
    print(f"loadgen: {t['requests']} requests, {t['ok']} ok, {t['failed']} failed, {t['rps']} req/s, "
          f"p99 {t['p99_ms']} ms, stopped by {report['stopped_by']}; report in {opts.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
