"""How a release is identified and installed (plugins/filter/fastapi_app_build.py) and how the
systemd settings become unit lines and systemd-run arguments (plugins/filter/fastapi_app_units.py)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from modload import load

build = load("fastapi_app_build", "plugins/filter/fastapi_app_build.py")
units = load("fastapi_app_units", "plugins/filter/fastapi_app_units.py")

DEPS = {"python": "/usr/bin/python3", "runtime_packages": ["gunicorn==27.0.1"], "requirements": [], "constraints": [],
        "pip_extra_args": "", "worker": "w" * 64}


def test_release_id_hashes_the_inputs_as_to_json_did() -> None:
    # The list the role hashed before the filter existed: ids of releases on hosts stay valid.
    old = ["dir", "s" * 64, "w" * 64, ["gunicorn==27.0.1"], [], [], "", "/usr/bin/python3", []]
    keys = build.release_keys(DEPS, "dir", "s" * 64, [], ["fastapi>=0.115"])
    assert keys["id_hash"] == hashlib.sha256(json.dumps(old).encode()).hexdigest()[:12]
    venv = ["/usr/bin/python3", ["gunicorn==27.0.1"], [], [], "", ["fastapi>=0.115"], "w" * 64]
    assert keys["venv_key"] == hashlib.sha256(json.dumps(venv).encode()).hexdigest()[:16]


def test_a_dependency_input_changes_both_keys_and_the_source_only_the_id() -> None:
    base = build.release_keys(DEPS, "dir", "a", [], [])
    more = build.release_keys({**DEPS, "requirements": ["httpx"]}, "dir", "a", [], [])
    code = build.release_keys(DEPS, "dir", "b", [], [])
    assert more["id_hash"] != base["id_hash"] and more["venv_key"] != base["venv_key"]
    assert code["id_hash"] != base["id_hash"] and code["venv_key"] == base["venv_key"]


def test_no_virtualenv_copy_for_unknown_requirements() -> None:
    assert build.release_keys(DEPS, "git", "a", [], None)["venv_key"] == ""


def test_a_locked_key_ignores_the_lock_hash_and_follows_the_host_side() -> None:
    """The lock's hash changes with the app's own version; the wheels' environment key, added by
    the build, stands for the locked set."""
    lock = ["l" * 64, "", "uv", "0.13.9"]
    base = build.release_keys(DEPS, "dir", "a", lock, None)
    assert len(base["venv_key"]) == 16
    assert build.release_keys(DEPS, "dir", "b", ["m" * 64, *lock[1:]], None)["venv_key"] == base["venv_key"]
    assert build.release_keys(DEPS, "dir", "b", ["m" * 64, *lock[1:]], None)["id_hash"] != base["id_hash"]
    for changed in (["l" * 64, "", "pip", "0.13.9"], ["l" * 64, "", "uv", "0.14.0"], ["l" * 64, "api", "uv", "0.13.9"]):
        assert build.release_keys(DEPS, "dir", "a", changed, None)["venv_key"] != base["venv_key"], changed
    assert build.release_keys({**DEPS, "worker": "x" * 64}, "dir", "a", lock, None)["venv_key"] != base["venv_key"]
    assert build.release_keys(DEPS, "dir", "a", [], [])["venv_key"] != base["venv_key"]


def test_virtualenv_with_uv_or_venv_gets_the_worker_from_stdin(tmp_path: Path) -> None:
    with_uv = build.venv_argv("/r/venv", "/usr/bin/python3", "/t/uv", "/r/w.py")
    assert with_uv[5:] == ["/t/uv", "venv", "--quiet", "--python", "/usr/bin/python3", "/r/venv"]
    assert build.venv_argv("/r/venv", "/usr/bin/python3", "", "/r/w.py")[5:] == ["/usr/bin/python3", "-m", "venv", "/r/venv"]
    # The shell part, run with a stand-in for the creation: the worker is written only after it.
    worker = tmp_path / "site-packages" / "w.py"
    ok = subprocess.run([*with_uv[:4], str(worker), "mkdir", str(worker.parent)], input=b"# worker\n", check=False)
    assert ok.returncode == 0 and worker.read_bytes() == b"# worker\n" and oct(worker.stat().st_mode)[-3:] == "644"
    failed = subprocess.run([*with_uv[:4], str(tmp_path / "other.py"), "false"], input=b"x", check=False)
    assert failed.returncode != 0 and not (tmp_path / "other.py").exists()


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_locked_install_is_offline_and_hash_checked(installer: str) -> None:
    argv = build.locked_install_argv("/r", installer, "/t/uv", "/c/uv")
    assert argv[:2] == ["sh", "-c"] and argv[3:5] == ["install-locked", "/r/wheelhouse"]
    assert argv[-5:] == ["/r/wheelhouse/install.txt", "--no-index", "--find-links", "/r/wheelhouse/wheels", "--require-hashes"]
    assert argv[5] == ("/t/uv" if installer == "uv" else "/r/venv/bin/pip")
    assert ("--offline" in argv) == (installer == "uv")
    # pip compiles bytecode by default, uv only when asked: the service cannot write it later.
    assert ("--compile-bytecode" in argv) == (installer == "uv")


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_locked_install_into_a_copy_reinstalls_only_the_local_projects(installer: str) -> None:
    argv = build.locked_install_argv("/r", installer, "/t/uv", "/c/uv", copied=True)
    assert argv[-5:] == ["/r/wheelhouse/install-local.txt", "--no-index", "--find-links", "/r/wheelhouse/wheels", "--require-hashes"]
    assert argv[-6] == "--requirement" and "--no-deps" in argv
    assert ("--reinstall" if installer == "uv" else "--force-reinstall") in argv
    assert "sync" not in argv


@pytest.mark.parametrize("status", [0, 1])
def test_the_wheels_go_after_the_install_and_only_after_a_good_one(tmp_path: Path, status: int) -> None:
    wheels = tmp_path / "wheelhouse"
    (wheels / "wheels").mkdir(parents=True)
    for name in ("manifest.json", "install.txt"):
        (wheels / name).write_text(name)
    argv = build.locked_install_argv(str(tmp_path), "uv", "/t/uv", "/c/uv")
    result = subprocess.run([*argv[:5], "sh", "-c", f"exit {status}"], check=False)
    assert result.returncode == status
    assert wheels.exists() == bool(status)
    assert (tmp_path / "manifest.json").exists() != bool(status)
    if not status:
        assert (tmp_path / "install.txt").read_text() == "install.txt"


def test_install_target_by_source_kind() -> None:
    assert build.install_target("dir", "/r", True, "", "") == ["/r/src"]
    assert build.install_target("package", "/r", False, "app-1.0.whl", "") == ["/r/app-1.0.whl"]
    assert build.install_target("pip", "/r", False, "", "app==1.0") == ["app==1.0"]
    assert build.install_target("dir", "/r", False, "", "") == []


def test_pip_install_into_a_copy_reinstalls_only_the_app() -> None:
    common = {"cache": "/c/pip", "constrained": True, "extra_args": "--prefer-binary  --no-compile"}
    fresh = build.pip_install_argv("/r", ["/r/src"], ["gunicorn"], ["httpx"], copied=False, **common)
    copy = build.pip_install_argv("/r", ["/r/src"], ["gunicorn"], ["httpx"], copied=True, **common)
    assert fresh == ["/r/venv/bin/pip", "install", "--no-input", "--disable-pip-version-check", "--use-pep517", "--cache-dir", "/c/pip",
                     "--constraint", "/r/constraints.txt", "--prefer-binary", "--no-compile", "gunicorn", "/r/src", "httpx"]
    assert copy[-5:] == ["--no-deps", "--force-reinstall", "--prefer-binary", "--no-compile", "/r/src"]


def test_unit_lines_keep_the_order_and_expand_lists() -> None:
    settings = {"UMask": "0027", "ReadWritePaths": ["/a", "/b"], "LimitNOFILE": 65536, "PrivateTmp": "yes", "Dropped": None}
    assert units.unit_lines(settings) == ["LimitNOFILE=65536", "UMask=0027", "PrivateTmp=yes", "ReadWritePaths=/a", "ReadWritePaths=/b"]


def test_systemd_run_argv() -> None:
    argv = units.systemd_run_argv("hello-canary", ["User=hello"], options=["--service-type=notify"], env=["A=1"], command=["/r/gunicorn"])
    assert argv == ["systemd-run", "--unit=hello-canary", "--quiet", "--collect", "--service-type=notify", "--setenv=A=1",
                    "--property=User=hello", "/r/gunicorn"]


def test_the_wheel_build_runs_the_script_from_stdin_with_the_lock_stack_and_range() -> None:
    lock = {"kind": "requirements", "path": "requirements.lock"}
    common = {"project_dir": "backend", "runtime": ["gunicorn==27.0.1"], "ranges": {"uvicorn": ">=0.30,<0.55", "gunicorn": ">=23"},
              "python": "/usr/bin/python3", "uv_dir": "/u", "uv_version": "0.13.9"}
    in_place = build.wheel_build_argv(lock, "/opt/a/releases/1", True, **common)
    assert in_place == ["/u/bin/python", "-", "--kind", "requirements", "--src", "/opt/a/releases/1/src", "--lock", "requirements.lock",
                        "--project-dir", "backend", "--runtime=gunicorn==27.0.1", "--runtime-range=gunicorn=>=23",
                        "--runtime-range=uvicorn=>=0.30,<0.55", "--python", "/usr/bin/python3", "--uv", "/u/bin/uv",
                        "--uv-spec", "uv==0.13.9", "--pip", "/u/bin/pip", "--cache", "/var/cache/fastapi_app/cache",
                        "--out", "/opt/a/releases/1/wheelhouse"]
    shipped = build.wheel_build_argv(lock, "/b", False, **common)
    assert shipped[-4:] == ["--out", "/b/out", "--tar", "/b/wheelhouse.tar"]
