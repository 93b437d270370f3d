"""Every kind of change under load: no failed request, no POST lost or applied twice, and each
change visibly took effect. Prints p99 per change next to steady state. Bad releases never
replace a good one, under the same load; rollback.yml switches back past them losslessly.
Each lock kind installs exactly its versions."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

STEPS = ["steady", "config", "env", "code", "deps", "unit", "nginx", "maintenance", "maintenance_allowed", "maintenance_off",
         "good", "broken_import", "broken_health", "rollback"]
# What each change must replace: the release served, the main master (and so its workers). The
# broken releases replace nothing.
NEW_RELEASE = {"code", "deps", "good", "rollback"}
NEW_MASTER = {"config", "env", "code", "deps", "unit", "good", "rollback"}


@pytest.fixture(scope="module")
def report(host: Any) -> dict[str, Any]:
    return json.loads(host.file("/var/tmp/load.json").content_string)


@pytest.fixture(scope="module")
def steps(host: Any) -> dict[str, dict[str, Any]]:
    lines = host.file("/var/tmp/steps.jsonl").content_string.splitlines()
    recorded = [json.loads(line) for line in lines]
    assert [r["step"] for r in recorded] == STEPS
    return {r["step"]: r for r in recorded}


def test_print_figures(report: dict[str, Any]) -> None:
    total = report["total"]
    print(f"\nzero_downtime: {total['requests']} requests, {total['failed']} failed, "
          f"{total['resent_stale_keepalive']} resent on a closed keep-alive connection")
    print(f"{'phase':<20}{'requests':>10}{'failed':>8}{'resent':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, phase in report["phases"].items():
        print(f"{name:<20}{phase['requests']:>10}{phase['failed']:>8}{phase['resent_stale_keepalive']:>8}"
              f"{phase['p50_ms']:>9}{phase['p99_ms']:>9}{phase['max_ms']:>9}")


def test_enough_load_and_no_failed_request(report: dict[str, Any]) -> None:
    total = report["total"]
    assert total["requests"] >= 20_000
    assert total["failed"] == 0, report["failures"]
    # "reload": the metrics test's systemctl reload (HUP), after the rollback.
    for name in [*STEPS, "reload"]:
        assert report["phases"][name]["requests"] > 0, f"no load during {name}"
        assert report["phases"][name]["failed"] == 0, name
    for kind in ("get_keepalive", "get_new_conn", "post"):
        assert total["by_kind"][kind]["requests"] > 1000, kind


def test_every_post_applied_exactly_once(host: Any, report: dict[str, Any]) -> None:
    acknowledged = set(host.file("/var/tmp/load.json.posts").content_string.split())
    recorded = host.file("/var/lib/hello/items.log").content_string.split()
    assert len(acknowledged) == report["post_ids_ok"] > 1000
    assert len(recorded) == len(set(recorded)), "a POST was applied twice"
    missing = acknowledged - set(recorded)
    assert not missing, f"{len(missing)} acknowledged POSTs are not recorded by the app"


@pytest.mark.parametrize("step", STEPS[1:])
def test_each_change_took_effect(steps: dict[str, dict[str, Any]], step: str) -> None:
    before, after = steps[STEPS[STEPS.index(step) - 1]], steps[step]
    assert (after["version"]["release"] != before["version"]["release"]) == (step in NEW_RELEASE)
    assert (after["main_pid"] != before["main_pid"]) == (step in NEW_MASTER)
    assert bool(set(after["workers"]) & set(before["workers"])) == (step not in NEW_MASTER)
    assert len(after["workers"]) == 2


def test_rollback_returns_to_the_release_before_the_good_one_past_the_rejected(steps: dict[str, dict[str, Any]]) -> None:
    # The release before the good one is the dependency change's (unit, nginx and maintenance kept it).
    assert steps["maintenance_off"]["version"]["release"] == steps["deps"]["version"]["release"]
    assert steps["good"]["version"]["release"] != steps["deps"]["version"]["release"]
    assert steps["rollback"]["version"]["release"] == steps["deps"]["version"]["release"]
    assert steps["rollback"]["current"] == steps["deps"]["version"]["release"]
    assert steps["rollback"]["main_pid"] != steps["good"]["main_pid"]


def test_open_websocket_got_a_close_frame_after_its_grace(host: Any) -> None:
    ws = json.loads(host.file("/var/tmp/ws.json").content_string)
    assert ws["handshake"].startswith("HTTP/1.1 101"), ws
    assert "error" not in ws, ws
    # Closed by the draining worker with "service restart", not cut: clients reconnect.
    assert ws["close_code"] == 1012, ws
    assert ws["echoes"] > 10, ws


def release_record(host: Any, release: str) -> dict[str, Any]:
    return json.loads(host.file(f"/opt/hello/releases/{release}/release.json").content_string)


def frozen(host: Any, release: str) -> str:
    return host.check_output(f"/opt/hello/releases/{release}/venv/bin/pip freeze --exclude hello-app")


def test_code_only_release_starts_from_a_copy_of_the_serving_virtualenv(host: Any, steps: dict[str, dict[str, Any]]) -> None:
    code, serving = steps["code"]["version"]["release"], steps["env"]["version"]["release"]
    assert release_record(host, code)["venv_copied_from"] == serving
    venv = f"/opt/hello/releases/{code}/venv"
    # The copy's scripts run its own interpreter; nothing in bin/ or pyvenv.cfg names the old release.
    assert host.file(f"{venv}/bin/gunicorn").content_string.startswith(f"#!{venv}/bin/python")
    leftover = host.run(f"grep -rlF /opt/hello/releases/{serving}/ {venv}/bin {venv}/pyvenv.cfg")
    assert leftover.rc == 1 and leftover.stdout == "", leftover.stdout
    assert frozen(host, code) == frozen(host, serving)
    assert host.run(f"{venv}/bin/pip check").rc == 0
    # The app itself was installed again, from the new source.
    init = host.check_output(f"{venv}/bin/python -c 'import hello_app; print(hello_app.__file__)'")
    assert init.startswith(f"{venv}/lib/")
    assert "code-only change made by the zero_downtime scenario" in host.file(init).content_string


def test_a_dependency_change_builds_its_own_virtualenv(host: Any, steps: dict[str, dict[str, Any]]) -> None:
    deps, code = steps["deps"]["version"]["release"], steps["code"]["version"]["release"]
    record = release_record(host, deps)
    assert record["venv_copied_from"] is None
    assert record["venv_key"] != release_record(host, code)["venv_key"]
    assert "six==1.17.0" in frozen(host, deps).splitlines()
    assert "six==1.17.0" not in frozen(host, code).splitlines()


PAGE = "Down for maintenance"


@pytest.fixture(scope="module")
def probes(host: Any) -> dict[str, dict[str, Any]]:
    """What a client outside loopback got in each maintenance step: step -> method -> answer."""
    lines = host.file("/var/tmp/maintenance.jsonl").content_string.splitlines()
    recorded = [json.loads(line) for line in lines]
    assert [r["step"] for r in recorded] == ["maintenance", "maintenance_allowed", "maintenance_off"]
    for r in recorded:
        assert not r["address"].startswith("127."), r["address"]
    return {r["step"]: {a["method"]: a for a in r["answers"]} for r in recorded}


def test_maintenance_answers_503_with_retry_after_and_the_page_outside_the_allow_list(probes: dict[str, dict[str, Any]]) -> None:
    for method in ("GET", "POST"):
        answer = probes["maintenance"][method]
        assert answer["status"] == 503, answer
        assert answer["retry_after"] == "120", answer
        assert PAGE in answer["content"], answer
        # The security headers are repeated on the maintenance answer, not lost to its own add_header.
        assert answer["content_type_options"] == "nosniff", answer


@pytest.mark.parametrize("step", ["maintenance_allowed", "maintenance_off"])
def test_allowed_clients_and_everyone_after_maintenance_reach_the_app(probes: dict[str, dict[str, Any]], step: str) -> None:
    get, post = probes[step]["GET"], probes[step]["POST"]
    assert get["status"] == 200 and json.loads(get["content"])["message"] == "Hello from FastAPI", get
    assert post["status"] == 201, post
    for answer in (get, post):
        assert answer["retry_after"] is None and PAGE not in answer["content"], answer


def test_only_allowed_probes_reached_the_app(host: Any) -> None:
    recorded = set(host.file("/var/lib/hello/items.log").content_string.split())
    assert "maintenance-probe-maintenance" not in recorded
    assert {"maintenance-probe-maintenance_allowed", "maintenance-probe-maintenance_off"} <= recorded


def test_maintenance_page_is_root_owned_and_readable(host: Any) -> None:
    page = host.file("/var/www/fastapi_app/hello/maintenance.html")
    assert page.user == "root" and page.group == "root" and page.mode == 0o644
    assert PAGE in page.content_string


@pytest.fixture(scope="module")
def metrics(host: Any) -> dict[str, Any]:
    return json.loads(host.file("/var/tmp/metrics.json").content_string)


def counted_total(text: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith("hello_app_counted_requests_total ")]
    assert len(lines) == 1, text
    return float(lines[0].split()[-1])


def test_metrics_add_up_across_workers_and_a_reload(metrics: dict[str, Any]) -> None:
    before, after = metrics["before"], metrics["after"]
    assert before["requests"] == after["requests"] == 300
    # Spread over the workers, and the reload replaced them: new workers counted too.
    assert len(before["pids"]) >= 2, before
    assert set(after["pids"]) - set(before["pids"]), (before, after)
    print(f"\nmetrics: {before['pids']} before the reload, {after['pids']} after")
    assert counted_total(metrics["metrics"]) == before["requests"] + after["requests"]


def test_metrics_files_are_in_the_masters_runtime_directory(host: Any) -> None:
    files = host.check_output("ls /run/hello/prometheus").split()
    assert any(name.startswith("counter_") for name in files), files


def test_nginx_status_answers_on_loopback_only(metrics: dict[str, Any]) -> None:
    assert metrics["nginx_status"].startswith("Active connections:"), metrics["nginx_status"]
    assert metrics["status_outside_rc"] != 0 and "Failed to connect" in metrics["status_outside"], metrics


EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
CANARY_FAILURE = re.compile(r"([\w.-]+): release (\S+) of hello failed its canary run")


def failed_deploy(step: str) -> tuple[str, str, str]:
    """(host, release, whole output) of the deploy that was expected to fail."""
    # Whitespace folded: the result callback may wrap the cause, stated once in a debug line, over lines.
    output = " ".join((EPHEMERAL / f"deploy_{step}.log").read_text().split())
    match = CANARY_FAILURE.search(output)
    assert match, output[-3000:]
    return match.group(1), match.group(2), output


@pytest.mark.parametrize(("step", "evidence"), [
    ("broken_import", "RuntimeError: broken release: import fails"),
    ("broken_health", '503 {"status":"failing"}'),
])
def test_bad_release_fails_the_play_with_host_release_and_evidence(host: Any, steps, step: str, evidence: str) -> None:
    failed_host, release, output = failed_deploy(step)
    assert failed_host == host.backend.get_hostname()
    assert evidence in output
    assert "failed=1" in output
    good = steps["good"]["version"]["release"]
    assert release != good
    # It never became current and is marked; the good release kept serving on the same master.
    assert steps[step]["current"] == good
    assert host.file(f"/opt/hello/releases/{release}/CANARY_FAILED").exists
    assert steps[step]["version"]["release"] == good
    assert steps[step]["main_pid"] == steps["good"]["main_pid"]


FILES = Path(__file__).resolve().parents[3] / "examples" / "locks" / "hello_app"
DISTRIBUTIONS = ("import importlib.metadata as m, json, re; print(json.dumps(sorted("
                 "[re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(), d.version] for d in m.distributions())))")


def installed(host: Any, release: str) -> dict[str, str]:
    python = f"/opt/hello/releases/{release}/venv/bin/python"
    return dict(json.loads(host.check_output(f"{python} -c {json.dumps(DISTRIBUTIONS)}")))


def requirements_pins(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([a-z0-9-]+)==(\S+)", text, re.MULTILINE))


@pytest.mark.parametrize(("step", "kind", "locked"), [
    ("good", "pylock", lambda: {p["name"]: p["version"] for p in tomllib.loads((FILES / "pylock.toml").read_text())["packages"] if "version" in p}),
    ("broken_health", "requirements", lambda: requirements_pins((FILES / "requirements.lock").read_text())),
])
def test_each_lock_kind_installs_exactly_its_versions(host: Any, steps, step: str, kind: str, locked) -> None:
    release = steps["good"]["version"]["release"] if step == "good" else failed_deploy(step)[1]
    record = release_record(host, release)
    assert record["lock"]["kind"] == kind and record["installer"] == "uv"
    pins = locked()
    found = installed(host, release)
    assert len(pins) >= 10
    assert {name: found.get(name) for name in pins} == pins
    assert {"gunicorn", "uvicorn-worker", "hello-app"} <= set(found)
    # The play's only host built the wheels inside the release: no build directory was made, and
    # only the manifest and the install list stay.
    assert not host.file("/var/cache/fastapi_app/hello").exists
    assert not host.file(f"/opt/hello/releases/{release}/wheelhouse").exists
    assert json.loads(host.file(f"/opt/hello/releases/{release}/manifest.json").content_string)["wheels"]


def test_an_app_without_a_lock_still_installs_with_pip(host: Any, steps) -> None:
    record = release_record(host, steps["steady"]["version"]["release"])
    assert not record["lock"] and record["installer"] == "pip"
