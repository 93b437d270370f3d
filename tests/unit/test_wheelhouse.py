"""Lock parsing and the install plan of roles/fastapi_app/files/wheelhouse.py."""

from __future__ import annotations

import hashlib
import json
import sys
import tarfile
from pathlib import Path

import pytest
from modload import load

wh = load("fastapi_app_wheelhouse", "roles/fastapi_app/files/wheelhouse.py")

H1, H2 = "1" * 64, "2" * 64

UV_EXPORT = f"""\
.
./packages/shared
alembic==1.20.1 \\
    --hash=sha256:{H1} \\
    --hash=sha256:{H2}
psycopg-binary==3.3.9 ; implementation_name != 'pypy' \\
    --hash=sha256:{H1}
Uvicorn==0.30.0 --hash=sha256:{H2}  # via the app
"""


def test_uv_export_gives_pins_with_hashes_and_local_projects() -> None:
    locked = wh.parse_requirements(UV_EXPORT, require_hashes=True)
    assert locked.local == [".", "./packages/shared"]
    assert locked.names() == {"alembic": "1.20.1", "psycopg-binary": "3.3.9", "uvicorn": "0.30.0"}
    assert locked.entries[1] == f"psycopg-binary==3.3.9 ; implementation_name != 'pypy' --hash=sha256:{H1}"


def test_constraints_keep_markers_and_drop_hashes() -> None:
    locked = wh.parse_requirements(UV_EXPORT, require_hashes=True)
    assert locked.constraints().splitlines() == [
        "alembic==1.20.1", "psycopg-binary==3.3.9 ; implementation_name != 'pypy'", "Uvicorn==0.30.0"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fastapi>=0.115\n", "^line 1: the lock does not pin an exact version \\(name==version\\): 'fastapi>=0.115'"),
        (f"a==1 --hash=sha256:{H1}\n\nfastapi==0.115.0\n", "^line 3: the lock has no sha256 --hash for 'fastapi==0.115.0'"),
        ("-c constraints.txt\n", "^line 1: '-c constraints.txt': a lock takes no -c line"),
        (f"fastapi==0.115.0 --config-settings=x=1 --hash=sha256:{H1}\n", "^line 1: the lock does not pin an exact version"),
        (f"fastapi==0.115.0 \\\n    --hash=sha256:{H1} \\\n", "^line 1: the lock ends inside a continued line"),
    ],
)
def test_a_lock_that_is_not_exact_is_refused(text: str, message: str) -> None:
    with pytest.raises(wh.BuildError, match=message):
        wh.parse_requirements(text, require_hashes=True)


EXPORT_FORMS = f"""\
# poetry export, pip-compile and pdm export write extras, markers and continuations like these
--index-url https://pypi.example.org/simple
--extra-index-url=https://extra.example.org/simple

uvicorn[standard]==0.32.0 ; python_version >= "3.10" and python_version < "4.0" \\
    --hash=sha256:{H1} \\
    --hash=sha256:{H2}
pywin32==306; sys_platform == "win32" --hash=sha256:{H1}
docopt == 0.6.2 --hash sha256:{H2}
"""


def test_every_form_the_lock_tools_write_is_read() -> None:
    locked = wh.parse_requirements(EXPORT_FORMS, require_hashes=True)
    assert locked.names() == {"uvicorn": "0.32.0", "pywin32": "306", "docopt": "0.6.2"}
    assert locked.options == ["--index-url https://pypi.example.org/simple", "--extra-index-url=https://extra.example.org/simple"]
    assert [wh.marker(entry) for entry in locked.entries] == [
        'python_version >= "3.10" and python_version < "4.0"', 'sys_platform == "win32"', ""]
    assert wh.entry_hashes(locked.entries[0]) == [H1, H2]
    # Constraints for the resolver carry no extras (pip refuses them there) and no hashes.
    assert locked.constraints().splitlines() == [
        'uvicorn==0.32.0 ; python_version >= "3.10" and python_version < "4.0"', 'pywin32==306 ; sys_platform == "win32"', "docopt==0.6.2"]
    assert wh.index_arguments(locked.options) == ["--index-url", "https://pypi.example.org/simple",
                                                  "--extra-index-url", "https://extra.example.org/simple"]


def test_within_range_keeps_the_extras_and_swaps_the_pin() -> None:
    ranges = {"uvicorn": ">=0.30,<0.55", "uvicorn-worker": ">=0.2,<0.5"}
    assert wh.within_range("uvicorn[standard]==0.54.0", ranges) == "uvicorn[standard]>=0.30,<0.55"
    assert wh.within_range("uvicorn_worker==0.4.0", ranges) == "uvicorn_worker>=0.2,<0.5"
    assert wh.within_range("gunicorn==27.0.1", ranges) == "gunicorn==27.0.1"


PIP_SDIST_FAILURE = """\
  Building wheel for netifaces (pyproject.toml): started
  error: subprocess-exited-with-error
  × Building wheel for netifaces (pyproject.toml) did not run successfully.
  │ exit code: 1
      netifaces.c:1:10: fatal error: Python.h: No such file or directory
  error: command '/usr/bin/x86_64-linux-gnu-gcc' failed with exit code 1
  ERROR: Failed building wheel for netifaces
Failed to build netifaces
ERROR: Could not build wheels for netifaces, which is required to install pyproject.toml-based projects
"""


def test_a_failed_sdist_build_is_named_with_its_version_and_cause() -> None:
    line = wh.build_failure(PIP_SDIST_FAILURE, [f"docopt==0.6.2 --hash=sha256:{H1}", f"netifaces==0.11.0 --hash=sha256:{H2}"])
    assert line.startswith("could not build a wheel for netifaces==0.11.0 from its sdist: "
                           "netifaces.c:1:10: fatal error: Python.h: No such file or directory. ")
    assert "fastapi_app_build_packages" in line
    assert wh.build_failure("ERROR: No matching distribution found for x==1", []) == ""


def test_serving_stack_comes_from_the_lock_where_it_has_it() -> None:
    locked = wh.parse_requirements(UV_EXPORT, require_hashes=True)
    from_lock, add = wh.serving_plan(locked, ["gunicorn==27.0.1", "uvicorn-worker==0.4.0", "uvicorn[standard]==0.54.0"])
    assert from_lock == ["uvicorn==0.30.0"]
    assert add == ["gunicorn==27.0.1", "uvicorn-worker==0.4.0"]


PYLOCK = f"""\
lock-version = "1.0"
created-by = "uv"
[[packages]]
name = "fastapi"
version = "0.165.0"
wheels = [{{ url = "https://files/fastapi.whl", hashes = {{ sha256 = "{H1}" }} }}]
[[packages]]
name = "colorama"
version = "0.4.6"
marker = "sys_platform == 'win32'"
sdist = {{ url = "https://files/colorama.tar.gz", hashes = {{ sha256 = "{H2}" }} }}
[[packages]]
name = "orders-app"
directory = {{ path = ".", editable = false }}
"""


def test_pylock_packages_become_pins_and_directories_projects() -> None:
    locked = wh.parse_pylock(PYLOCK)
    assert locked.entries == [f"fastapi==0.165.0 --hash=sha256:{H1}", f"colorama==0.4.6 ; sys_platform == 'win32' --hash=sha256:{H2}"]
    assert locked.local == ["."]


def test_pylock_without_hashes_is_refused() -> None:
    with pytest.raises(wh.BuildError, match="package fastapi has no version or no sha256"):
        wh.parse_pylock('[[packages]]\nname = "fastapi"\nversion = "1"\nwheels = [{ url = "https://x/f.whl" }]\n')


def test_install_lines_pin_each_wheel_by_its_own_hash(tmp_path: Path) -> None:
    first = tmp_path / "Orders_App-1.0.0-py3-none-any.whl"
    second = tmp_path / "alembic-1.20.1-py3-none-any.whl"
    first.write_bytes(b"app")
    second.write_bytes(b"alembic")
    hashes = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in (first, second)}
    assert wh.install_lines(hashes).splitlines() == [
        f"alembic==1.20.1 --hash=sha256:{hashlib.sha256(b'alembic').hexdigest()}",
        f"orders-app==1.0.0 --hash=sha256:{hashlib.sha256(b'app').hexdigest()}",
    ]


def test_a_file_that_is_not_a_wheel_is_refused(tmp_path: Path) -> None:
    with pytest.raises(wh.BuildError, match="not a wheel file name"):
        wh.wheel_pin(tmp_path / "orders.whl")


def test_local_projects_start_with_the_app_and_stay_in_the_source(tmp_path: Path) -> None:
    (tmp_path / "packages" / "api").mkdir(parents=True)
    (tmp_path / "packages" / "shared").mkdir()
    assert wh.local_projects(tmp_path, "packages/api", ["./packages/shared", "./packages/api"]) == ["packages/api", "packages/shared"]
    assert wh.local_projects(tmp_path, "", ["."]) == ["."]


def test_a_local_project_outside_the_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(wh.BuildError, match="outside the source: export the lock from the project's own directory"):
        wh.local_projects(tmp_path / "src", "", ["../../../../tmp/hl"])


# Stand-ins for pip and uv that log each call and write the wheel files a real one would: the
# build's own steps (which tool runs, what is kept and reused) are what these tests check.
FAKE_TOOL = """\
#!{python}
import pathlib, sys
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(" ".join(args[:2]) + "\\n")
def value(flag):
    return pathlib.Path(args[args.index(flag) + 1])
def wheel(dest, name, version):
    dest.mkdir(parents=True, exist_ok=True)
    (dest / f"{{name}}-{{version}}-py3-none-any.whl").write_bytes(f"{{name}} {{version}}".encode())
with open({log!r} + ".argv", "a") as log:
    log.write(" ".join(args) + "\\n")
if args[:2] == ["pip", "compile"]:
    wanted = pathlib.Path(args[2]).read_text().split()
    # uv's resolver on the one conflict these tests stage: the pinned uvicorn-worker needs a newer uvicorn.
    if ("uvicorn-worker==0.4.0" in wanted or "uvicorn-worker>=0.4,<0.5" in wanted) and "uvicorn==0.32.0" in value("--constraint").read_text():
        sys.exit("No solution found: uvicorn-worker==0.4.0 depends on uvicorn>=0.36.0")
    for line in wanted:
        print(line.replace(">=0.2,<0.5", "==0.3.0") + " --hash=sha256:" + "3" * 64)
elif args[0] == "wheel":
    for line in value("--requirement").read_text().splitlines():
        wheel(value("--wheel-dir"), *line.split(" ")[0].split("=="))
elif args[0] == "download":
    wheel(value("--dest"), *args[-1].split("=="))
elif args[0] == "build":
    wheel(value("--out-dir"), "hello_app", "1.0")
"""


def build_args(tmp_path: Path, runtime: list[str], lock: str) -> tuple[list[str], Path]:
    log = tmp_path / "calls.log"
    for tool in ("uv", "pip"):
        path = tmp_path / tool
        path.write_text(FAKE_TOOL.format(python=sys.executable, log=str(log)))
        path.chmod(0o755)
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "requirements.lock").write_text(lock)
    argv = ["--kind", "requirements", "--src", str(src), "--lock", "requirements.lock", "--python", sys.executable,
            "--uv", str(tmp_path / "uv"), "--uv-spec", "uv==0.13.9", "--pip", str(tmp_path / "pip"),
            "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--keep-sets", "2"]
    for requirement in runtime:
        argv += ["--runtime", requirement]
    return argv, log


LOCK = f"fastapi==0.165.0 --hash=sha256:{H1}\nuvicorn==0.30.0 --hash=sha256:{H2}\n"


def test_a_code_only_release_reuses_the_dependency_wheels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv, log = build_args(tmp_path, ["gunicorn==27.0.1", "uvicorn==0.54.0"], LOCK)
    assert wh.main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["dependencies"] == "built"
    assert (first["from_lock"], first["added"]) == (["uvicorn==0.30.0"], ["gunicorn==27.0.1"])
    assert sorted(first["wheels"]) == ["fastapi-0.165.0-py3-none-any.whl", "gunicorn-27.0.1-py3-none-any.whl",
                                       "hello_app-1.0-py3-none-any.whl", "uvicorn-0.30.0-py3-none-any.whl"]
    assert log.read_text().splitlines() == ["pip compile", "wheel --no-input", "download --no-input", "build --wheel"]

    log.write_text("")
    assert wh.main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    # Only the app's wheel is built; the same dependency files, the same manifest otherwise.
    assert log.read_text().splitlines() == ["build --wheel"]
    assert {**second, "dependencies": "built"} == first
    assert sorted(p.name for p in (tmp_path / "out" / "tools").iterdir()) == ["uv-0.13.9-py3-none-any.whl"]
    assert len((tmp_path / "out" / "install.txt").read_text().splitlines()) == 4
    # The app's wheel is the one a copied virtualenv installs again.
    assert first["local"] == ["hello_app-1.0-py3-none-any.whl"]
    assert (tmp_path / "out" / "install-local.txt").read_text().startswith("hello-app==1.0 --hash=sha256:")
    assert len((tmp_path / "out" / "install-local.txt").read_text().splitlines()) == 1


def test_the_environment_key_follows_the_dependency_bytes_not_the_app_code(tmp_path: Path) -> None:
    fastapi, app = tmp_path / "fastapi-0.165.0-py3-none-any.whl", tmp_path / "hello_app-1.0-py3-none-any.whl"
    key = wh.environment_key({fastapi: "1" * 64, app: "2" * 64}, {app: "2" * 64})
    new_app = tmp_path / "hello_app-1.1-py3-none-any.whl"
    assert wh.environment_key({fastapi: "1" * 64, new_app: "3" * 64}, {new_app: "3" * 64}) == key
    assert wh.environment_key({fastapi: "4" * 64, app: "2" * 64}, {app: "2" * 64}) != key
    assert wh.environment_key({fastapi: "1" * 64, app: "2" * 64}, {}) != key
    other = tmp_path / "other_app-1.0-py3-none-any.whl"
    assert wh.environment_key({fastapi: "1" * 64, other: "2" * 64}, {other: "2" * 64}) != key


def test_another_lock_builds_its_own_set_and_old_sets_are_pruned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for n, extra in enumerate(["", f"anyio==4.0.0 --hash=sha256:{H1}\n", f"anyio==4.1.0 --hash=sha256:{H1}\n"]):
        argv, log = build_args(tmp_path, [], LOCK + extra)
        log.write_text("")
        assert wh.main(argv) == 0
        assert json.loads(capsys.readouterr().out)["dependencies"] == "built", n
        assert "wheel --no-input" in log.read_text().splitlines()
    # --keep-sets 2: the first lock's set is gone, so building it again downloads again.
    assert len(list((tmp_path / "cache" / "wheelsets").iterdir())) == 2
    argv, log = build_args(tmp_path, [], LOCK)
    assert wh.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["dependencies"] == "built"


def test_the_bundle_for_other_hosts_holds_the_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv, _unused = build_args(tmp_path, [], LOCK)
    assert wh.main([*argv, "--tar", str(tmp_path / "bundle.tar")]) == 0
    manifest = json.loads(capsys.readouterr().out)
    with tarfile.open(tmp_path / "bundle.tar") as bundle:
        names = bundle.getnames()
        assert json.load(bundle.extractfile("manifest.json")) == manifest
    assert {"manifest.json", "install.txt", "install-local.txt", "tools/uv-0.13.9-py3-none-any.whl"} <= set(names)
    assert {f"wheels/{wheel}" for wheel in manifest["wheels"]} <= set(names)


def fake_wheel_hash(name: str, version: str) -> str:
    """The sha256 of the wheel the stand-in pip writes for name==version."""
    return hashlib.sha256(f"{name} {version}".encode()).hexdigest()


def test_a_dependency_change_downloads_only_the_packages_that_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pins = [("fastapi", "0.165.0"), ("uvicorn", "0.30.0")]
    lock = "".join(f"{n}=={v} --hash=sha256:{fake_wheel_hash(n, v)}\n" for n, v in pins)
    argv, log = build_args(tmp_path, [], lock)
    assert wh.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["downloaded"] == 2

    # One more package and one marker line: both go to pip, the kept wheels are linked.
    more = lock + f"anyio==4.0.0 --hash=sha256:{fake_wheel_hash('anyio', '4.0.0')}\n" + \
        f"colorama==0.4.6 ; sys_platform == 'win32' --hash=sha256:{fake_wheel_hash('colorama', '0.4.6')}\n"
    argv, log = build_args(tmp_path, [], more)
    log.write_text("")
    assert wh.main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["dependencies"] == "built" and second["downloaded"] == 2
    assert log.read_text().splitlines() == ["wheel --no-input", "build --wheel"], "the uv wheel is kept too"
    sets = [path for path in (tmp_path / "cache" / "wheelsets").iterdir() if (path / "set.json").exists()]
    asked = next(path for path in sets if (path / "wanted.txt").read_text().startswith("anyio")) / "wanted.txt"
    assert [line.split(" ")[0] for line in asked.read_text().splitlines()] == ["anyio==4.0.0", "colorama==0.4.6"]
    assert sorted(second["wheels"]) == ["anyio-4.0.0-py3-none-any.whl", "colorama-0.4.6-py3-none-any.whl",
                                        "fastapi-0.165.0-py3-none-any.whl", "hello_app-1.0-py3-none-any.whl",
                                        "uvicorn-0.30.0-py3-none-any.whl"]
    assert second["wheels"]["fastapi-0.165.0-py3-none-any.whl"] == fake_wheel_hash("fastapi", "0.165.0")


def test_a_kept_wheel_whose_hash_the_lock_does_not_allow_is_not_taken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv, log = build_args(tmp_path, [], f"fastapi==0.165.0 --hash=sha256:{fake_wheel_hash('fastapi', '0.165.0')}\n")
    assert wh.main(argv) == 0
    argv, log = build_args(tmp_path, [], f"fastapi==0.165.0 --hash=sha256:{H1}\nanyio==4.0.0 --hash=sha256:{H2}\n")
    log.write_text("")
    assert wh.main(argv) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["downloaded"] == 2


def test_a_lock_with_an_older_uvicorn_gets_the_worker_version_in_the_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The role's pins first; when they conflict with the lock, the same packages within the
    supported range: the lock's uvicorn stays, uvicorn-worker is the one that goes with it."""
    lock = f"uvicorn[standard]==0.32.0 ; python_version >= '3.10' --hash=sha256:{H1}\n"
    argv, log = build_args(tmp_path, ["gunicorn==27.0.1", "uvicorn-worker==0.4.0", "uvicorn[standard]==0.54.0"], lock)
    assert wh.main([*argv, "--runtime-range=uvicorn-worker=>=0.2,<0.5"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert (built["from_lock"], built["added"]) == (["uvicorn==0.32.0"], ["gunicorn==27.0.1", "uvicorn-worker==0.3.0"])
    calls = Path(f"{log}.argv").read_text().splitlines()
    assert [c.split()[:2] for c in calls].count(["pip", "compile"]) == 2
    wheel = next(c for c in calls if c.startswith("wheel "))
    assert "--use-pep517" in wheel.split() and "--require-hashes" in wheel.split()


def test_a_serving_stack_outside_the_range_fails_naming_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock = f"uvicorn==0.32.0 --hash=sha256:{H1}\n"
    argv = build_args(tmp_path, ["gunicorn==27.0.1", "uvicorn-worker==0.4.0"], lock)[0]
    assert wh.main([*argv, "--runtime-range=uvicorn-worker=>=0.4,<0.5", "--runtime-range=uvicorn=>=0.36"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("fastapi_app_lockfile: the serving stack (gunicorn==27.0.1, uvicorn-worker==0.4.0) cannot be added "
                            "to the lock's versions uvicorn==0.32.0 within the range the role supports")
    assert "uvicorn-worker==0.4.0 depends on uvicorn>=0.36.0" in error
