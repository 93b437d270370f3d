"""A real app on two hosts and a PostgreSQL host: migrations once per release before the switch,
workers and the timer on the serving release, a failed migration that replaces nothing, a
one-off command, and no failed request or lost or doubled job under load throughout."""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources" / "tests"))

from stack import host_output, run_playbook  # noqa: E402

DB = "fastapi-app-realapp-db"
APP_HOSTS = ["fastapi-app-realapp-app1", "fastapi-app-realapp-app2"]
testinfra_hosts = [DB]
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
BASE = "/opt/orders"


def sql(host: Any, query: str) -> list[str]:
    out = host.check_output(f"runuser -u postgres -- psql -d orders -Atc {json.dumps(query)}")
    return out.splitlines()


@pytest.fixture(scope="module")
def apps(host: Any) -> dict[str, Any]:
    return {name: host.get_host(f"ansible://{name}", ansible_inventory=host.backend.ansible_inventory) for name in APP_HOSTS}


@pytest.fixture(scope="module")
def releases(apps: dict[str, Any]) -> list[str]:
    """The releases built on the app hosts (each host builds the same ids), oldest first."""
    found = {name: app.check_output(f"ls -1tr {BASE}/releases").split() for name, app in apps.items()}
    first = found[APP_HOSTS[0]]
    assert all(ids == first for ids in found.values()), found
    return first


def current(app: Any) -> str:
    return app.check_output(f"basename $(readlink {BASE}/current)")


def test_three_releases_and_the_rollback_target_serves_everywhere(apps: dict[str, Any], releases: list[str]) -> None:
    assert [r.split("-")[0] for r in releases] == ["1.0.0", "1.1.0", "1.2.0"], releases
    for app in apps.values():
        # The last step rolled back from 1.1.0 to 1.0.0, which runs on 1.1.0's expanded schema.
        assert current(app) == releases[0]
        assert app.check_output(f"basename $(readlink {BASE}/previous)") == releases[1]
        assert app.file(f"{BASE}/releases/{releases[2]}/release.json").exists, "the bad release was built"
        version = json.loads(app.check_output("curl -sS --fail http://127.0.0.1/version"))
        assert version["release"] == releases[0]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_each_migration_ran_on_exactly_one_host(apps: dict[str, Any], releases: list[str], index: int) -> None:
    release = releases[index]
    logs = {name: app.file(f"{BASE}/releases/{release}/commands/migrate.log") for name, app in apps.items()}
    ran = [name for name, log in logs.items() if log.exists]
    assert len(ran) == 1, (release, ran)
    assert "Running upgrade" in logs[ran[0]].content_string, logs[ran[0]].content_string
    for app in apps.values():
        # A migration that succeeded is recorded on every host of its release; the failed one nowhere.
        assert app.file(f"{BASE}/releases/{release}/commands/migrate.done").exists == (index < 2)


def test_schema_is_the_expand_release_and_its_column_is_used(host: Any) -> None:
    assert sql(host, "SELECT version_num FROM alembic_version") == ["0002_order_note"]
    noted = sql(host, "SELECT count(*) FROM orders WHERE release LIKE '1.1.0-%' AND note IS NOT NULL")
    assert int(noted[0]) > 0


def test_failed_migration_reported_with_the_database_error() -> None:
    # Whitespace folded: the result callback may wrap a long message over lines.
    log = " ".join((EPHEMERAL / "deploy_bad_migration.log").read_text().split())
    assert "release command 'migrate'" in log
    assert re.search(r"psycopg\.errors\.\w+|division by zero|violates", log), log[-3000:]
    assert "keeps serving" in log
    # The host that did not run it says why it stopped too.
    assert "fastapi-app-realapp-app2: orders stopped with its batch: another host failed" in log, log[-3000:]


def test_run_playbook_prints_the_serving_schema() -> None:
    log = (EPHEMERAL / "run_alembic_current.log").read_text()
    assert "exit code: 0" in log
    assert "0002_order_note (head)" in log, log[-2000:]


def test_no_failed_request_under_load(apps: dict[str, Any]) -> None:
    for name, app in apps.items():
        report = json.loads(app.file("/var/tmp/load.json").content_string)
        total = report["total"]
        print(f"\n{name}: {total['requests']} requests, {total['failed']} failed, "
              f"{total['resent_stale_keepalive']} resent on a closed keep-alive connection")
        for phase, figures in report["phases"].items():
            print(f"  {phase:<14}{figures['requests']:>8} requests {figures['failed']:>4} failed"
                  f" p99 {figures['p99_ms']} ms max {figures['max_ms']} ms")
        assert total["failed"] == 0, report["failures"]
        for phase in ("steady", "expand", "bad_migration", "run", "env", "retire", "rollback"):
            assert report["phases"][phase]["requests"] > 0, (name, phase)


def test_every_acknowledged_order_has_one_job_processed_exactly_once(host: Any, apps: dict[str, Any]) -> None:
    acknowledged: set[str] = set()
    for app in apps.values():
        acknowledged |= set(app.file("/var/tmp/load.json.posts").content_string.split())
    assert len(acknowledged) > 500
    orders = set(sql(host, "SELECT id FROM orders"))
    assert acknowledged <= orders, f"{len(acknowledged - orders)} acknowledged orders are missing"
    assert sql(host, "SELECT count(*) FROM jobs WHERE status <> 'done' OR attempts <> 1") == ["0"]
    assert sql(host, "SELECT count(*) FROM orders o WHERE (SELECT count(*) FROM jobs j WHERE j.order_id = o.id) <> 1") == ["0"]


def test_workers_followed_each_switch(host: Any, apps: dict[str, Any], releases: list[str]) -> None:
    by_release = dict(row.split("|") for row in sql(host, "SELECT processed_by_release, count(*) FROM jobs GROUP BY 1"))
    assert int(by_release.get(releases[0], 0)) > 0 and int(by_release.get(releases[1], 0)) > 0, by_release
    # Jobs enqueued by 1.1.0 and processed after the rollback, by 1.0.0's worker.
    late = sql(host, f"SELECT count(*) FROM jobs j JOIN orders o ON o.id = j.order_id "
                     f"WHERE o.release = '{releases[1]}' AND j.processed_by_release = '{releases[0]}'")
    print(f"\njobs of 1.1.0 orders processed by 1.0.0 after the rollback: {late[0]}")
    for app in apps.values():
        # The retire step took instance 2 away: stopped and disabled, its template kept for instance 1.
        assert not app.service("orders-worker@2.service").is_running
        assert not app.service("orders-worker@2.service").is_enabled
        for instance in (1,):
            unit = f"orders-worker@{instance}.service"
            assert app.service(unit).is_running and app.service(unit).is_enabled
            assert f"release {releases[0]}" in app.check_output(f"systemctl show -p Description --value {unit}")
            # The workspace member's own directory (backend/), as the release command's.
            assert app.check_output(f"systemctl show -p WorkingDirectory --value {unit}") == f"{BASE}/releases/{releases[0]}/src/backend"
            # The worker itself is the main process (no shell in between that would swallow the stop signal).
            pid = app.check_output(f"systemctl show -p MainPID --value {unit}")
            assert app.check_output(f"ps -o args= -p {pid}") == "python -m orders_app.worker"


def test_workers_stopped_gracefully_on_the_switch(apps: dict[str, Any]) -> None:
    for name, app in apps.items():
        log = app.check_output("journalctl --no-pager -o cat -u orders-worker@1.service -u orders-worker@2.service")
        # Converge started them; the expand release and the environment change restarted both, the
        # retire step stopped one, the rollback restarted the other: each stop was the worker's own.
        assert log.count("worker stopping on SIGTERM") >= 6, (name, log[-2000:])
        assert "SIGKILL" not in log and "Killing process" not in log, (name, log[-2000:])


STUCK = [f"orders-stuck@{i}.service" for i in (1, 2, 3)]
STUCK_TIMEOUT = 4
UNIT_EVENT = re.compile(r"^(\d+\.\d+) \S+ systemd\[1\]: (Stopping|Stopped|Started) (orders-stuck@\d+\.service)")


def stuck_switches(app: Any) -> list[list[tuple[float, str, str]]]:
    """systemd's Stopping/Stopped/Started of the stuck instances, in bursts: a new burst after 2 x
    their stop_timeout without one (the instances of a rolling switch would chain into one burst)."""
    log = app.check_output("journalctl --no-pager -o short-unix " + " ".join(f"-u {unit}" for unit in STUCK))
    events = [(float(m.group(1)), m.group(2), m.group(3)) for m in map(UNIT_EVENT.match, log.splitlines()) if m]
    bursts: list[list[tuple[float, str, str]]] = []
    for event in events:
        if not bursts or event[0] - bursts[-1][-1][0] > 2 * STUCK_TIMEOUT:
            bursts.append([])
        bursts[-1].append(event)
    return [b for b in bursts if any(kind == "Stopping" for _t, kind, _u in b)]


def test_instances_that_outlive_their_stop_timeout_switch_at_once(apps: dict[str, Any]) -> None:
    """The stuck workers (3 instances, stop_timeout 4 s, lingering 30 s after SIGTERM) were restarted
    by the expand release and the environment change and stopped by the retire step: each time all
    three at once, so each switch took about one stop_timeout (one after the other: 3 x 4 s and more)."""
    for name, app in apps.items():
        switches = stuck_switches(app)
        spans = [round(b[-1][0] - b[0][0], 1) for b in switches]
        print(f"\n{name}: stuck workers' switches (first Stopping to last Started/Stopped): {spans} s")
        assert len(switches) == 3, (name, switches)
        for burst, span in zip(switches, spans):
            assert {unit for _t, kind, unit in burst if kind == "Stopping"} == set(STUCK), (name, burst)
            # Each was killed, not stopped by itself, and all together: one timeout, not three.
            assert STUCK_TIMEOUT <= span < 2 * STUCK_TIMEOUT + 2, (name, span, burst)
        assert [len({u for _t, kind, u in b if kind == "Started"}) for b in switches] == [3, 3, 0], (name, switches)
        log = app.check_output("journalctl --no-pager -o cat " + " ".join(f"-u {unit}" for unit in STUCK))
        assert log.count("State 'stop-sigterm' timed out. Killing.") == 9, (name, log[-2000:])
        assert log.count("lingering 30 s before exiting") == 9, (name, log[-2000:])


def test_the_summary_names_the_instances_killed_after_their_stop_timeout() -> None:
    """The environment change restarted the stuck workers, the retire step stopped them: each run's
    summary names the three killed on each host, and none of the workers that stopped by themselves."""
    killed = "WARNING: killed (SIGKILL) after their stop_timeout: " + ", ".join(STUCK)
    for log_name in ("lock_first.log", "lock_broken.log"):
        # Molecule's ANSIBLE_FORCE_COLOR outweighs the runs' ANSIBLE_NOCOLOR: colours off first.
        log = re.sub(r"\x1b\[[0-9;]*m", "", (EPHEMERAL / log_name).read_text())
        for name in APP_HOSTS:
            # The yaml result format wraps a long msg: the host's results with their whitespace collapsed.
            results = " ".join(host_output(log, name).split())
            summary = re.search(rf"{name} orders: release .*? s; WARNING: [^']*", results)
            assert summary, (log_name, name, results[-3000:])
            assert summary.group(0).endswith(killed), (log_name, name, summary.group(0))
    # A run that stopped nothing names nothing.
    assert "WARNING: killed" not in (EPHEMERAL / "lock_second.log").read_text()


def test_timer_fired_in_the_serving_release(host: Any, apps: dict[str, Any], releases: list[str]) -> None:
    assert int(sql(host, f"SELECT count(*) FROM reports WHERE release = '{releases[1]}'")[0]) > 0
    for app in apps.values():
        runs = app.check_output("journalctl --no-pager -o cat -u orders-report.service")
        assert "Finished orders-report.service" in runs and "Failed with result" not in runs, runs[-2000:]
        # Removed from the inventory by the retire step: its units are gone and it fires no more.
        for unit in ("orders-report.timer", "orders-report.service"):
            assert not app.file(f"/etc/systemd/system/{unit}").exists
        assert "orders-report" not in app.check_output("systemctl list-timers --all --no-legend")


def test_processes_share_the_web_sandbox(apps: dict[str, Any]) -> None:
    app = apps[APP_HOSTS[0]]
    web = app.run("systemd-analyze security orders.service --no-pager | tail -1").stdout
    worker = app.run("systemd-analyze security orders-worker@1.service --no-pager | tail -1").stdout
    score = re.compile(r"exposure level for \S+: (\d+\.\d+)")
    assert score.search(web) and score.search(worker), (web, worker)
    assert score.search(web).group(1) == score.search(worker).group(1), (web, worker)


def test_a_second_deploy_meanwhile_fails_at_once_naming_the_first(apps: dict[str, Any]) -> None:
    first = (EPHEMERAL / "lock_first.log").read_text()
    second = (EPHEMERAL / "lock_second.log").read_text()
    assert re.search(r"failed=0", first) and not re.search(r"failed=[1-9]", first), first[-3000:]
    assert "orders is being deployed on this host by" in second, second[-3000:]
    assert "(ansible-playbook started" in second and "fastapi_app_break_lock=true" in second
    # It failed before changing anything: no task of it reported a change.
    assert not re.search(r"changed=[1-9]", second), second[-3000:]
    for app in apps.values():
        assert not app.file("/run/lock/fastapi_app-orders.lock").exists, "a finished run left its lock"


def test_a_killed_runs_lock_is_broken_only_on_request() -> None:
    stale = (EPHEMERAL / "lock_stale.log").read_text()
    broken = (EPHEMERAL / "lock_broken.log").read_text()
    assert "orders is being deployed on this host by" in stale, stale[-3000:]
    assert "broke the lock of" in broken and not re.search(r"failed=[1-9]", broken), broken[-3000:]


def test_check_mode_names_the_release_commands_a_real_run_would_run(apps: dict[str, Any], releases: list[str]) -> None:
    before = {name: current(app) for name, app in apps.items()}
    result = run_playbook("deploy", "--check", f"--extra-vars=fastapi_app_source_path={EPHEMERAL}/orders_bad_migration")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"would run in release {releases[2]}: migrate" in result.stdout, result.stdout[-3000:]
    assert {name: current(app) for name, app in apps.items()} == before


LOCK = Path(__file__).resolve().parents[3] / "examples" / "orders_app" / "uv.lock"
# What gunicorn==27.0.1, uvicorn-worker==0.4.0 and uvicorn[standard]==0.54.0 bring that the app's
# lock lacks (h11 is in the lock, through httpx of the dev group, and keeps its locked version).
SERVING_ADDITIONS = {"gunicorn", "uvicorn", "uvicorn-worker", "uvloop", "httptools", "watchfiles", "websockets",
                     "python-dotenv", "pyyaml", "click"}
DISTRIBUTIONS = ("import importlib.metadata as m, json, re; print(json.dumps(sorted("
                 "[re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(), d.version] for d in m.distributions())))")


def installed(app: Any, release: str = "current") -> dict[str, str]:
    return installed_at(app, f"{BASE}/{'current' if release == 'current' else 'releases/' + release}/venv/bin/python")


def installed_at(app: Any, python: str) -> dict[str, str]:
    return dict(json.loads(app.check_output(f"{python} -c {json.dumps(DISTRIBUTIONS)}")))


def test_every_host_runs_exactly_the_locked_versions(apps: dict[str, Any]) -> None:
    locked = {p["name"]: p["version"] for p in tomllib.loads(LOCK.read_text())["package"]}
    found = {name: installed(app) for name, app in apps.items()}
    first = found[APP_HOSTS[0]]
    assert len(first) > 20, first
    assert all(dists == first for dists in found.values()), found
    assert {name: version for name, version in first.items() if name in locked} == {
        name: locked[name] for name in first if name in locked}
    assert set(first) - set(locked) == SERVING_ADDITIONS
    assert first["fastapi"] == locked["fastapi"] and first["orders-app"] == locked["orders-app"] == "1.0.0"
    assert not {"pytest", "httpx"} & set(first), "the dev group is left out"


def test_a_release_with_the_same_locked_dependencies_copies_the_serving_virtualenv(apps: dict[str, Any], releases: list[str]) -> None:
    """1.1.0 has its own uv.lock (the app's version changed in it), the same dependencies: each host
    copied 1.0.0's virtualenv and installed only the new orders_app wheel."""
    for name, app in apps.items():
        record = json.loads(app.check_output(f"cat {BASE}/releases/{releases[1]}/release.json"))
        assert record["venv_copied_from"] == releases[0], (name, record)
        old, new = installed(app, releases[0]), installed(app, releases[1])
        assert (old.pop("orders-app"), new.pop("orders-app")) == ("1.0.0", "1.1.0"), name
        assert new == old, name
        # The new app code is what the copy runs.
        module = app.check_output(f"{BASE}/releases/{releases[1]}/venv/bin/python -c 'import orders_app.models as m; print(m.__file__)'")
        assert module.startswith(f"{BASE}/releases/{releases[1]}/venv/"), module
        assert "note" in app.file(module).content_string


def test_the_wheels_were_built_once_and_shipped(apps: dict[str, Any]) -> None:
    manifests = {name: app.check_output(f"cat {BASE}/current/manifest.json") for name, app in apps.items()}
    assert len(set(manifests.values())) == 1, manifests
    assert len(json.loads(manifests[APP_HOSTS[0]])["wheels"]) > 20
    # The build host (the first app host) keeps the downloads of pip and uv; the other has none.
    assert apps[APP_HOSTS[0]].file("/var/cache/fastapi_app/cache").is_directory
    assert not apps[APP_HOSTS[1]].file("/var/cache/fastapi_app/cache").exists


def test_code_only_releases_reuse_the_dependency_wheels(apps: dict[str, Any]) -> None:
    """Every release of the scenario has the same lock: the build host downloads and builds its
    dependency wheels once and later releases ship the same files, with only the app's wheel new."""
    app = apps[APP_HOSTS[0]]
    paths = app.check_output(f"ls {BASE}/releases/*/manifest.json").split()
    manifests = [json.loads(app.check_output(f"cat {path}")) for path in paths]
    assert len(manifests) >= 3, paths
    assert {m["dependencies"] for m in manifests} <= {"built", "reused"}
    assert sum(m["dependencies"] == "reused" for m in manifests) >= len(manifests) - 1, manifests
    dependencies = {frozenset((n, h) for n, h in m["wheels"].items() if not n.startswith("orders_app-")) for m in manifests}
    assert len(dependencies) == 1, "the same lock ships the same dependency files"
    assert len({m["wheels"][n] for m in manifests for n in m["wheels"] if n.startswith("orders_app-")}) >= 2
    # One set for every orders release, one for legacy_app.
    assert len(app.check_output("ls /var/cache/fastapi_app/cache/wheelsets").split()) == 2


def test_the_second_app_host_has_no_route_to_a_package_index(apps: dict[str, Any]) -> None:
    probe = "/usr/local/lib/fastapi_app/uv-0.13.9/bin/pip download --no-cache-dir --no-deps --timeout 5 --retries 0 -d /tmp/probe idna"
    assert apps[APP_HOSTS[0]].run(probe).rc == 0, "the probe works where there is a route"
    offline = apps[APP_HOSTS[1]].run(probe)
    assert offline.rc != 0, offline.stdout


def test_state_absent_removes_the_app_with_its_processes_and_timers(apps: dict[str, Any]) -> None:
    """Last, as it removes the app from the second host: what verify checked above is gone there,
    and the first host still serves."""
    gone, kept = apps[APP_HOSTS[1]], apps[APP_HOSTS[0]]
    gone.check_output("systemctl is-enabled orders-worker@1.service")
    result = run_playbook("deploy", f"--limit={APP_HOSTS[1]}", "--extra-vars=fastapi_app_state=absent")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert gone.check_output("ls /etc/systemd/system | grep '^orders' || true") == ""
    assert gone.check_output("systemctl list-units --all --no-legend 'orders*' || true") == ""
    assert not gone.file(BASE).exists and not gone.file("/etc/orders").exists
    assert json.loads(kept.check_output("curl -sS --fail http://127.0.0.1/version"))["release"]


LEGACY_LOCK = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "files" / "legacy_app" / "requirements.lock"


def legacy_locked() -> dict[str, str]:
    """The lock's pins that apply on Linux (entries whose marker names win32 are left out)."""
    pins = {}
    for entry in re.sub(r"\\\n", " ", LEGACY_LOCK.read_text()).splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;]+)(?:;([^-]*))?", entry)
        if match and "win32\"" not in (match.group(3) or "").replace('!= "win32"', ""):
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def test_a_real_projects_lock_deploys_to_a_host_without_compiler_or_index(apps: dict[str, Any]) -> None:
    """legacy_app's PDM-exported lock: an extra, win32-only packages, a setup.py-only sdist, a C
    extension from its sdist and uvicorn 0.32.0: every host runs exactly the lock's Linux set plus
    the serving packages it lacks, from the wheels built on app1."""
    locked = legacy_locked()
    assert {"colorama", "pywin32"}.isdisjoint(locked) and locked["uvicorn"] == "0.32.0" and "netifaces" in locked
    found = {}
    for name, app in apps.items():
        answer = json.loads(app.check_output("curl -sS --fail http://127.0.0.1:8081/"))
        assert (answer["uvicorn"], answer["docopt"], answer["netifaces"]) == ("0.32.0", "0.6.2", "0.11.0"), (name, answer)
        assert answer["af_inet"] is True
        found[name] = installed_at(app, "/opt/legacy/current/venv/bin/python")
    first = found[APP_HOSTS[0]]
    assert all(dists == first for dists in found.values()), found
    assert {name: first.get(name) for name in locked} == locked
    assert set(first) - set(locked) == {"gunicorn", "uvicorn-worker", "legacy-app"}
    # The worker that goes with the lock's uvicorn, inside the range the role supports.
    worker = first["uvicorn-worker"]
    assert tuple(int(part) for part in worker.split(".")[:2]) < (0, 4), worker
    manifests = {app.check_output("cat /opt/legacy/current/manifest.json") for app in apps.values()}
    assert len(manifests) == 1
    manifest = json.loads(manifests.pop())
    assert manifest["built_from_source"] == ["docopt", "netifaces"], manifest
    assert manifest["from_lock"] == ["uvicorn==0.32.0"]


def test_the_c_extension_built_on_the_build_host_imports_where_no_compiler_is(apps: dict[str, Any]) -> None:
    offline = apps[APP_HOSTS[1]]
    module = offline.check_output("/opt/legacy/current/venv/bin/python -c 'import netifaces; print(netifaces.__file__)'")
    assert module.endswith(".so") and "/opt/legacy/releases/" in offline.check_output(f"readlink -f {module}"), module
    assert offline.run("command -v gcc cc x86_64-linux-gnu-gcc").stdout.strip() == ""
    assert not offline.file("/usr/include/python3.11/Python.h").exists
    # The build packages went to the build host only.
    assert apps[APP_HOSTS[0]].package("python3-dev").is_installed
    assert not offline.package("python3-dev").is_installed
