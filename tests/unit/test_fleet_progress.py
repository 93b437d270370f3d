"""Unit tests for plugins/filter/fastapi_app_report.py: a failed deploy's cause, playbooks/fleet.yml's batch lines
and roll-up."""

from __future__ import annotations

import pytest
from modload import load

fl = load("fastapi_app_report", "plugins/filter/fastapi_app_report.py")

HOSTS = ["app1", "app2", "app3", "app4", "app5"]


@pytest.mark.parametrize(("serial", "expected"), [
    (1, [["app1"], ["app2"], ["app3"], ["app4"], ["app5"]]),
    ("2", [["app1", "app2"], ["app3", "app4"], ["app5"]]),
    ("40%", [["app1", "app2"], ["app3", "app4"], ["app5"]]),
    ("10%", [["app1"], ["app2"], ["app3"], ["app4"], ["app5"]]),   # 0.5 host: at least one
    ("100%", [HOSTS]),
    (0, [HOSTS]),
    ([1, "50%"], [["app1"], ["app2", "app3"], ["app4", "app5"]]),  # the last size repeats
    ([], [HOSTS]),
])
def test_batches_are_cut_as_ansible_playbook_cuts_them(serial: object, expected: list[list[str]]) -> None:
    assert fl.batches(HOSTS, serial) == expected


def test_each_batch_knows_its_number_and_whether_it_is_the_last() -> None:
    first = fl.fleet_batch(["app1", "app2"], HOSTS, 2)
    assert first == {"number": 1, "count": 3, "hosts": ["app1", "app2"], "last": False,
                     "line": "batch 1 of 3: hosts app1, app2"}
    # A host of the batch that failed early is no longer in ansible_play_batch: the batch is still found.
    assert fl.fleet_batch(["app4"], HOSTS, 2)["line"] == "batch 2 of 3: hosts app3, app4"
    last = fl.fleet_batch(["app5"], HOSTS, 2)
    assert (last["number"], last["last"]) == (3, True)
    assert fl.fleet_batch(["app1"], ["app1"], 1)["line"] == "batch 1 of 1: hosts app1"


def result(app: str, before: str, after: str, switch: str, seconds: float, outcome: str) -> dict[str, object]:
    return {"app": app, "release_before": before, "release_after": after, "switch": switch, "seconds": seconds, "result": outcome}


APPS = [{"name": "alpha", "port": 8001}, {"name": "beta", "port": 8002}]


def test_rows_follow_the_hosts_and_name_the_apps_never_run() -> None:
    hostvars = {
        "app1": {"fastapi_app_fleet_apps": APPS,
                 "fastapi_app_results": [result("alpha", "1-a", "1-a", "none", 41.27, "failed")]},
        "app2": {"fastapi_app_fleet_apps": APPS},
        "app3": {"fastapi_app_fleet_apps": APPS,
                 "fastapi_app_results": [result("alpha", "", "1-a", "start", 60, "changed"),
                                         result("beta", "1-b", "", "remove", 3.04, "removed")]},
    }
    rows = fl.fleet_rows(hostvars, ["app1", "app2", "app3"])
    assert [(r["host"], r["app"], r["before"], r["after"], r["switch"], r["seconds"], r["result"]) for r in rows] == [
        ("app1", "alpha", "1-a", "1-a", "none", "41.3", "failed"),
        ("app1", "beta", "-", "-", "-", "-", "not run"),
        ("app2", "alpha", "-", "-", "-", "-", "not run"),
        ("app2", "beta", "-", "-", "-", "-", "not run"),
        ("app3", "alpha", "(none)", "1-a", "start", "60.0", "changed"),
        ("app3", "beta", "1-b", "(none)", "remove", "3.0", "removed"),
    ]


def test_a_second_run_of_an_app_on_a_host_replaces_its_row() -> None:
    hostvars = {"app1": {"fastapi_app_fleet_apps": APPS[:1],
                         "fastapi_app_results": [result("alpha", "1", "2", "handover", 1, "changed"),
                                                 result("alpha", "2", "2", "none", 1, "unchanged")]}}
    assert [r["result"] for r in fl.fleet_rows(hostvars, ["app1"])] == ["unchanged"]


def test_the_table_is_aligned_under_its_header() -> None:
    hostvars = {"app1": {"fastapi_app_fleet_apps": APPS[:1],
                         "fastapi_app_results": [result("alpha", "1.0-abc", "1.1-def", "handover", 12.345, "changed")]},
                "host-two": {"fastapi_app_fleet_apps": APPS[:1]}}
    assert fl.fleet_rollup(hostvars, ["app1", "host-two"]) == [
        "host      app    release before -> after  switch    seconds  result",
        "app1      alpha  1.0-abc -> 1.1-def       handover  12.3     changed",
        "host-two  alpha  - -> -                   -         -        not run",
    ]


def test_a_failure_names_its_cause_once_and_the_app() -> None:
    composed = "release 1-a of alpha failed its canary run ('Ask the canary its health checks'); ..."
    assert fl.failure_cause(composed, "alpha", "Reject the release", "alpha rejects release 1-a") == composed
    assert fl.failure_cause("", "alpha", "Build the wheels", "pip said no") == "alpha failed in 'Build the wheels': pip said no"
    assert fl.failure_cause("", "alpha", "Build the wheels", None) == "alpha failed in 'Build the wheels': see the failed task above"
    assert fl.failure_cause("", "orders", "") == "orders stopped with its batch: another host failed (see its error above)"
