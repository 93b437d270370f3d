"""Unit tests for plugins/filter/fastapi_app_status.py (playbooks/status.yml's report)."""

from __future__ import annotations

from modload import load

st = load("fastapi_app_status", "plugins/filter/fastapi_app_status.py")

WEB = ["shop.socket", "shop.service"]


def unit(active: str) -> dict[str, str]:
    return {"ActiveState": active, "SubState": "x", "LoadState": "loaded"}


def test_ages_read_in_their_two_largest_units() -> None:
    assert [st.age(s) for s in (None, 0, 40, 420, 7500, 3 * 86400 + 4 * 3600 + 59)] == [
        "unknown", "0s", "40s", "7m", "2h 5m", "3d 4h"]


def test_a_serving_app_names_release_age_previous_health_and_deploys_newest_first() -> None:
    state = {"current": "1.1-b", "previous": "1.0-a", "current_since": "2026-11-26T10:00:00Z", "current_age_s": 3700,
             "unit_states": {"shop.socket": unit("active"), "shop.service": unit("active"),
                             "shop-worker@1.service": unit("failed"), "shop-report.timer": unit("active")},
             "deploys": [{"time": "t1", "kind": "deploy", "release_old": "", "release_new": "1.0-a", "action": "start",
                          "result": "ok", "duration_s": 50.0, "user": "alice", "controller": "ctl"},
                         {"time": "t2", "kind": "deploy", "release_old": "1.0-a", "release_new": "1.1-b", "action": "handover",
                          "result": "failed", "duration_s": 9.1, "user": "bob", "controller": "ctl", "failed_task": "Canary"}]}
    assert st.status_lines(state, "shop", WEB) == [
        "shop: serving 1.1-b since 2026-11-26T10:00:00Z (1h 1m ago)",
        "previous: 1.0-a",
        "web service: ok (2/2 active)",
        "processes: DOWN: shop-worker@1.service failed (0/1 active)",
        "timers: ok (1/1 active)",
        "last deploys (2):",
        "  t2 deploy 1.0-a -> 1.1-b switch handover failed 9.1 s by bob@ctl (failed in 'Canary')",
        "  t1 deploy (none) -> 1.0-a switch start ok 50.0 s by alice@ctl",
    ]


def test_an_app_without_release_or_record_says_so() -> None:
    assert st.status_lines({"current": "", "deploys": []}, "shop", WEB) == [
        "shop: no release serves (nothing deployed, or removed)", "last deploys: none recorded"]


def test_a_down_web_service_and_no_jobs() -> None:
    state = {"current": "1.0-a", "previous": "", "current_since": "s", "current_age_s": 5,
             "unit_states": {"shop.socket": unit("active"), "shop.service": unit("inactive")}, "deploys": []}
    assert st.status_lines(state, "shop", WEB)[1:5] == [
        "previous: (none)", "web service: DOWN: shop.service inactive (1/2 active)", "processes: none", "timers: none"]


def test_every_kept_release_is_listed_newest_first_with_built_served_and_marks() -> None:
    state = {"current": "1.2-c", "previous": "1.1-b", "current_since": "t5", "current_age_s": 60, "unit_states": {},
             "releases": ["1.0-a", "1.1-b", "1.2-c", "1.3-d"], "partial_releases": ["1.4-e"],
             "release_info": {"1.0-a": {"built": "b1", "canary_failed": False}, "1.1-b": {"built": "b2", "canary_failed": False},
                              "1.2-c": {"built": "b3", "canary_failed": False}, "1.3-d": {"built": "b4", "canary_failed": True}},
             "served": {"1.0-a": [["t1", "t2"], ["t3", "t4"]], "1.1-b": [["t2", "t3"], ["t4", "t5"]], "1.2-c": [["t5", ""]]},
             "deploys": []}
    lines = st.status_lines(state, "shop", WEB)
    start = lines.index("releases kept (4), newest first:")
    assert lines[start:start + 7] == [
        "releases kept (4), newest first:",
        "  1.3-d (canary failed): built b4, never served (per the record)",
        "  1.2-c (current): built b3, served t5 - now",
        "  1.1-b (previous): built b2, served t2 - t3, t4 - t5",
        "  1.0-a: built b1, served t1 - t2, t3 - t4",
        "unfinished builds (no release.json, removed by the next deploy): 1.4-e",
        "roll back to one: playbooks/rollback.yml -e fastapi_app_rollback_to=<release>",
    ]
    assert lines[-1] == "last deploys: none recorded"


def test_only_the_last_periods_of_a_release_are_shown() -> None:
    state = {"current": "a", "releases": ["a"], "release_info": {"a": {"built": "b", "canary_failed": False}},
             "served": {"a": [["t1", "t2"], ["t3", "t4"], ["t5", "t6"], ["t7", "?"], ["t8", ""]]}}
    assert st.release_lines(state)[1] == "  a (current): built b, served t5 - t6, t7 - ?, t8 - now (and 2 earlier)"


def test_a_status_without_the_release_detail_lists_no_releases() -> None:
    state = {"current": "a", "previous": "", "current_since": "s", "current_age_s": 5, "unit_states": {}, "deploys": []}
    assert not [line for line in st.status_lines(state, "shop", WEB) if line.startswith("releases")]
