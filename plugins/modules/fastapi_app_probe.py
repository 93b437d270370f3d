#!/usr/bin/python
"""Ask an app its health checks over HTTP(S) or its unix socket, in one module run.

The uri module costs about 1 s a call over a container connection (it loads Ansible's whole URL
stack), its retries one round trip each, and a list of checks one call per check. A deploy asks
three times (the canary, the socket after the switch, nginx); a no-change run once.

A check's request headers (an API key, a Host) are a no_log suboption: Ansible masks their values
wherever they would appear in the module's result, its invocation or its failure message.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: fastapi_app_probe
short_description: Ask a fastapi_app app its health checks
version_added: 0.10.0
description:
  - Sends GET for each check in order, on a new connection each, and compares the status and,
    optionally, a string the body must contain. The first check is retried until it answers as
    expected or I(wait) seconds have passed (the app may still be starting); the others are asked once.
    Never changes anything.
options:
  url:
    description: "Scheme, host and port, without a path: C(http://127.0.0.1:80), C(https://127.0.0.1:443), C(http://localhost)."
    type: str
    required: true
  unix_socket:
    description: Connect to this unix socket instead of the URL's host and port.
    type: path
  host:
    description: The Host header (and nothing else); the URL's host when not given.
    type: str
  checks:
    description:
      - The checks, asked in order.
      - The values of C(headers) are never logged (C(no_log)), nor anything in the result that equals one of them.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: The request path, with a query string if the check needs one.
        type: str
        required: true
      status:
        description: The status the answer must have.
        type: int
        default: 200
      contains:
        description: A string the body must contain; empty accepts any body.
        type: str
        default: ""
      headers:
        description: Request headers sent with the check; a C(Host) among them replaces O(host).
        type: dict
        default: {}
  wait:
    description: Seconds the first check may take to answer as expected.
    type: float
    default: 0
  timeout:
    description: Seconds one request may take.
    type: float
    default: 10
# No GitHub account speaks for the project yet: (!UNKNOWN) is validate-modules' form for that.
author: the fastapi_app authors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Ask the app through its socket, giving it 30 seconds to start
  fastapi_ops.app.fastapi_app_probe:
    url: http://localhost
    unix_socket: /run/hello.sock
    checks:
      - path: /healthz
    wait: 30

- name: Ask nginx over HTTPS, with the site's Host header
  fastapi_ops.app.fastapi_app_probe:
    url: https://127.0.0.1:443
    host: app.example.com
    checks:
      - path: /healthz
      - path: /healthz/db
        status: 200
        contains: ok
"""

RETURN = r"""
answers:
  description: "Per check asked: url, status (0 when there was no answer), content (the first 4 KiB), error."
  type: list
  elements: dict
  returned: always
url:
  description: The failed check's URL, else the first check's.
  type: str
  returned: always
status:
  description: Its status.
  type: int
  returned: always
content:
  description: Its body (the first 4 KiB).
  type: str
  returned: always
"""

import http.client
import socket
import ssl
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule

CONTENT_LIMIT = 4096
RETRY_EVERY = 0.25


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def connection(url: str, unix_socket: str | None, timeout: float) -> http.client.HTTPConnection:
    if unix_socket:
        return UnixHTTPConnection(unix_socket, timeout)
    scheme, _sep, address = url.partition("://")
    if scheme == "https":
        # The role's own nginx on loopback: its certificate may be self-signed or for other names.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(address, timeout=timeout, context=context)
    return http.client.HTTPConnection(address, timeout=timeout)


def request_headers(host: str | None, extra: dict[str, str] | None) -> dict[str, str]:
    """The headers of one GET: Connection: close, the Host, then the check's own; a check's header
    replaces the probe's of the same name in any case (its Host wins over `host`)."""
    own = {"Connection": "close", **({"Host": host} if host else {})}
    extra = {name: str(value) for name, value in (extra or {}).items()}
    names = {name.lower() for name in extra}
    return {**{name: value for name, value in own.items() if name.lower() not in names}, **extra}


def ask(url: str, unix_socket: str | None, host: str | None, path: str, timeout: float,
        headers: dict[str, str] | None = None) -> dict[str, Any]:
    """One GET on a new connection: url, status (0 without an answer), content, error."""
    answer = {"url": url.rstrip("/") + path, "status": 0, "content": "", "error": ""}
    conn = connection(url, unix_socket, timeout)
    try:
        conn.request("GET", path, headers=request_headers(host, headers))
        response = conn.getresponse()
        answer["status"] = response.status
        answer["content"] = response.read(CONTENT_LIMIT).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as error:
        answer["error"] = f"{type(error).__name__}: {error}"
    finally:
        conn.close()
    return answer


def mismatch(answer: dict[str, Any], check: dict[str, Any]) -> str:
    """Why an answer is not the expected one, or ''."""
    expected = int(check.get("status") or 200)
    if answer["error"]:
        return f"GET {answer['url']} got no answer: {answer['error']}"
    if answer["status"] != expected:
        return f"GET {answer['url']} answered {answer['status']}, expected {expected}"
    contains = check.get("contains") or ""
    if contains not in answer["content"]:
        return f"GET {answer['url']} answered {answer['status']} without {contains!r} in its body"
    return ""


def probe(params: dict[str, Any], sleep: Any = time.sleep, clock: Any = time.monotonic) -> dict[str, Any]:
    """The answers, and msg when a check failed (the first one only after `wait`)."""
    def ask_one(check: dict[str, Any]) -> dict[str, Any]:
        return ask(params["url"], params.get("unix_socket"), params.get("host"), check["path"], params["timeout"], check.get("headers"))

    checks = params["checks"]
    deadline = clock() + float(params.get("wait") or 0)
    answers = [ask_one(checks[0])]
    while mismatch(answers[0], checks[0]) and clock() + RETRY_EVERY <= deadline:
        sleep(RETRY_EVERY)
        answers[0] = ask_one(checks[0])
    failed = ""
    for index, check in enumerate(checks):
        if index:
            answers.append(ask_one(check))
        failed = mismatch(answers[index], check)
        if failed:
            break
    shown = answers[-1] if failed else answers[0]
    result = {"answers": answers, "url": shown["url"], "status": shown["status"], "content": shown["content"]}
    if failed:
        result["msg"] = failed
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "unix_socket": {"type": "path"},
            "host": {"type": "str"},
            "checks": {"type": "list", "elements": "dict", "required": True, "options": {
                "path": {"type": "str", "required": True},
                "status": {"type": "int", "default": 200},
                "contains": {"type": "str", "default": ""},
                # An API key, a Host: masked wherever the result, the invocation or a message would show it.
                "headers": {"type": "dict", "default": {}, "no_log": True},
            }},
            "wait": {"type": "float", "default": 0},
            "timeout": {"type": "float", "default": 10},
        },
        supports_check_mode=True,
    )
    if not module.params["checks"]:
        module.fail_json(msg="checks must name at least one path")
    result = probe(module.params)
    if "msg" in result:
        module.fail_json(changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
