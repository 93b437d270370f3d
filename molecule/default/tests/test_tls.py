"""A second app on the same hosts, served over TLS with a user-provided certificate.

Deployed here (after the other tests) with the real playbook and a self-signed certificate made
for the test: HTTPS with HTTP/2 and the Mozilla intermediate protocols, HTTP redirected to HTTPS,
the key root-only, the app seeing https as its scheme through nginx's forwarded headers.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
from stack import run_playbook

# Strings: testinfra quotes command arguments as text.
HTTP, HTTPS = "8080", "8443"


@pytest.fixture(scope="module")
def tls_app(tmp_path_factory: pytest.TempPathFactory) -> str:
    certs = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=tls.test",
         "-keyout", str(certs / "key.pem"), "-out", str(certs / "cert.pem")],
        check=True, capture_output=True,
    )
    extra = {
        "fastapi_app_name": "tlsdemo",
        "fastapi_app_nginx_port": int(HTTP),
        "fastapi_app_nginx_tls_port": int(HTTPS),
        "fastapi_app_nginx_tls_certificate": str(certs / "cert.pem"),
        "fastapi_app_nginx_tls_certificate_key": str(certs / "key.pem"),
        "fastapi_app_secrets": {},
        # No API key: none of the first app's deep check, which needs it.
        "fastapi_app_health_checks": [],
        "fastapi_app_nginx_server_names": ["tls.test"],
        "fastapi_app_nginx_hsts_max_age": 300,
    }
    result = run_playbook("deploy", "-e", json.dumps(extra))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return "tlsdemo"


def test_https_serves_the_app_with_http2(host: Any, tls_app: str) -> None:
    body = json.loads(host.check_output("curl -sS --fail -k https://127.0.0.1:%s/", HTTPS))
    assert body["app"] == "hello-app"
    assert body["seen"]["scheme"] == "https"
    assert body["seen"]["x_forwarded_proto"] == "https"
    version = host.check_output("curl -sS -k --http2 -o /dev/null -w '%%{http_version}' https://127.0.0.1:%s/", HTTPS)
    assert version == "2"


def test_mozilla_intermediate_protocols(host: Any, tls_app: str) -> None:
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in host.check_output("nginx -T 2>/dev/null")
    for version in ("1.2", "1.3"):
        assert host.run("curl -sS -k --tlsv%s --tls-max %s -o /dev/null https://127.0.0.1:%s/", version, version, HTTPS).rc == 0


def test_http_redirects_to_https(host: Any, tls_app: str) -> None:
    head = host.check_output("curl -sS -o /dev/null -D - -H 'Host: tls.test' http://127.0.0.1:%s/some/path?q=1", HTTP)
    assert head.splitlines()[0].split()[1] == "301"
    assert f"location: https://tls.test:{HTTPS}/some/path?q=1" in head.lower()


def test_unknown_host_gets_no_answer_on_a_site_with_server_names(host: Any, tls_app: str) -> None:
    # return 444: nginx closes the connection; curl reports an empty reply (exit code 52).
    assert host.run("curl -sS -o /dev/null -H 'Host: unknown.test' http://127.0.0.1:%s/", HTTP).rc == 52
    assert host.file(f"/etc/nginx/conf.d/fastapi_app_default_{HTTP}.conf").exists
    # The first app has no server names: it stays the catch-all of port 80, without a 444 server there.
    assert host.check_output("curl -sS -o /dev/null -w '%{http_code}' -H 'Host: unknown.test' http://127.0.0.1/healthz") == "200"
    assert not host.file("/etc/nginx/conf.d/fastapi_app_default_80.conf").exists


def test_hsts_and_security_headers_without_nginx_version(host: Any, tls_app: str) -> None:
    head = host.check_output("curl -sS -k -o /dev/null -D - https://127.0.0.1:%s/", HTTPS).lower()
    assert "strict-transport-security: max-age=300" in head
    assert "x-content-type-options: nosniff" in head and "x-frame-options: deny" in head
    assert "referrer-policy: strict-origin-when-cross-origin" in head
    assert re.search(r"^server: nginx\r?$", head, re.MULTILINE), head
    # Errors carry the headers too (`always`), and no version either.
    missing = host.check_output("curl -sS -D - http://127.0.0.1/no/such/page")
    assert "x-content-type-options: nosniff" in missing.lower() and "nginx/" not in missing


def test_key_is_root_only_and_first_app_unaffected(host: Any, tls_app: str) -> None:
    key = host.file(f"/etc/nginx/tls/{tls_app}/key.pem")
    assert (key.user, key.group, key.mode) == ("root", "root", 0o600)
    assert host.service("tlsdemo.service").is_running and host.service("hello.service").is_running
    assert json.loads(host.check_output("curl -sS --fail http://127.0.0.1/version"))["release"]
