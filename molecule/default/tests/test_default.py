"""The serving stack after converge: socket, service, nginx, secrets, reload and activation."""

from __future__ import annotations

import json
import time
from typing import Any

from stack import WS_WATCH, child_pids, curl_json, service_show

NGINX = "http://127.0.0.1"


def socket_path(app: dict[str, Any]) -> str:
    return f"/run/{app['fastapi_app_name']}.sock"


def master_and_workers(host: Any, app: dict[str, Any]) -> tuple[str, set[str]]:
    pid = service_show(host, f"{app['fastapi_app_name']}.service", "MainPID")["MainPID"]
    assert pid != "0", "service has no main process"
    return pid, child_pids(host, pid)


def wait_for_workers(host: Any, app: dict[str, Any], count: int, exclude: set[str] = frozenset()) -> set[str]:
    """Worker PIDs once `count` of them exist and none is in `exclude` (old workers drained)."""
    deadline = time.monotonic() + 30
    while True:
        _unused, workers = master_and_workers(host, app)
        if len(workers) == count and not workers & exclude:
            return workers
        assert time.monotonic() < deadline, f"workers {workers} never became {count} new ones (old {exclude})"
        time.sleep(0.5)


def test_socket_unit_listens_with_owner_and_mode(host, app):
    name = app["fastapi_app_name"]
    assert host.service(f"{name}.socket").is_running
    assert host.service(f"{name}.socket").is_enabled
    sock = host.file(socket_path(app))
    assert sock.is_socket
    assert (sock.user, sock.group, sock.mode) == ("root", "www-data", 0o660)
    listening = host.check_output("ss -xlnH")
    assert socket_path(app) in listening


def test_service_is_gunicorn_master_with_uvicorn_workers(host, app):
    name = app["fastapi_app_name"]
    props = service_show(host, f"{name}.service", "Type", "ActiveState", "MainPID", "User", "TriggeredBy", "StatusText")
    assert props["Type"] == "notify"
    assert props["ActiveState"] == "active"
    # READY=1 came from a worker whose app had started, not from the master at boot.
    assert props["StatusText"] == "serving"
    assert props["User"] == name
    assert f"{name}.socket" in props["TriggeredBy"]
    master = host.process.get(pid=int(props["MainPID"]))
    assert master.user == name
    assert "gunicorn" in master.args and f"/opt/{name}/current/venv/bin/gunicorn" in master.args
    workers = child_pids(host, props["MainPID"])
    assert len(workers) == app["fastapi_app_gunicorn_workers"]
    for pid in workers:
        assert host.process.get(pid=int(pid)).user == name
    conf = host.file(f"/etc/{name}/gunicorn.conf.py")
    assert 'worker_class = "fastapi_app_worker.UvicornWorker"' in conf.content_string
    assert "uvicorn.workers" not in conf.content_string
    # The role's worker is the uvicorn-worker package's class with a lossless drain.
    python = f"/opt/{name}/current/venv/bin/python"
    check = "import fastapi_app_worker, uvicorn_worker; assert issubclass(fastapi_app_worker.UvicornWorker, uvicorn_worker.UvicornWorker)"
    assert host.run("%s -c %s", python, check).rc == 0
    assert not host.service(f"{name}-handover.service").is_running
    # Straight from the socket (no nginx in between) the server header is uvicorn's.
    head = host.check_output("curl -sS -D - -o /dev/null --unix-socket %s http://app/", socket_path(app))
    assert "server: uvicorn" in head.lower()


def test_get_through_nginx_carries_forwarded_headers(host):
    body = curl_json(host, f"{NGINX}/", "-H 'X-Forwarded-Proto: https'", "-H 'Host: example.test'")
    assert body["app"] == "hello-app"
    seen = body["seen"]
    assert seen["x_forwarded_for"] == "127.0.0.1"
    assert seen["x_real_ip"] == "127.0.0.1"
    assert seen["client"] == "127.0.0.1"
    assert seen["host"] == "example.test"
    # nginx overwrites a client-supplied X-Forwarded-Proto with the real scheme.
    assert seen["x_forwarded_proto"] == "http"
    assert seen["scheme"] == "http"


def test_version_reports_the_current_release(host, app):
    name = app["fastapi_app_name"]
    release = host.file(f"/opt/{name}/current").linked_to.rsplit("/", 1)[-1]
    body = curl_json(host, f"{NGINX}/version")
    assert body["release"] == release
    assert release.startswith(body["version"] + "-")


def test_post_is_applied_once(host):
    before = curl_json(host, f"{NGINX}/items/stats")
    item = f"molecule-{time.time_ns()}"
    body = curl_json(host, f"{NGINX}/items", "-X POST", "-H 'Content-Type: application/json'", f"-d '{{\"id\": \"{item}\"}}'")
    assert body["id"] == item
    after = curl_json(host, f"{NGINX}/items/stats")
    assert after["count"] == before["count"] + 1
    assert after["unique"] == before["unique"] + 1


def test_websocket_through_nginx_echoes(host):
    result = host.run("python3 -c %s 127.0.0.1 80 /ws /tmp/ws.json 1", WS_WATCH)
    assert result.rc == 0, result.stderr
    ws = json.loads(host.file("/tmp/ws.json").content_string)
    assert ws["handshake"].startswith("HTTP/1.1 101"), ws
    assert "error" not in ws and ws["close_code"] is None, ws
    assert ws["echoes"] >= 3, ws


def test_static_file_is_served_by_nginx(host, app):
    result = host.run("curl -sS -D - --fail %s", f"{NGINX}{app['fastapi_app_nginx_static_url']}hello.txt")
    assert result.rc == 0, result.stderr
    assert result.stdout.endswith("hello from static\n")
    # The app has no /static route; the expiry header is set by nginx's location alone.
    assert "cache-control: max-age=3600" in result.stdout.lower()


def test_nginx_configuration_is_valid(host, app):
    assert host.run("nginx -t").rc == 0
    assert host.file(f"/etc/nginx/sites-enabled/{app['fastapi_app_name']}.conf").is_symlink
    assert not host.file("/etc/nginx/sites-enabled/default").exists


def test_units_pass_systemd_analyze_verify(host, app):
    name = app["fastapi_app_name"]
    result = host.run("systemd-analyze verify /etc/systemd/system/%s.socket /etc/systemd/system/%s.service", name, name)
    assert result.rc == 0 and result.stderr.strip() == "", result.stderr


def test_env_file_is_root_only_and_secret_stays_out_of_logs(host, app):
    name = app["fastapi_app_name"]
    env = host.file(f"/etc/{name}/env")
    assert (env.user, env.group, env.mode) == ("root", "root", 0o600)
    secret = app["fastapi_app_secrets"]["HELLO_APP_API_TOKEN"]
    master, workers = master_and_workers(host, app)
    # The secret does reach the app...
    environ = host.check_output("tr '\\0' '\\n' < /proc/%s/environ", sorted(workers)[0])
    assert f"HELLO_APP_API_TOKEN={secret}" in environ.splitlines()
    # ...and nowhere it could leak.
    assert secret not in host.check_output("journalctl --no-pager -o cat")
    assert secret not in host.check_output("systemctl show %s.service", name)
    assert secret not in host.check_output("ps -eo args")


def test_app_cannot_write_its_code_or_config(host, app):
    name = app["fastapi_app_name"]
    for path in (f"/opt/{name}/current/", f"/opt/{name}/current/venv/", f"/etc/{name}/"):
        result = host.run("setpriv --reuid=%s --regid=%s --init-groups touch %s", name, name, path + "probe")
        assert result.rc != 0, f"{name} could write {path}"
    user = host.user(name)
    assert user.shell == "/usr/sbin/nologin"


def test_reload_replaces_workers_and_keeps_serving(host, app):
    name = app["fastapi_app_name"]
    master, old_workers = master_and_workers(host, app)
    assert host.run("systemctl reload %s", name).rc == 0
    new_workers = wait_for_workers(host, app, app["fastapi_app_gunicorn_workers"], exclude=old_workers)
    assert master_and_workers(host, app)[0] == master, "a reload must keep the master"
    served_by = {str(curl_json(host, f"{NGINX}/")["pid"]) for _unused in range(20)}
    assert served_by <= new_workers, f"answers came from {served_by}, new workers are {new_workers}"


def test_handover_master_accepts_on_the_app_socket(host, app):
    # The main master's processes frozen (still active, so the socket starts nothing): what
    # answers on the socket can only be the handover master's workers.
    name = app["fastapi_app_name"]
    assert host.run("systemctl start %s-handover.service", name).rc == 0
    handover = child_pids(host, service_show(host, f"{name}-handover.service", "MainPID")["MainPID"])
    assert host.run("systemctl kill --signal=SIGSTOP %s.service", name).rc == 0
    try:
        served_by = {str(curl_json(host, "http://localhost/", "--unix-socket", socket_path(app))["pid"]) for _unused in range(5)}
    finally:
        host.run("systemctl kill --signal=SIGCONT %s.service", name)
        host.run("systemctl stop %s-handover.service", name)
    assert served_by <= handover, f"answers came from {served_by}, the handover master's workers are {handover}"


def test_stopped_service_is_started_by_its_socket(host, app):
    name = app["fastapi_app_name"]
    assert host.run("systemctl stop %s.service", name).rc == 0
    assert not host.service(f"{name}.service").is_running
    assert host.service(f"{name}.socket").is_running
    body = curl_json(host, f"{NGINX}/healthz")
    assert body == {"status": "ok"}
    # Its first worker answered; the start job ends once every worker serves (READY=1 then).
    wait_for_workers(host, app, app["fastapi_app_gunicorn_workers"])
    deadline = time.monotonic() + 30
    while not host.service(f"{name}.service").is_running:
        assert time.monotonic() < deadline, f"{name}.service never became active after its socket started it"
        time.sleep(0.5)
