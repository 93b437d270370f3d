"""Helpers shared by the scenarios' testinfra tests: scenario settings and in-container clients.

Every request is made inside the container under test (curl, python3), towards its own
loopback or unix sockets, so the tests exercise the real nginx -> socket -> gunicorn path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

# Runs inside the container: a minimal RFC 6455 client (stdlib only) that sends one masked text
# frame through nginx and prints the status line of the handshake and the echoed text.
WS_CLIENT = r"""
import base64, os, socket, struct, sys
host, port, path, text = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.create_connection((host, port), timeout=10)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
head = b""
while b"\r\n\r\n" not in head:
    chunk = s.recv(1)
    if not chunk:
        sys.exit("closed during handshake: " + head.decode(errors="replace"))
    head += chunk
print(head.split(b"\r\n")[0].decode())
payload = text.encode()
mask = os.urandom(4)
s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
def read(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            sys.exit("closed while reading a frame")
        data += chunk
    return data
b0, b1 = read(2)
length = b1 & 0x7F
if length == 126:
    length = struct.unpack("!H", read(2))[0]
print(read(length).decode())
"""


def scenario_vars(group: str = "app_servers") -> dict[str, Any]:
    """The group_vars the scenario converged with, read from its molecule.yml (one source of truth)."""
    scenario = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "molecule.yml"
    text = os.path.expandvars(scenario.read_text())
    return yaml.safe_load(text)["provisioner"]["inventory"]["group_vars"][group]


def curl_json(host: Any, url: str, *args: str) -> dict[str, Any]:
    """GET (or whatever curl args say) inside the container; fails the test on a non-2xx answer."""
    result = host.run("curl -sS --fail-with-body --max-time 10 " + " ".join(args) + " %s", url)
    assert result.rc == 0, f"curl {url} failed: rc={result.rc} {result.stdout} {result.stderr}"
    return json.loads(result.stdout)


def service_show(host: Any, unit: str, *props: str) -> dict[str, str]:
    out = host.check_output("systemctl show %s -p " + ",".join(props), unit)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def child_pids(host: Any, pid: str) -> set[str]:
    out = host.run("ps -o pid= --ppid %s", pid).stdout
    return {p.strip() for p in out.split() if p.strip()}
