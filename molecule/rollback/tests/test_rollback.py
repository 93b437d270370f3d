"""Bad releases never replace a good one, under load; rollback.yml switches back losslessly."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

STEPS = ["steady", "good", "broken_import", "broken_health", "rollback"]
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
CANARY_FAILURE = re.compile(r"(\S+): release (\S+) of hello failed its canary run")


@pytest.fixture(scope="module")
def report(host: Any) -> dict[str, Any]:
    return json.loads(host.file("/var/tmp/load.json").content_string)


@pytest.fixture(scope="module")
def steps(host: Any) -> dict[str, dict[str, Any]]:
    recorded = [json.loads(line) for line in host.file("/var/tmp/steps.jsonl").content_string.splitlines()]
    assert [r["step"] for r in recorded] == STEPS
    return {r["step"]: r for r in recorded}


def failed_deploy(step: str) -> tuple[str, str, str]:
    """(host, release, whole output) of the deploy that was expected to fail."""
    output = (EPHEMERAL / f"deploy_{step}.log").read_text()
    match = CANARY_FAILURE.search(output)
    assert match, output[-3000:]
    return match.group(1), match.group(2), output


def test_print_figures(report: dict[str, Any]) -> None:
    total = report["total"]
    print(f"\nrollback: {total['requests']} requests, {total['failed']} failed, "
          f"{total['resent_stale_keepalive']} resent on a closed keep-alive connection")
    for name, phase in report["phases"].items():
        print(f"  {name:<14} {phase['requests']:>7} requests {phase['failed']} failed p99 {phase['p99_ms']} ms")


def test_no_failed_request_through_bad_deploys_and_rollback(report: dict[str, Any]) -> None:
    assert report["total"]["requests"] >= 5_000
    assert report["total"]["failed"] == 0, report["failures"]
    for name in STEPS:
        assert report["phases"][name]["failed"] == 0, name


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


def test_rollback_returns_to_the_release_before(steps: dict[str, dict[str, Any]]) -> None:
    assert steps["good"]["version"]["release"] != steps["steady"]["version"]["release"]
    assert steps["rollback"]["version"]["release"] == steps["steady"]["version"]["release"]
    assert steps["rollback"]["main_pid"] != steps["good"]["main_pid"]


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
    record = json.loads(host.file(f"/opt/hello/releases/{release}/release.json").content_string)
    assert record["lock"]["kind"] == kind and record["installer"] == "uv"
    pins = locked()
    found = installed(host, release)
    assert len(pins) >= 10
    assert {name: found.get(name) for name in pins} == pins
    assert {"gunicorn", "uvicorn-worker", "hello-app"} <= set(found)


def test_an_app_without_a_lock_still_installs_with_pip(host: Any, steps) -> None:
    release = steps["steady"]["version"]["release"]
    record = json.loads(host.file(f"/opt/hello/releases/{release}/release.json").content_string)
    assert not record["lock"] and record["installer"] == "pip"
