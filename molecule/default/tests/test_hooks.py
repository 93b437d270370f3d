"""The app's own gunicorn hooks (fastapi_app_gunicorn_hooks: hello_app.gunicorn_hooks) ran beside the
role's: the serving master ran the app's on_starting once and each of its workers the app's
post_fork, while the role's readiness (READY=1 once every worker serves) still holds, also across
a reload."""

from __future__ import annotations

import time
from typing import Any

from stack import child_pids, curl_json, service_show


def marks(host: Any, app: dict[str, Any]) -> list[dict[str, str]]:
    """The lines of hooks.log: {hook, pid, release, ...}."""
    text = host.check_output(f"cat /var/lib/{app['fastapi_app_name']}/hooks.log")
    return [{"hook": line.split()[0], **dict(f.split("=", 1) for f in line.split()[1:])} for line in text.splitlines()]


def serving(host: Any, app: dict[str, Any]) -> tuple[str, set[str]]:
    props = service_show(host, f"{app['fastapi_app_name']}.service", "MainPID", "ActiveState", "StatusText")
    assert (props["ActiveState"], props["StatusText"]) == ("active", "serving"), props
    return props["MainPID"], child_pids(host, props["MainPID"])


def release(host: Any, app: dict[str, Any]) -> str:
    return host.check_output(f"readlink /opt/{app['fastapi_app_name']}/current").rsplit("/", 1)[-1]


def test_the_apps_hooks_ran_in_the_serving_master_and_its_workers(host: Any, app: dict[str, Any]) -> None:
    log = host.file(f"/var/lib/{app['fastapi_app_name']}/hooks.log")
    assert log.user == app["fastapi_app_name"], "written by the app's own user"
    master, workers = serving(host, app)
    found = marks(host, app)
    starts = [m for m in found if m["hook"] == "on_starting" and m["pid"] == master]
    assert len(starts) == 1, found
    assert starts[0]["release"] == release(host, app) and starts[0]["workers"] == str(app["fastapi_app_gunicorn_workers"])
    forks = {m["pid"] for m in found if m["hook"] == "post_fork" and m["master"] == master}
    assert workers and workers <= forks, (workers, found)
    # The canary of the release ran them too, in its own master, before the release got traffic.
    assert [m for m in found if m["hook"] == "on_starting" and m["pid"] != master and m["release"] == starts[0]["release"]], found
    assert curl_json(host, "http://127.0.0.1/healthz") == {"status": "ok"}


def test_a_reload_runs_post_fork_in_the_new_workers_and_keeps_serving(host: Any, app: dict[str, Any]) -> None:
    name = app["fastapi_app_name"]
    master, old = serving(host, app)
    before = len(marks(host, app))
    assert host.run("systemctl reload %s", name).rc == 0
    deadline = time.monotonic() + 30
    while True:
        new = child_pids(host, master)
        if len(new) == app["fastapi_app_gunicorn_workers"] and not new & old:
            break
        assert time.monotonic() < deadline, f"workers {new} never replaced {old}"
        time.sleep(0.5)
    assert serving(host, app) == (master, new), "a reload keeps the master"
    added = marks(host, app)[before:]
    assert {m["pid"] for m in added if m["hook"] == "post_fork" and m["master"] == master} >= new, added
    assert not [m for m in added if m["hook"] == "on_starting"], "on_starting runs once per master, not on a reload"
    served_by = {str(curl_json(host, "http://127.0.0.1/")["pid"]) for _attempt in range(10)}
    assert served_by <= new, (served_by, new)
