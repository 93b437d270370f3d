"""Old releases are pruned down to fastapi_app_keep_releases, never the current release or the one
`previous` points at, and a half-built one goes; a run that builds nothing, with no more releases
than kept, removes none."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from stack import run_playbook


def code_variant(root: Path, n: int) -> Path:
    """The example app with one more line of code: a new release with the same dependencies."""
    source = root / f"hello_app_v{n}"
    example = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "examples" / "hello_app"
    shutil.copytree(example, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".pytest_cache"))
    with (source / "src" / "hello_app" / "__init__.py").open("a") as init:
        init.write(f"# release pruning test, variant {n}\n")
    return source


def deploy(**extra: Any) -> str:
    """One deploy on every host."""
    result = run_playbook("deploy", "-e", json.dumps(extra))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def pruning(hosts: dict[str, Any], app: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """A half-built release left behind, two code-only releases kept to 2, the second deployed
    again, then the converged source: each deploy runs once on every host. Per host, the links
    and the releases on disk after each step."""
    base = f"/opt/{app['fastapi_app_name']}"

    def link(each: Any, name: str) -> str:
        return os.path.basename(each.check_output(f"readlink {base}/{name}"))

    def releases(each: Any) -> set[str]:
        return set(each.check_output(f"ls {base}/releases").split())

    seen: dict[str, dict[str, Any]] = {name: {"original": link(each, "current"), "deployed": []} for name, each in hosts.items()}
    # What a run killed while it built leaves: a release directory without release.json.
    for each in hosts.values():
        each.check_output(f"mkdir -p {base}/releases/0.9.0-killed/venv")
    root = tmp_path_factory.mktemp("releases")
    sources = [code_variant(root, n) for n in (1, 2)]
    for source in sources:
        deploy(fastapi_app_source_path=str(source), fastapi_app_keep_releases=2)
        for name, each in hosts.items():
            seen[name]["deployed"].append(link(each, "current"))
    for name, each in hosts.items():
        seen[name].update(previous=link(each, "previous"), pruned=releases(each))

    # As many releases as kept and nothing built: nothing is removed, the rollback target stays.
    deploy(fastapi_app_source_path=str(sources[1]), fastapi_app_keep_releases=2)
    for name, each in hosts.items():
        seen[name].update(kept=releases(each), previous_again=link(each, "previous"))

    # Back to the converged source for the tests that follow: the same release id, built again.
    deploy()
    for name, each in hosts.items():
        seen[name]["back"] = link(each, "current")
    return seen


def test_old_releases_are_pruned_to_the_kept_number(host: Any, pruning: dict[str, dict[str, Any]]) -> None:
    seen = pruning[host.backend.get_hostname()]
    deployed = seen["deployed"]
    assert len(set(deployed) | {seen["original"]}) == 3, seen
    assert seen["previous"] == deployed[0], seen
    assert seen["pruned"] == {deployed[0], deployed[1]}, seen


def test_a_run_that_builds_nothing_removes_no_release(host: Any, pruning: dict[str, dict[str, Any]]) -> None:
    seen = pruning[host.backend.get_hostname()]
    assert seen["kept"] == set(seen["deployed"]), seen
    assert seen["previous_again"] == seen["deployed"][0], seen


def test_the_converged_source_serves_again(host: Any, pruning: dict[str, dict[str, Any]]) -> None:
    seen = pruning[host.backend.get_hostname()]
    assert seen["back"] == seen["original"], seen
