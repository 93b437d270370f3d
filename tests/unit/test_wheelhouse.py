"""Lock parsing and the install plan of roles/fastapi_app/files/wheelhouse.py."""

from __future__ import annotations

import hashlib
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
        ("fastapi>=0.115\n", "does not pin an exact version"),
        ("fastapi==0.115.0\n", "has no --hash"),
        ("--index-url https://example.org/simple\n", "unsupported option line"),
    ],
)
def test_a_lock_that_is_not_exact_is_refused(text: str, message: str) -> None:
    with pytest.raises(wh.BuildError, match=message):
        wh.parse_requirements(text, require_hashes=True)


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
