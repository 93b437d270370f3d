"""Filters that decide how a release is identified and built (tasks/release.yml, tasks/build.yml).

A release id hashes everything that decides what is deployed; the virtualenv key hashes what
decides the virtualenv besides the app, so a release with an equal key starts from a copy of the
serving release's virtualenv. Both come from one list of dependency inputs here, so they cannot
disagree about what decides a virtualenv.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def _digest(value: Any) -> str:
    # json.dumps as Ansible's to_json writes it: ids made before this filter existed stay the same.
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()


def release_keys(deps: dict[str, Any], source_kind: str, source_digest: str, lock: list[str], app_dependencies: Any) -> dict[str, str]:
    """{'id_hash': 12 hex digits for the release id, 'venv_key': 16 hex digits or ''}.

    deps: python, runtime_packages, requirements, constraints, pip_extra_args, worker (the sha256
    of the role's worker module). lock: [lock sha256, project dir, installer, uv version] for a
    locked release, else []. app_dependencies: the app's static requirements, None when unknown
    before the build (then there is no virtualenv to copy: key ''). A locked release's key covers
    what the host adds to the wheels (interpreter, worker, installer); the wheel build completes
    it with the wheels' environment key (tasks/build.yml), not the lock's hash, which changes with
    the app's own version.
    """
    inputs = [source_kind, source_digest, deps["worker"], deps["runtime_packages"], deps["requirements"],
              deps["constraints"], deps["pip_extra_args"], deps["python"], lock]
    venv = [deps["python"], deps["runtime_packages"], deps["requirements"], deps["constraints"],
            deps["pip_extra_args"], app_dependencies, deps["worker"]]
    if lock:
        venv_key = _digest(["locked", deps["python"], deps["worker"], *lock[1:]])[:16]
    else:
        venv_key = _digest(venv)[:16] if app_dependencies is not None else ""
    return {"id_hash": _digest(inputs)[:12], "venv_key": venv_key}


def venv_argv(venv: str, python: str, uv: str, worker: str) -> list[str]:
    """Create a virtualenv (with uv when given its path, else with the interpreter's venv module)
    and install the role's gunicorn worker module, read from standard input, at `worker`."""
    create = [uv, "venv", "--quiet", "--python", python, venv] if uv else [python, "-m", "venv", venv]
    return ["sh", "-c", 'worker=$1; shift; "$@" && install -m 0644 /dev/stdin "$worker"', "create-venv", worker, *create]


def locked_install_argv(release_dir: str, installer: str, uv: str, uv_cache: str, copied: bool = False) -> list[str]:
    """Install exactly the wheels of the release's install.txt, each checked against its hash, from
    the release's own files (nothing is resolved or downloaded), then keep manifest.json and
    install.txt in the release and delete the wheels. Into a copy of the serving virtualenv (same
    environment key) only the local projects go again (install-local.txt), over the copy's own
    install of them. uv compiles the bytecode, as pip does by default: the sandbox's read-only
    system would otherwise make every worker compile every module it imports at each start."""
    wheels = f"{release_dir}/wheelhouse"
    python = f"{release_dir}/venv/bin/python"
    if installer == "uv":
        common = ["--quiet", "--compile-bytecode", "--python", python, "--offline", "--cache-dir", uv_cache]
        head = [uv, "pip", "install", *common, "--reinstall", "--no-deps", "--requirement"] if copied else [uv, "pip", "sync", *common]
    else:
        head = [f"{release_dir}/venv/bin/pip", "install", "--no-input", "--disable-pip-version-check", "--no-deps",
                *(["--force-reinstall"] if copied else []), "--requirement"]
    listed = f"{wheels}/install-local.txt" if copied else f"{wheels}/install.txt"
    keep = 'wheels=$1; shift; "$@" && cp "$wheels/manifest.json" "$wheels/install.txt" "$wheels/.." && rm -rf "$wheels"'
    return ["sh", "-c", keep, "install-locked", wheels, *head, listed, "--no-index", "--find-links", f"{wheels}/wheels", "--require-hashes"]


def install_target(source_kind: str, release_dir: str, has_project: bool, artifact: str, pip_spec: str) -> list[str]:
    """What pip installs as the app: the unpacked project, the uploaded package file, or the pip spec."""
    if has_project:
        return [f"{release_dir}/src"]
    if source_kind == "package":
        return [f"{release_dir}/{artifact}"]
    return [pip_spec] if source_kind == "pip" else []


def pip_install_argv(release_dir: str, app: list[str], runtime: list[str], requirements: list[str], *,
                     cache: str, constrained: bool, copied: bool, extra_args: str) -> list[str]:
    """pip install of the serving stack (runtime), the app and its extra requirements; into a copied
    virtualenv only the app goes again, over the copy's own install of it."""
    # An sdist is built in an isolated PEP 517 environment with a current build backend, also an
    # old one with only a setup.py (else pip runs `setup.py bdist_wheel` with what the venv has).
    argv = [f"{release_dir}/venv/bin/pip", "install", "--no-input", "--disable-pip-version-check", "--use-pep517", "--cache-dir", cache]
    if constrained:
        argv += ["--constraint", f"{release_dir}/constraints.txt"]
    if copied:
        argv += ["--no-deps", "--force-reinstall"]
    return [*argv, *extra_args.split(), *(app if copied else [*runtime, *app, *requirements])]


def wheel_build_argv(lock: dict[str, str], work_dir: str, in_place: bool, *, project_dir: str, runtime: list[str],
                     ranges: dict[str, str], python: str, uv_dir: str, uv_version: str) -> list[str]:
    """files/wheelhouse.py, read from standard input by the uv tool environment's Python: the lock
    (kind and path from the source lookup) of the source unpacked in work_dir/src into wheels in
    work_dir/wheelhouse (a release built in place) or work_dir/out plus a bundle for the other hosts."""
    argv = [f"{uv_dir}/bin/python", "-", "--kind", lock["kind"], "--src", f"{work_dir}/src", "--lock", lock["path"],
            "--project-dir", project_dir]
    argv += [f"--runtime={requirement}" for requirement in runtime]
    argv += [f"--runtime-range={name}={spec}" for name, spec in sorted(ranges.items())]
    argv += ["--python", python, "--uv", f"{uv_dir}/bin/uv", "--uv-spec", f"uv=={uv_version}", "--pip", f"{uv_dir}/bin/pip",
             "--cache", "/var/cache/fastapi_app/cache", "--out", f"{work_dir}/{'wheelhouse' if in_place else 'out'}"]
    return argv if in_place else [*argv, "--tar", f"{work_dir}/wheelhouse.tar"]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "fastapi_app_release_keys": release_keys,
            "fastapi_app_venv_argv": venv_argv,
            "fastapi_app_locked_install_argv": locked_install_argv,
            "fastapi_app_install_target": install_target,
            "fastapi_app_pip_install_argv": pip_install_argv,
            "fastapi_app_wheel_build_argv": wheel_build_argv,
        }
