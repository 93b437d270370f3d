"""The fleet under load: no failed request through the load balancer during a rolling deploy,
a bad release and an app removal; what each host serves after each step. Prints the figures."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

LB = "fastapi-app-fleet-lb"
APP_HOSTS = ["fastapi-app-fleet-app1", "fastapi-app-fleet-app2", "fastapi-app-fleet-app3"]
testinfra_hosts = [LB]
STEPS = ["converged", "v2_three_hosts", "v3_one_host", "bad_release", "remove_beta"]
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])


def wall_seconds(step: str) -> float:
    found = re.search(r"^wall_seconds=(\d+):(\d+):([\d.]+)$", (EPHEMERAL / f"fleet_{step}.log").read_text(), re.M)
    assert found, step
    hours, minutes, seconds = found.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@pytest.fixture(scope="module")
def reports(host: Any) -> dict[str, dict[str, Any]]:
    return {app: json.loads(host.file(f"/var/tmp/load-{app}.json").content_string) for app in ("alpha", "beta")}


@pytest.fixture(scope="module")
def steps(host: Any) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(step, app host, app) -> what served there after the step."""
    recorded: dict[tuple[str, str, str], dict[str, Any]] = {}
    for name in APP_HOSTS:
        other = host.get_host(f"ansible://{name}", ansible_inventory=host.backend.ansible_inventory)
        for line in other.file("/var/tmp/fleet_steps.jsonl").content_string.splitlines():
            entry = json.loads(line)
            recorded[(entry["step"], name, entry["app"])] = entry
    assert sorted({step for step, _unused, _unused in recorded}) == sorted(STEPS)
    return recorded


def test_print_figures(reports: dict[str, dict[str, Any]]) -> None:
    print(f"\nfleet: rolling deploy wall time, 3 hosts (serial 2): {wall_seconds('v2_three_hosts'):.1f} s, "
          f"1 host: {wall_seconds('v3_one_host'):.1f} s; bad release (stopped at host 1): {wall_seconds('bad_release'):.1f} s; "
          f"removal of beta from one host: {wall_seconds('remove_beta'):.1f} s")
    for app, report in reports.items():
        total = report["total"]
        print(f"fleet load {app} through the load balancer: {total['requests']} requests, {total['failed']} failed, "
              f"{total['resent_stale_keepalive']} resent on a closed keep-alive connection")
        for name, phase in report["phases"].items():
            print(f"  {name:<16}{phase['requests']:>8} requests {phase['failed']:>4} failed  p99 {phase['p99_ms']} ms")


@pytest.mark.parametrize("app", ["alpha", "beta"])
def test_no_failed_request_through_the_load_balancer(reports: dict[str, dict[str, Any]], app: str) -> None:
    total = reports[app]["total"]
    assert total["failed"] == 0, reports[app]["failures"]
    for kind in ("get_keepalive", "get_new_conn", "post"):
        assert total["by_kind"][kind]["requests"] > 500, kind
    for step in STEPS[1:]:
        assert reports[app]["phases"][step]["requests"] > 0, f"no load on {app} during {step}"


def test_enough_requests(reports: dict[str, dict[str, Any]]) -> None:
    assert sum(r["total"]["requests"] for r in reports.values()) >= 20_000
    assert reports["alpha"]["total"]["requests"] >= 10_000


def test_rolling_deploy_reached_every_host(steps: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    for app in ("alpha", "beta"):
        releases = {steps[("v2_three_hosts", name, app)]["current"] for name in APP_HOSTS}
        assert len(releases) == 1, f"{app}: hosts on different releases {releases}"
        assert releases != {steps[("converged", APP_HOSTS[0], app)]["current"]}
        for name in APP_HOSTS:
            assert steps[("v2_three_hosts", name, app)]["main_pid"] != steps[("converged", name, app)]["main_pid"]


def test_one_host_deploy_touched_only_that_host(steps: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    for app in ("alpha", "beta"):
        assert steps[("v3_one_host", APP_HOSTS[0], app)]["current"] != steps[("v2_three_hosts", APP_HOSTS[0], app)]["current"]
        for name in APP_HOSTS[1:]:
            assert steps[("v3_one_host", name, app)] | {"step": ""} == steps[("v2_three_hosts", name, app)] | {"step": ""}


def test_bad_release_stopped_at_the_first_host(steps: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    log = (EPHEMERAL / "fleet_bad_release.log").read_text()
    assert "Stop the rollout at a failed host" in log
    assert "It serves its previous release and is in the load balancer" in log
    for name in APP_HOSTS:
        for app in ("alpha", "beta"):
            before, after = steps[("v3_one_host", name, app)], steps[("bad_release", name, app)]
            assert after["current"] == before["current"], (name, app)
            assert after["main_pid"] == before["main_pid"], (name, app)
            assert after["unit"] == "active", (name, app)
    # Only the first host was tried: the later ones never ran a task (the roll-up names them, "not run").
    assert "[fastapi-app-fleet-app2" not in log.split("PLAY RECAP")[0].split("Roll the apps out in batches")[-1]


BATCH_LINE = re.compile(r'^\s*"msg": "(batch \d+ of \d+: hosts [^"]+)"$', re.M)
ROLLUP_ROW = re.compile(r'^\s*"(fastapi-app-fleet-app\d)\s+(\w+)\s+(\S+) -> (\S+)\s+(.+?)\s+([\d.]+|-)\s+'
                        r'(changed|unchanged|failed|removed|not run)",?$', re.M)


def log(step: str) -> str:
    return (EPHEMERAL / f"fleet_{step}.log").read_text()


def rollup(step: str) -> dict[tuple[str, str], dict[str, str]]:
    """(app host, app) -> the roll-up row the fleet printed at the end of the step."""
    output = log(step)
    assert output.count("TASK [Show the rollout]") == 1, step
    table = output.split("TASK [Show the rollout]")[1].split("TASK [")[0]
    rows = {}
    for name, app, before, after, switch, seconds, result in ROLLUP_ROW.findall(table):
        rows[(name, app)] = {"before": before, "after": after, "switch": switch, "seconds": seconds, "result": result}
    return rows


def release(entry: dict[str, Any]) -> str:
    return entry["current"] or "(none)"


@pytest.mark.parametrize(("step", "lines"), [
    ("v2_three_hosts", ["batch 1 of 2: hosts fastapi-app-fleet-app1, fastapi-app-fleet-app2", "batch 2 of 2: hosts fastapi-app-fleet-app3"]),
    ("v3_one_host", ["batch 1 of 1: hosts fastapi-app-fleet-app1"]),
    ("bad_release", ["batch 1 of 3: hosts fastapi-app-fleet-app1"]),
    ("remove_beta", ["batch 1 of 1: hosts fastapi-app-fleet-app3"]),
])
def test_each_batch_is_announced_as_it_starts(step: str, lines: list[str]) -> None:
    output = log(step)
    assert BATCH_LINE.findall(output) == lines
    # Announced before the batch's first deploy task.
    assert output.index(lines[0]) < output.index("TASK [Deploy the apps]")


@pytest.mark.parametrize(("step", "before_step", "expected"), [
    ("v2_three_hosts", "converged", {(name, app): ("handover", "changed") for name in APP_HOSTS for app in ("alpha", "beta")}),
    ("v3_one_host", "v2_three_hosts", {(APP_HOSTS[0], app): ("handover", "changed") for app in ("alpha", "beta")}),
    # The first host's alpha fails its canary: nothing switched; its beta and the later batches never ran.
    ("bad_release", "v3_one_host", {(APP_HOSTS[0], "alpha"): ("none", "failed")}
     | {(name, app): ("-", "not run") for name in APP_HOSTS for app in ("alpha", "beta") if (name, app) != (APP_HOSTS[0], "alpha")}),
    ("remove_beta", "bad_release", {(APP_HOSTS[2], "alpha"): ("none", "unchanged"), (APP_HOSTS[2], "beta"): ("remove", "removed")}),
])
def test_the_rollup_rows_are_the_hosts_real_releases(steps: dict[tuple[str, str, str], dict[str, Any]], step: str,
                                                     before_step: str, expected: dict[tuple[str, str], tuple[str, str]]) -> None:
    rows = rollup(step)
    assert {key: (row["switch"], row["result"]) for key, row in rows.items()} == expected
    for (name, app), row in rows.items():
        if row["result"] == "not run":
            assert (row["before"], row["after"], row["seconds"]) == ("-", "-", "-")
            continue
        assert row["before"] == release(steps[(before_step, name, app)]), (step, name, app)
        assert row["after"] == release(steps[(step, name, app)]), (step, name, app)
        assert float(row["seconds"]) > 0


def test_a_failed_rollout_states_its_cause_once_at_the_end() -> None:
    output = log("bad_release")
    # The canary's cause (its health answer and log) is stated once, after the roll-up table.
    assert output.count("failed its canary run") == 1, output[-5000:]
    assert output.count("Health answer:") == 1
    cause = output.index("failed its canary run")
    assert output.index("TASK [Show the rollout]") < output.index("TASK [State why the rollout stops]") < cause
    assert cause < output.index("TASK [Stop the rollout at a failed host]")
    assert re.search(r'"msg": "fastapi-app-fleet-app1: release \S+ of alpha failed its canary run', output)
    assert '503 {\\"status\\":\\"failing\\"}' in output or '503 {"status":"failing"}' in output
    # The role's own failure and the fleet's stop point to it instead of repeating it.
    assert "alpha failed in 'Reject the release' (the cause is reported at the end of the run)" in output
    assert "fastapi-app-fleet-app1: the rollout stops here (cause above)" in output


def test_removal_left_alpha_serving(steps: dict[tuple[str, str, str], dict[str, Any]], host: Any) -> None:
    app3 = APP_HOSTS[2]
    before, after = steps[("bad_release", app3, "alpha")], steps[("remove_beta", app3, "alpha")]
    assert after["main_pid"] == before["main_pid"] and after["unit"] == "active"
    assert steps[("remove_beta", app3, "beta")]["unit"] != "active"
    for name in APP_HOSTS[:2]:
        assert steps[("remove_beta", name, "beta")]["unit"] == "active"
    site = host.file("/etc/nginx/sites-available/fastapi-fleet.conf").content_string
    beta_upstream = site.split("upstream fleet_beta {")[1].split("}")[0]
    alpha_upstream = site.split("upstream fleet_alpha {")[1].split("}")[0]
    assert f"{app3}:8002" not in beta_upstream and f"{APP_HOSTS[0]}:8002" in beta_upstream
    assert f"{app3}:8001" in alpha_upstream
    assert " down" not in site


def test_beta_is_gone_from_app3(host: Any) -> None:
    app3 = host.get_host(f"ansible://{APP_HOSTS[2]}", ansible_inventory=host.backend.ansible_inventory)
    for path in ("/etc/systemd/system/beta.service", "/etc/systemd/system/beta.socket",
                 "/etc/systemd/system/beta-handover.service", "/etc/nginx/sites-enabled/beta.conf",
                 "/etc/nginx/sites-available/beta.conf", "/opt/beta", "/etc/beta", "/run/beta.sock"):
        assert not app3.file(path).exists, path
    assert not app3.user("beta").exists
    assert not app3.group("beta").exists
    # Data is kept by default (fastapi_app_keep_data).
    assert app3.file("/var/lib/beta").is_directory
    assert app3.run("curl -sS --fail http://127.0.0.1:8001/healthz").rc == 0
    assert app3.run("curl -sS http://127.0.0.1:8002/healthz").rc != 0
