"""Hold one WebSocket open through nginx and report how it ended (runs inside the test container).

Sends a text message every 0.2 s and counts the right echoes until the server closes the connection;
writes JSON: close code (None if the connection was cut without a close frame), echoes, and the
time of the last echo and of the close, so a test can tell a graceful 1012 from a reset.
Stdlib only: usage ws_watch.py HOST PORT PATH OUT [MAX_SECONDS].
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import sys
import time


def read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed without a close frame")
        data += chunk
    return data


def send_frame(sock: socket.socket, opcode: int, payload: bytes) -> None:
    """One final, masked client frame (payloads here are short: < 126 bytes)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """The next data or close frame; the server's keep-alive pings are answered on the way."""
    while True:
        first, second = read_exact(sock, 2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", read_exact(sock, 2))[0]
        elif length == 127:
            length = struct.unpack("!Q", read_exact(sock, 8))[0]
        opcode, payload = first & 0x0F, read_exact(sock, length)
        if opcode == 0x9:
            send_frame(sock, 0xA, payload)
        elif opcode != 0xA:
            return opcode, payload


def main(host: str, port: int, path: str, out: str, max_seconds: float = 600.0) -> int:
    sock = socket.create_connection((host, port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += read_exact(sock, 1)
    report: dict[str, object] = {"handshake": head.split(b"\r\n")[0].decode(), "close_code": None,
                                 "echoes": 0, "opened": time.time(), "last_echo": None, "closed": None}
    deadline = time.monotonic() + max_seconds
    try:
        while time.monotonic() < deadline:
            send_frame(sock, 0x1, f"ping {report['echoes']}".encode())
            opcode, payload = read_frame(sock)
            if opcode == 0x8:
                report["close_code"] = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                break
            if payload != f"echo: ping {report['echoes']}".encode():
                report["error"] = f"unexpected echo {payload[:80]!r}"
                break
            report["echoes"] = int(report["echoes"]) + 1
            report["last_echo"] = time.time()
            time.sleep(0.2)
    except (ConnectionError, OSError) as error:
        report["error"] = str(error)
    report["closed"] = time.time()
    with open(out + ".tmp", "w") as handle:
        json.dump(report, handle)
    os.replace(out + ".tmp", out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], *map(float, sys.argv[5:6])))
