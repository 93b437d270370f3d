"""Old releases are pruned down to fastapi_app_keep_releases, never the current release or the one
`previous` points at; a run that builds nothing, with no more releases than kept, lists none."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from stack import role_task_outputs, run_playbook


def code_variant(root: Path, n: int) -> Path:
    """The example app with one more line of code: a new release with the same dependencies."""
    source = root / f"hello_app_v{n}"
    example = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "examples" / "hello_app"
    shutil.copytree(example, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".pytest_cache"))
    with (source / "src" / "hello_app" / "__init__.py").open("a") as init:
        init.write(f"# release pruning test, variant {n}\n")
    return source


def deploy(host: Any, **extra: Any) -> str:
    result = run_playbook("deploy", "--limit", host.backend.get_hostname(), "-e", json.dumps(extra))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_old_releases_are_pruned_to_the_kept_number(host: Any, app: dict[str, Any], tmp_path: Path) -> None:
    base = f"/opt/{app['fastapi_app_name']}"

    def link(name: str) -> str:
        return os.path.basename(host.check_output(f"readlink {base}/{name}"))

    original = link("current")
    sources = [code_variant(tmp_path, n) for n in (1, 2)]
    deployed = []
    for source in sources:
        deploy(host, fastapi_app_source_path=str(source), fastapi_app_keep_releases=2)
        deployed.append(link("current"))

    assert len(set(deployed) | {original}) == 3
    assert link("previous") == deployed[0]
    assert set(host.check_output(f"ls {base}/releases").split()) == {deployed[0], deployed[1]}

    # As many releases as kept and nothing built: the pruning tasks do not even run.
    output = deploy(host, fastapi_app_source_path=str(sources[1]), fastapi_app_keep_releases=2)
    outcome = role_task_outputs(output)
    assert "ok:" not in outcome.get("List the releases on disk", ""), output[-3000:]
    assert set(host.check_output(f"ls {base}/releases").split()) == {deployed[0], deployed[1]}

    # Back to the converged source for the tests that follow: the same release id, built again.
    deploy(host)
    assert link("current") == original
