"""Unit tests for plugins/modules/fastapi_app_host_state.py (the no-change path's one read)."""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import time
from pathlib import Path
from typing import Any

import pytest

from modload import load

hs = load("fastapi_app_host_state", "plugins/modules/fastapi_app_host_state.py")

ME = pwd.getpwuid(os.getuid())
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


class FakeDpkg:
    """dpkg-query's answer for a set of installed packages; records the command it was given."""

    def __init__(self, installed: set[str]) -> None:
        self.installed = installed
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        self.calls.append(argv)
        names = [a for a in argv[1:] if not a.startswith("--")]
        out = "".join(f"installed {n}\n" for n in names if n in self.installed)
        out += "".join(f"not-installed {n}\n" for n in names if n not in self.installed and n != "unknown")
        return (0 if all(n in self.installed for n in names) else 1), out, ""


def release(base: Path, name: str, mtime: float, record: dict[str, Any] | None = None) -> None:
    path = base / "releases" / name
    path.mkdir(parents=True)
    if record is not None:
        (path / "release.json").write_text(json.dumps(record))
    os.utime(path, (mtime, mtime))


def params(base: Path, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"packages": [], "group": MY_GROUP, "user": ME.pw_name, "directories": [], "base_dir": str(base),
                              "unit_prefix": "", "unit_dir": str(base / "units"), "record": None, "record_last": 0,
                              "service_units": [], "files": [], "paths": []}
    values.update(overrides)
    return values


def test_a_new_host_has_nothing(tmp_path: Path) -> None:
    before = time.time()
    state = hs.host_state(params(tmp_path / "opt" / "hello", group="no-such-group-x", user="no-such-user-x",
                                 directories=[str(tmp_path / "missing")]), FakeDpkg(set()))
    # The host's clock, for the deploy's look at what happened since (killed process instances).
    assert before <= state.pop("read_at") <= time.time()
    assert state == {
        "packages_missing": [], "group": None, "user": None, "directories": {str(tmp_path / "missing"): None},
        "current": "", "previous": "", "releases": [], "partial_releases": [], "applied": {}, "current_record": {}, "units": [], "instances": [],
        "current_since": "", "current_age_s": None, "deploys": [], "unit_states": {}, "files": {},
        "paths": {},
    }


def test_missing_packages_are_listed_in_the_order_given() -> None:
    dpkg = FakeDpkg({"nginx", "tar"})
    assert hs.installed_packages(dpkg, ["nginx", "python3-venv", "tar", "unknown"]) == {"nginx", "tar"}
    assert dpkg.calls[0][:2] == ["dpkg-query", "--show"]
    state = hs.host_state(params(Path("/nonexistent"), packages=["nginx", "python3-venv", "tar", "unknown"]), dpkg)
    assert state["packages_missing"] == ["python3-venv", "unknown"]


def test_no_packages_means_no_dpkg_call() -> None:
    dpkg = FakeDpkg(set())
    assert hs.installed_packages(dpkg, []) == set()
    assert dpkg.calls == []


def test_existing_account_is_described_like_the_user_task_sets_it() -> None:
    assert hs.group_entry(MY_GROUP) == {"gid": os.getgid()}
    assert hs.user_entry(ME.pw_name) == {"uid": ME.pw_uid, "group": MY_GROUP, "comment": ME.pw_gecos,
                                         "home": ME.pw_dir, "shell": ME.pw_shell}


def test_directory_owner_group_and_mode(tmp_path: Path) -> None:
    target = tmp_path / "cache"
    target.mkdir()
    target.chmod(0o700)
    afile = tmp_path / "file"
    afile.write_text("")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert hs.directory_entry(str(target)) == {"owner": ME.pw_name, "group": MY_GROUP, "mode": "0700"}
    # Neither a file nor a link to a directory is the directory the role wants there.
    assert hs.directory_entry(str(afile)) is None
    assert hs.directory_entry(str(link)) is None


def test_links_releases_and_records(tmp_path: Path) -> None:
    base = tmp_path / "opt" / "hello"
    release(base, "1.0.0-new", 3000, {"release": "1.0.0-new", "venv_key": "abc"})
    release(base, "1.0.0-old", 1000, {"release": "1.0.0-old"})
    release(base, "1.0.0-mid", 2000, {"release": "1.0.0-mid"})
    release(base, "1.0.0-partial", 4000)  # a build that did not finish: no release.json
    (base / "current").symlink_to("releases/1.0.0-new")
    (base / "previous").symlink_to("releases/1.0.0-mid")
    (base / "applied.json").write_text('{"release": "1.0.0-new", "env": "e"}')
    state = hs.host_state(params(base), FakeDpkg(set()))
    assert state["current"] == "1.0.0-new"
    assert state["previous"] == "1.0.0-mid"
    assert state["releases"] == ["1.0.0-old", "1.0.0-mid", "1.0.0-new"]
    assert state["partial_releases"] == ["1.0.0-partial"]
    assert state["applied"] == {"release": "1.0.0-new", "env": "e"}
    assert state["current_record"] == {"release": "1.0.0-new", "venv_key": "abc"}


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]"])
def test_an_unreadable_record_counts_as_none(tmp_path: Path, content: str) -> None:
    (tmp_path / "applied.json").write_text(content)
    assert hs.read_json(tmp_path / "applied.json") == {}


def test_a_dangling_current_link_has_no_record(tmp_path: Path) -> None:
    (tmp_path / "current").symlink_to("releases/gone")
    state = hs.host_state(params(tmp_path), FakeDpkg(set()))
    assert state["current"] == "gone"
    assert state["current_record"] == {}


def test_units_are_the_apps_own_process_and_timer_files_with_their_enabled_instances(tmp_path: Path) -> None:
    units = tmp_path / "units"
    (units / "multi-user.target.wants").mkdir(parents=True)
    marker = "# Ansible managed\n# fastapi_app: shop\n[Unit]\n"
    for name in ["shop-worker@.service", "shop-report.service", "shop-report.timer"]:
        (units / name).write_text(marker)
    # Another app whose name starts with the same prefix, and the web units, which carry no marker.
    (units / "shop-admin-worker@.service").write_text("# Ansible managed\n# fastapi_app: shop-admin\n")
    (units / "shop-handover.service").write_text("[Unit]\n")
    for name in ["shop-worker@1.service", "shop-worker@2.service", "shop-admin-worker@1.service"]:
        (units / "multi-user.target.wants" / name).symlink_to(units / (name.split("@", maxsplit=1)[0] + "@.service"))
    state = hs.host_state(params(tmp_path / "opt", unit_prefix="shop-", unit_dir=str(units)), FakeDpkg(set()))
    assert state["units"] == ["shop-report.service", "shop-report.timer", "shop-worker@.service"]
    assert state["instances"] == ["shop-worker@1.service", "shop-worker@2.service"]


def test_no_unit_prefix_lists_no_units(tmp_path: Path) -> None:
    state = hs.host_state(params(tmp_path), FakeDpkg(set()))
    assert state["units"] == [] and state["instances"] == []


class FakeSystemctl(FakeDpkg):
    """dpkg-query for no package, and `systemctl show` for units in the given ActiveStates."""

    def __init__(self, active: dict[str, str]) -> None:
        super().__init__(set())
        self.active = active

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        if argv[0] != "systemctl":
            return super().__call__(argv)
        self.calls.append(argv)
        names = argv[argv.index("--") + 1:]
        blocks = [f"Id={n}\nLoadState={'loaded' if n in self.active else 'not-found'}\n"
                  f"ActiveState={self.active.get(n, 'inactive')}\nSubState=x\n"
                  f"UnitFileState={'enabled' if n in self.active else ''}" for n in names]
        return 0, "\n\n".join(blocks) + "\n", ""


def test_unit_states_cover_the_web_units_instances_and_timers_in_one_call(tmp_path: Path) -> None:
    units = tmp_path / "units"
    (units / "multi-user.target.wants").mkdir(parents=True)
    for name in ["shop-worker@.service", "shop-report.service", "shop-report.timer"]:
        (units / name).write_text("# fastapi_app: shop\n")
    (units / "multi-user.target.wants" / "shop-worker@1.service").symlink_to(units / "shop-worker@.service")
    systemctl = FakeSystemctl({"shop.socket": "active", "shop.service": "active", "shop-worker@1.service": "failed"})
    state = hs.host_state(params(tmp_path / "opt", unit_prefix="shop-", unit_dir=str(units),
                                 service_units=["shop.socket", "shop.service"]), systemctl)
    assert {unit: s["ActiveState"] for unit, s in state["unit_states"].items()} == {
        "shop.socket": "active", "shop.service": "active", "shop-worker@1.service": "failed", "shop-report.timer": "inactive"}
    assert state["unit_states"]["shop-report.timer"]["LoadState"] == "not-found"
    assert state["unit_states"]["shop.socket"]["UnitFileState"] == "enabled"
    assert len([c for c in systemctl.calls if c[0] == "systemctl"]) == 1


def test_no_service_units_reads_no_unit_state(tmp_path: Path) -> None:
    systemctl = FakeSystemctl({})
    assert hs.host_state(params(tmp_path), systemctl)["unit_states"] == {}
    assert not [c for c in systemctl.calls if c[0] == "systemctl"]


def test_last_deploys_skip_torn_and_foreign_lines(tmp_path: Path) -> None:
    path = tmp_path / "hello.deploys.jsonl"
    lines = [json.dumps({"n": n}) for n in range(5)] + ['{"n": 5', "[1]", json.dumps({"n": 6})]
    path.write_text("\n".join(lines) + "\n")
    state = hs.host_state(params(tmp_path, record=str(path), record_last=3), FakeDpkg(set()))
    assert state["deploys"] == [{"n": 3}, {"n": 4}, {"n": 6}]
    assert hs.host_state(params(tmp_path, record=str(tmp_path / "missing"), record_last=3), FakeDpkg(set()))["deploys"] == []
    assert hs.host_state(params(tmp_path, record=str(path)), FakeDpkg(set()))["deploys"] == []


def test_current_since_is_when_the_link_was_replaced(tmp_path: Path) -> None:
    release(tmp_path, "1.0-a", 1000.0, {})
    (tmp_path / "current").symlink_to("releases/1.0-a")
    os.utime(tmp_path / "current", (1_800_000_000, 1_800_000_000), follow_symlinks=False)
    state = hs.host_state(params(tmp_path), FakeDpkg(set()))
    assert state["current_since"] == "2027-01-15T08:00:00Z"
    assert state["current_age_s"] is not None and state["current_age_s"] >= 0
    empty = hs.host_state(params(tmp_path / "none"), FakeDpkg(set()))
    assert (empty["current_since"], empty["current_age_s"]) == ("", None)


def test_rendered_files_are_described_by_content_owner_group_and_mode(tmp_path: Path) -> None:
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text("workers = 2\n")
    conf.chmod(0o640)
    (tmp_path / "dir").mkdir()
    state = hs.host_state(params(tmp_path, files=[str(conf), str(tmp_path / "missing"), str(tmp_path / "dir")]), FakeDpkg(set()))
    assert state["files"] == {str(conf): {"sha256": hashlib.sha256(b"workers = 2\n").hexdigest(), "owner": ME.pw_name,
                                          "group": grp.getgrgid(os.getgid()).gr_name, "mode": "0640"}}


def test_paths_report_their_kind_and_a_links_target(tmp_path: Path) -> None:
    (tmp_path / "site.conf").write_text("server {}\n")
    (tmp_path / "enabled.conf").symlink_to(tmp_path / "site.conf")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "dir").mkdir()
    wanted = [str(tmp_path / name) for name in ("site.conf", "enabled.conf", "dangling", "dir", "missing")]
    state = hs.host_state(params(tmp_path, paths=wanted), FakeDpkg(set()))
    assert state["paths"] == {
        str(tmp_path / "site.conf"): {"type": "file", "target": ""},
        str(tmp_path / "enabled.conf"): {"type": "link", "target": str(tmp_path / "site.conf")},
        str(tmp_path / "dangling"): {"type": "link", "target": str(tmp_path / "nowhere")},
        str(tmp_path / "dir"): {"type": "directory", "target": ""},
    }


# --- releases_detail: what playbooks/status.yml lists of every kept release ---


def entry(time: str, old: str, new: str, kind: str = "deploy", result: str = "ok") -> dict[str, Any]:
    return {"time": time, "kind": kind, "release_old": old, "release_new": new, "result": result}


def test_each_release_serves_from_its_switch_to_the_next_one() -> None:
    entries = [entry("t1", "", "a"), entry("t2", "a", "a"), entry("t3", "a", "b"), entry("t4", "b", "c", result="failed"),
               entry("t5", "b", "a", kind="rollback"), entry("t6", "a", "b")]
    assert hs.served_periods(entries, "b", "t6") == {"a": [["t1", "t3"], ["t5", "t6"]], "b": [["t3", "t5"], ["t6", ""]]}


def test_a_removal_ends_the_period_and_a_later_deploy_starts_again() -> None:
    entries = [entry("t1", "", "a"), entry("t2", "a", "", kind="remove"), entry("t3", "", "a")]
    assert hs.served_periods(entries, "a", "t3") == {"a": [["t1", "t2"], ["t3", ""]]}


def test_the_link_tells_what_serves_when_the_record_does_not() -> None:
    # No record at all: the serving release since its link was replaced.
    assert hs.served_periods([], "a", "t9") == {"a": [["t9", ""]]}
    # The record's last switch went to b, but a (a run without a line) serves since t9: b ended then.
    assert hs.served_periods([entry("t1", "", "b")], "a", "t9") == {"b": [["t1", "t9"]], "a": [["t9", ""]]}
    # Nothing serves any more and the record does not say when it stopped.
    assert hs.served_periods([entry("t1", "", "b")], "", "") == {"b": [["t1", "?"]]}


def test_rotated_records_are_read_oldest_first(tmp_path: Path) -> None:
    import gzip
    path = tmp_path / "hello.deploys.jsonl"
    with gzip.open(f"{path}.3.gz", "wt") as old:
        old.write(json.dumps(entry("t1", "", "a")) + "\n")
    with gzip.open(f"{path}.2.gz", "wt") as mid:
        mid.write(json.dumps(entry("t2", "a", "b")) + "\n{torn\n")
    Path(f"{path}.1").write_text(json.dumps(entry("t3", "b", "c")) + "\n")
    Path(f"{path}.bak").write_text(json.dumps(entry("t0", "", "x")) + "\n")  # not logrotate's: left out
    Path(f"{path}.10.gz").write_bytes(b"not gzip")  # unreadable: skipped
    path.write_text(json.dumps(entry("t4", "c", "a", kind="rollback")) + "\n")
    assert hs.record_files(str(path)) == [f"{path}.10.gz", f"{path}.3.gz", f"{path}.2.gz", f"{path}.1", str(path)]
    assert [e["time"] for e in hs.all_records(str(path))] == ["t1", "t2", "t3", "t4"]
    assert hs.all_records(str(tmp_path / "missing")) == [] and hs.all_records(None) == []


def test_releases_detail_reports_built_canary_and_served(tmp_path: Path) -> None:
    base = tmp_path / "opt" / "hello"
    release(base, "1.0-a", 1000, {"release": "1.0-a"})
    release(base, "1.0-b", 2000, {"release": "1.0-b"})
    os.utime(base / "releases" / "1.0-a" / "release.json", (1_800_000_000, 1_800_000_000))
    (base / "releases" / "1.0-b" / "CANARY_FAILED").write_text("boom\n")
    (base / "current").symlink_to("releases/1.0-a")
    os.utime(base / "current", (1_800_000_600, 1_800_000_600), follow_symlinks=False)
    record = tmp_path / "hello.deploys.jsonl"
    record.write_text(json.dumps(entry("2027-01-15T08:10:00Z", "", "1.0-a")) + "\n")
    state = hs.host_state(params(base, record=str(record), releases_detail=True), FakeDpkg(set()))
    assert state["release_info"]["1.0-a"] == {"built": "2027-01-15T08:00:00Z", "canary_failed": False}
    assert state["release_info"]["1.0-b"]["canary_failed"] is True
    assert state["served"] == {"1.0-a": [["2027-01-15T08:10:00Z", ""]]}
    # Without the option a deploy's read stays as it was.
    assert "release_info" not in hs.host_state(params(base, record=str(record)), FakeDpkg(set()))
