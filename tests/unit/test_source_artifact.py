"""Unit tests for plugins/lookup/fastapi_app_source.py (the controller-side packager).

The plugin file is not importable as a package here, so it is loaded by path.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from ansible.errors import AnsibleLookupError

MODULE_PATH = Path(__file__).resolve().parents[2] / "plugins" / "lookup" / "fastapi_app_source.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("source_artifact", MODULE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sa = _load()

PYPROJECT = '[project]\nname = "hello-app"\nversion = "1.4.2"\ndependencies = ["fastapi"]\n'


def make_tree(root: Path) -> Path:
    """A small app source: a package, an executable script, an empty directory."""
    (root / "app").mkdir(parents=True)
    (root / "scripts").mkdir()
    (root / "data").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "README.md").write_text("hello\n")
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "main.py").write_text("from fastapi import FastAPI\n\napp = FastAPI()\n")
    run = root / "scripts" / "run.sh"
    run.write_text("#!/bin/sh\nexec gunicorn app.main:app\n")
    for path in (root / "README.md", root / "pyproject.toml", root / "app" / "__init__.py",
                 root / "app" / "main.py"):
        path.chmod(0o644)
    run.chmod(0o755)
    return root


def pack(source: Path, cache: Path) -> dict[str, object]:
    return sa.describe("dir", source, cache)


def members(artifact: str | Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(artifact) as tar:
        return {member.name: member for member in tar.getmembers()}


def write_tar(path: Path, entries: dict[str, bytes | None]) -> Path:
    """A tar at path; an entry whose content is None is a directory."""
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tar:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return path


# --- dir kind: reproducibility ------------------------------------------------------------------


def test_same_tree_gives_same_hash_and_identical_bytes(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    first = pack(source, tmp_path / "cache1")
    second = pack(source, tmp_path / "cache2")
    assert first["artifact"] != second["artifact"]
    assert first["sha256"] == second["sha256"]
    assert len(str(first["sha256"])) == 64
    assert Path(str(first["artifact"])).read_bytes() == Path(str(second["artifact"])).read_bytes()
    assert Path(str(first["artifact"])).name == f"{first['sha256']}.tar.gz"
    assert first["strip_components"] == 0


def test_hash_does_not_depend_on_creation_order(tmp_path: Path) -> None:
    forward = tmp_path / "forward"
    backward = tmp_path / "backward"
    names = [f"m{i:02d}.py" for i in range(40)]
    for root, order in ((forward, names), (backward, names[::-1])):
        (root / "pkg").mkdir(parents=True)
        for name in order:
            (root / "pkg" / name).write_text(name)
            (root / "pkg" / name).chmod(0o644)
    first = pack(forward, tmp_path / "c1")
    assert first["sha256"] == pack(backward, tmp_path / "c2")["sha256"]
    with tarfile.open(first["artifact"]) as tar:
        assert tar.getnames() == ["pkg", *(f"pkg/{name}" for name in names)]


def test_hash_does_not_depend_on_the_tree_location(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    copy = tmp_path / "elsewhere" / "other-name"
    shutil.copytree(source, copy)
    assert pack(source, tmp_path / "c1")["sha256"] == pack(copy, tmp_path / "c2")["sha256"]


def test_mtime_and_non_exec_permissions_do_not_change_the_artifact(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    before = pack(source, tmp_path / "cache1")

    for path in [source, *source.rglob("*")]:
        os.utime(path, (1_000_000_000, 1_000_000_000))
    (source / "README.md").chmod(0o600)            # no exec bit before or after
    (source / "app" / "main.py").chmod(0o664)
    (source / "scripts" / "run.sh").chmod(0o700)   # exec bit kept
    (source / "data").chmod(0o700)

    after = pack(source, tmp_path / "cache2")
    assert after["sha256"] == before["sha256"]
    assert Path(str(after["artifact"])).read_bytes() == Path(str(before["artifact"])).read_bytes()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")
def test_owner_does_not_change_the_artifact(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    before = pack(source, tmp_path / "cache1")
    for path in source.rglob("*"):
        os.chown(path, 12345, 54321, follow_symlinks=False)
    assert (source / "README.md").stat().st_uid == 12345
    after = pack(source, tmp_path / "cache2")
    assert after["sha256"] == before["sha256"]
    assert Path(str(after["artifact"])).read_bytes() == Path(str(before["artifact"])).read_bytes()


MUTATIONS: dict[str, Callable[[Path], None]] = {
    "one byte": lambda root: (root / "app" / "main.py").write_bytes(
        (root / "app" / "main.py").read_bytes().replace(b"app = ", b"app= ", 1)
    ),
    "added file": lambda root: (root / "app" / "extra.py").write_text(""),
    "renamed file": lambda root: (root / "README.md").rename(root / "README.rst"),
    "added empty dir": lambda root: (root / "app" / "static").mkdir(),
    "exec bit set": lambda root: (root / "README.md").chmod(0o755),
    "exec bit cleared": lambda root: (root / "scripts" / "run.sh").chmod(0o644),
}


@pytest.mark.parametrize("mutate", MUTATIONS.values(), ids=MUTATIONS.keys())
def test_content_changes_change_the_hash(tmp_path: Path, mutate: Callable[[Path], None]) -> None:
    source = make_tree(tmp_path / "src")
    before = pack(source, tmp_path / "cache")
    mutate(source)
    after = pack(source, tmp_path / "cache")
    assert after["sha256"] != before["sha256"]
    assert after["artifact"] != before["artifact"]


def test_one_byte_change_is_exactly_detected(tmp_path: Path) -> None:
    """Same length, one byte different: the hash covers content, not just names and sizes."""
    source = make_tree(tmp_path / "src")
    before = pack(source, tmp_path / "cache")
    target = source / "README.md"
    data = bytearray(target.read_bytes())
    data[0] ^= 0x01
    target.write_bytes(bytes(data))
    assert pack(source, tmp_path / "cache")["sha256"] != before["sha256"]


# --- dir kind: exclusions -----------------------------------------------------------------------

EXCLUDED = {
    ".git/HEAD": "ref: refs/heads/main\n",
    ".git/objects/ab/cdef": "blob",
    "app/__pycache__/main.cpython-311.pyc": "bytecode",
    "app/stale.pyc": "bytecode",
    ".venv/bin/python": "#!/bin/sh\n",
    "build/lib/app/main.py": "old copy\n",
    "dist/hello_app-1.4.2-py3-none-any.whl": "wheel",
    "hello_app.egg-info/PKG-INFO": "Metadata-Version: 2.1\n",
    "app/build/leftover.txt": "nested build dir\n",
}


def test_excluded_entries_do_not_change_hash_and_are_not_shipped(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    before = pack(source, tmp_path / "cache1")
    clean_names = set(members(before["artifact"]))

    for name, content in EXCLUDED.items():
        path = source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)

    after = pack(source, tmp_path / "cache2")
    assert after["sha256"] == before["sha256"]
    names = set(members(after["artifact"]))
    assert names == clean_names
    for name in names:
        parts = name.split("/")
        assert not {".git", "__pycache__", ".venv", "build", "dist"} & set(parts), name
        assert not any(part.endswith((".pyc", ".egg-info")) for part in parts), name


def test_artifact_lists_exactly_the_tree(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    with tarfile.open(pack(source, tmp_path / "cache")["artifact"]) as tar:
        names = tar.getnames()  # archive order, which must not depend on the file system's
    assert names == [
        "README.md", "app", "app/__init__.py", "app/main.py", "data", "pyproject.toml",
        "scripts", "scripts/run.sh",
    ]


def test_artifact_content_round_trips(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    artifact = pack(source, tmp_path / "cache")["artifact"]
    with tarfile.open(artifact) as tar:
        extracted = tar.extractfile("app/main.py")
        assert extracted is not None
        assert extracted.read() == (source / "app" / "main.py").read_bytes()


def test_hard_linked_files_are_shipped_and_hash_like_copies(tmp_path: Path) -> None:
    linked = make_tree(tmp_path / "linked")
    os.link(linked / "app" / "main.py", linked / "app" / "alias.py")
    copied = make_tree(tmp_path / "copied")
    shutil.copyfile(copied / "app" / "main.py", copied / "app" / "alias.py")
    (copied / "app" / "alias.py").chmod(0o644)

    result = pack(linked, tmp_path / "cache")
    found = members(result["artifact"])
    assert found["app/alias.py"].isfile()
    assert found["app/alias.py"].size == (linked / "app" / "main.py").stat().st_size
    assert result["sha256"] == pack(copied, tmp_path / "cache")["sha256"]


# --- dir kind: recorded metadata ----------------------------------------------------------------


def test_exec_bit_owner_and_mtime_are_normalised(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    (source / "scripts" / "run.sh").chmod(0o700)
    (source / "README.md").chmod(0o600)
    (source / "data").chmod(0o700)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        for path in source.rglob("*"):
            os.chown(path, 12345, 54321, follow_symlinks=False)
    found = members(pack(source, tmp_path / "cache")["artifact"])

    assert found["scripts/run.sh"].mode == 0o755
    assert found["README.md"].mode == 0o644
    assert found["app/main.py"].mode == 0o644
    assert found["data"].isdir() and found["data"].mode == 0o755
    for member in found.values():
        assert (member.uid, member.gid) == (0, 0), member.name
        assert (member.uname, member.gname) == ("root", "root"), member.name
        assert member.mtime == 0, member.name
        assert member.pax_headers == {}, member.name


def test_gzip_header_has_no_timestamp(tmp_path: Path) -> None:
    artifact = Path(str(pack(make_tree(tmp_path / "src"), tmp_path / "cache")["artifact"]))
    raw = artifact.read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert raw[4:8] == b"\x00\x00\x00\x00"
    # The sha256 names the uncompressed tar, so it survives a change of gzip/zlib.
    assert hashlib.sha256(gzip.decompress(raw)).hexdigest() == artifact.name.split(".")[0]


# --- dir kind: version --------------------------------------------------------------------------


def test_version_from_pyproject(tmp_path: Path) -> None:
    assert pack(make_tree(tmp_path / "src"), tmp_path / "cache")["version"] == "1.4.2"


def test_version_empty_without_pyproject(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    (source / "pyproject.toml").unlink()
    assert pack(source, tmp_path / "cache")["version"] == ""


def test_version_empty_when_dynamic(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    (source / "pyproject.toml").write_text('[project]\nname = "x"\ndynamic = ["version"]\n')
    assert pack(source, tmp_path / "cache")["version"] == ""


# --- declared dependencies (equal ones let a release reuse the previous virtualenv) ----------------


def test_dependencies_from_pyproject_are_sorted(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    (source / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\ndependencies = ["uvloop", "fastapi>=0.115"]\n')
    assert pack(source, tmp_path / "cache")["dependencies"] == ["fastapi>=0.115", "uvloop"]


@pytest.mark.parametrize(
    ("pyproject", "expected"),
    [
        ('[project]\nname = "x"\nversion = "1"\n', []),
        ('[project]\nname = "x"\ndynamic = ["dependencies"]\n', None),
        ('[tool.poetry]\nname = "x"\n', None),
        (None, None),
    ],
    ids=["none-declared", "dynamic", "no-project-table", "no-pyproject"],
)
def test_dependencies_unknown_unless_static(tmp_path: Path, pyproject: str | None, expected: list[str] | None) -> None:
    source = make_tree(tmp_path / "src")
    if pyproject is None:
        (source / "pyproject.toml").unlink()
    else:
        (source / "pyproject.toml").write_text(pyproject)
    assert pack(source, tmp_path / "cache")["dependencies"] == expected


def test_a_dependency_change_changes_the_dependencies_only_there(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    before = pack(source, tmp_path / "cache")
    (source / "app.py").write_text("print('code only')\n")
    code_only = pack(source, tmp_path / "cache")
    (source / "pyproject.toml").write_text(PYPROJECT.replace('["fastapi"]', '["fastapi", "httpx"]'))
    new_dependency = pack(source, tmp_path / "cache")
    assert code_only["sha256"] != before["sha256"] and code_only["dependencies"] == before["dependencies"] == ["fastapi"]
    assert new_dependency["dependencies"] == ["fastapi", "httpx"]


@pytest.mark.parametrize("top", ["app-1.0/", ""])
def test_archive_dependencies_from_its_pyproject(tmp_path: Path, top: str) -> None:
    entries: dict[str, bytes | None] = {f"{top}pyproject.toml": PYPROJECT.encode(), f"{top}main.py": b"x"}
    archive = write_tar(tmp_path / "app.tar.gz", entries)
    assert sa.describe("archive", archive, tmp_path / "cache")["dependencies"] == ["fastapi"]


def test_archive_without_pyproject_has_unknown_dependencies(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "app.tar.gz", {"app-1.0/setup.py": b"x", "app-1.0/sub/pyproject.toml": PYPROJECT.encode()})
    assert sa.describe("archive", archive, tmp_path / "cache")["dependencies"] is None


@pytest.mark.parametrize(("files", "installable"), [
    (["pyproject.toml", "main.py"], True),
    (["setup.py", "main.py"], True),
    (["main.py", "sub/pyproject.toml"], False),  # only the root counts, as pip installs the root
])
def test_installable_when_the_root_has_a_project_file(tmp_path: Path, files: list[str], installable: bool) -> None:
    source = tmp_path / "src"
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(PYPROJECT if name.endswith(".toml") else "x")
    assert sa.describe("dir", source, tmp_path / "cache")["installable"] is installable
    archive = write_tar(tmp_path / "app.tar.gz", {f"app-1.0/{name}": (PYPROJECT if name.endswith(".toml") else "x").encode()
                                                  for name in files})
    assert sa.describe("archive", archive, tmp_path / "cache")["installable"] is installable


# --- dir kind: cache ----------------------------------------------------------------------------


def test_artifact_is_cached_and_no_partial_is_left(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    cache = tmp_path / "cache"
    first = pack(source, cache)
    artifact = Path(str(first["artifact"]))
    os.utime(artifact, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = artifact.stat().st_mtime_ns

    second = pack(source, cache)
    assert second == first
    assert artifact.stat().st_mtime_ns == before
    assert sorted(p.name for p in cache.iterdir()) == [artifact.name]
    assert not list(cache.glob("*.partial"))


def test_cache_dir_is_created(tmp_path: Path) -> None:
    cache = tmp_path / "deep" / "cache"
    result = pack(make_tree(tmp_path / "src"), cache)
    assert Path(str(result["artifact"])).parent == cache


# --- archive kind -------------------------------------------------------------------------------


def test_archive_hash_is_the_file_hash(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "app-1.0.tar.gz", {"app-1.0": None, "app-1.0/main.py": b"x"})
    result = sa.describe("archive", archive, tmp_path / "cache")
    assert result["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert result["artifact"] == str(archive)
    assert result["version"] == ""
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("name", "entries", "strip"),
    [
        ("top-dir.tar.gz", {"app-1.0": None, "app-1.0/main.py": b"x", "app-1.0/pkg/a.py": b"y"}, 1),
        ("implied-top-dir.tar", {"app-1.0/main.py": b"x", "app-1.0/README": b"y"}, 1),
        ("dot-prefixed.tgz", {"./app": None, "./app/main.py": b"x"}, 1),
        ("flat.tar.gz", {"main.py": b"x", "README.md": b"y"}, 0),
        ("flat-with-dir.tar", {"main.py": b"x", "pkg": None, "pkg/a.py": b"y"}, 0),
        ("single-file.tar.gz", {"main.py": b"x"}, 0),
    ],
)
def test_archive_strip_components(tmp_path: Path, name: str, entries: dict[str, bytes | None],
                                  strip: int) -> None:
    archive = write_tar(tmp_path / name, entries)
    assert sa.describe("archive", archive, tmp_path / "cache")["strip_components"] == strip


@pytest.mark.parametrize("name", ["app.zip", "app.whl", "app.gz", "app.tar.zst"])
def test_archive_rejects_non_tar_suffix(tmp_path: Path, name: str) -> None:
    source = tmp_path / name
    source.write_bytes(b"not a tar")
    with pytest.raises(ValueError, match="fastapi_app_source_path"):
        sa.describe("archive", source, tmp_path / "cache")


def test_archive_missing_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fastapi_app_source_path"):
        sa.describe("archive", tmp_path / "missing.tar.gz", tmp_path / "cache")


# --- package kind -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("hello_app-1.0.0-py3-none-any.whl", "1.0.0"),
        ("hello_app-2.0.1-1-cp311-cp311-manylinux_2_17_x86_64.whl", "2.0.1"),
        ("hello-app-1.2.3.tar.gz", "1.2.3"),
        ("hello_app-0.9rc1.zip", "0.9rc1"),
        ("my-app2-3.4.tar.gz", "3.4"),
    ],
)
def test_package_version_and_hash(tmp_path: Path, name: str, version: str) -> None:
    package = tmp_path / name
    if name.endswith(".whl"):
        write_wheel(package, [])
    else:
        package.write_bytes(b"package bytes " + name.encode())
    result = sa.describe("package", package, tmp_path / "cache")
    assert result == {
        "sha256": hashlib.sha256(package.read_bytes()).hexdigest(),
        "version": version,
        "artifact": str(package),
        "strip_components": 0,
        "installable": False,  # installed as the package file, never as a tree
        # An sdist's metadata may be computed by its build: not known before the build.
        "dependencies": [] if name.endswith(".whl") else None,
        "requires_python": "",
        "lock": None,
    }


def write_wheel(path: Path, requires: list[str]) -> Path:
    metadata = "Metadata-Version: 2.1\nName: hello-app\nVersion: 1.0.0\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("hello_app/__init__.py", "")
        wheel.writestr("hello_app-1.0.0.dist-info/METADATA", metadata)
    return path


def test_wheel_dependencies_come_from_its_metadata(tmp_path: Path) -> None:
    wheel = write_wheel(tmp_path / "hello_app-1.0.0-py3-none-any.whl", ["httpx>=0.27", 'fastapi<1; python_version >= "3.11"'])
    assert sa.describe("package", wheel, tmp_path / "cache")["dependencies"] == ['fastapi<1; python_version >= "3.11"', "httpx>=0.27"]


def test_a_broken_wheel_is_reported_as_the_source(tmp_path: Path) -> None:
    wheel = tmp_path / "hello_app-1.0.0-py3-none-any.whl"
    wheel.write_bytes(b"not a zip")
    with pytest.raises(sa.SourceError, match="^fastapi_app_source_path: cannot package"):
        sa.package("package", str(wheel), str(tmp_path / "cache"))


@pytest.mark.parametrize("name", ["hello_app-1.0.0.egg", "hello_app-1.0.0.tar", "hello_app-1.0.0.tar.xz"])
def test_package_rejects_bad_suffix(tmp_path: Path, name: str) -> None:
    package = tmp_path / name
    package.write_bytes(b"x")
    with pytest.raises(ValueError, match="fastapi_app_source_path"):
        sa.describe("package", package, tmp_path / "cache")


# --- the lookup ------------------------------------------------------------------------------------


def test_the_lookup_returns_the_description(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    [result] = sa.LookupModule().run(["dir", str(source), str(tmp_path / "cache")], lockfile="", project_dir="")
    assert set(result) == {"sha256", "version", "artifact", "strip_components", "installable", "dependencies", "requires_python", "lock"}
    assert result == pack(source, tmp_path / "cache")


@pytest.mark.parametrize("case", ["missing dir", "unreadable archive", "bad pyproject", "unknown kind"])
def test_the_lookup_fails_naming_the_variable(tmp_path: Path, case: str) -> None:
    kind, source = "dir", tmp_path / "no-such-dir"
    if case == "unreadable archive":
        kind, source = "archive", tmp_path / "app.tar.gz"
        source.write_bytes(b"this is not gzip")
    elif case == "bad pyproject":
        source = make_tree(tmp_path / "src")
        (source / "pyproject.toml").write_text("[project\nversion = 1\n")
    elif case == "unknown kind":
        kind = "git"
    with pytest.raises(AnsibleLookupError) as error:
        sa.LookupModule().run([kind, str(source), str(tmp_path / "cache")])
    message = str(error.value)
    assert message.startswith("fastapi_app_source_kind" if case == "unknown kind" else "fastapi_app_source_path"), message
    if case != "unknown kind":
        assert str(source) in message


# --- lockfiles and requires-python ---------------------------------------------------------------

HASHED = "fastapi==0.115.0 \\\n    --hash=sha256:" + "a" * 64 + "\n"


def lock_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_uv_lock_is_detected_and_hashed(tmp_path: Path) -> None:
    source = lock_tree(tmp_path / "src", {"pyproject.toml": '[project]\nname = "a"\nrequires-python = ">=3.12"\n', "uv.lock": "version = 1\n"})
    result = sa.describe("dir", source, tmp_path / "cache")
    assert result["lock"] == {"kind": "uv", "path": "uv.lock", "sha256": hashlib.sha256(b"version = 1\n").hexdigest(), "serving": {}}
    assert result["requires_python"] == ">=3.12"


def test_workspace_member_reads_its_own_pyproject_and_the_root_lock(tmp_path: Path) -> None:
    source = lock_tree(tmp_path / "src", {
        "pyproject.toml": '[tool.uv.workspace]\nmembers = ["packages/*"]\n',
        "uv.lock": "version = 1\n",
        "packages/api/pyproject.toml": '[project]\nname = "api"\nversion = "2.0"\nrequires-python = ">=3.11"\n',
    })
    result = sa.describe("dir", source, tmp_path / "cache", project_dir="packages/api")
    assert (result["version"], result["requires_python"], result["lock"]["path"]) == ("2.0", ">=3.11", "uv.lock")


def test_a_missing_member_names_the_variable(tmp_path: Path) -> None:
    source = lock_tree(tmp_path / "src", {"uv.lock": ""})
    with pytest.raises(ValueError, match="^fastapi_app_project_dir: packages/nope"):
        sa.describe("dir", source, tmp_path / "cache", project_dir="packages/nope")


def test_pylock_is_found_in_the_member(tmp_path: Path) -> None:
    source = lock_tree(tmp_path / "src", {"app/pyproject.toml": '[project]\nname = "a"\n', "app/pylock.toml": "lock-version = '1.0'\n"})
    assert sa.describe("dir", source, tmp_path / "cache", project_dir="app")["lock"]["kind"] == "pylock"


def test_named_requirements_need_hashes(tmp_path: Path) -> None:
    source = lock_tree(tmp_path / "src", {"requirements.txt": HASHED + "httpx==0.28.1\n"})
    with pytest.raises(ValueError, match="^fastapi_app_lockfile: requirements.txt: line 3: the lock has no sha256 --hash for 'httpx==0.28.1'"):
        sa.describe("dir", source, tmp_path / "cache", lockfile="requirements.txt")


def test_named_requirements_with_hashes_are_a_lock(tmp_path: Path) -> None:
    source = lock_tree(tmp_path / "src", {"requirements.txt": "# pinned\n" + HASHED})
    assert sa.describe("dir", source, tmp_path / "cache", lockfile="requirements.txt")["lock"]["kind"] == "requirements"


def test_a_named_lock_that_is_missing_names_the_variable(tmp_path: Path) -> None:
    source = lock_tree(tmp_path / "src", {"pyproject.toml": '[project]\nname = "a"\n'})
    with pytest.raises(ValueError, match="^fastapi_app_lockfile: uv.lock is not in the source"):
        sa.describe("dir", source, tmp_path / "cache", lockfile="uv.lock")


def test_none_turns_a_present_lock_off(tmp_path: Path) -> None:
    source = lock_tree(tmp_path / "src", {"uv.lock": "version = 1\n"})
    assert sa.describe("dir", source, tmp_path / "cache", lockfile="none")["lock"] is None


def test_an_archive_lock_is_read_from_the_archive(tmp_path: Path) -> None:
    source = lock_tree(tmp_path / "src", {"proj/uv.lock": "version = 1\n", "proj/pyproject.toml": '[project]\nname = "a"\n'})
    archive = tmp_path / "app.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "proj", arcname="proj")
    assert sa.describe("archive", archive, tmp_path / "cache")["lock"]["path"] == "uv.lock"


UV_LOCK_WITH_SERVING = """\
version = 1
[[package]]
name = "Uvicorn"
version = "0.32.0"
[[package]]
name = "fastapi"
version = "0.115.0"
[[package]]
name = "gunicorn"
version = "23.0.0"
"""


def test_the_locks_serving_stack_versions_are_read_on_the_controller(tmp_path: Path) -> None:
    source = lock_tree(tmp_path / "src", {"uv.lock": UV_LOCK_WITH_SERVING})
    assert sa.describe("dir", source, tmp_path / "cache")["lock"]["serving"] == {"gunicorn": "23.0.0", "uvicorn": "0.32.0"}
    hashed = f"uvicorn[standard]==0.32.0 ; python_version >= \"3.10\" \\\n    --hash=sha256:{'b' * 64}\n"
    source = lock_tree(tmp_path / "req", {"requirements.lock": HASHED + hashed})
    lock = sa.describe("dir", source, tmp_path / "cache", lockfile="requirements.lock")["lock"]
    assert (lock["kind"], lock["serving"]) == ("requirements", {"uvicorn": "0.32.0"})


def test_a_malformed_requirements_lock_fails_on_the_controller_naming_the_line(tmp_path: Path) -> None:
    source = lock_tree(tmp_path / "src", {"requirements.lock": HASHED + "-r base.txt\n"})
    with pytest.raises(ValueError, match="^fastapi_app_lockfile: requirements.lock: line 3: '-r base.txt': a lock takes no -r line"):
        sa.describe("dir", source, tmp_path / "cache", lockfile="requirements.lock")


@pytest.mark.parametrize("line", ["-e /home/me/lib", "../lib", "file:///srv/lib"])
def test_a_local_project_outside_the_source_is_refused_on_the_controller(tmp_path: Path, line: str) -> None:
    source = lock_tree(tmp_path / "src", {"requirements.lock": HASHED + line + "\n"})
    with pytest.raises(ValueError, match="a path outside the source"):
        sa.describe("dir", source, tmp_path / "cache", lockfile="requirements.lock")


@pytest.mark.parametrize(("lock", "command"), [("poetry.lock", "poetry export --format requirements.txt"), ("pdm.lock", "pdm export")])
def test_a_poetry_or_pdm_lock_alone_names_the_export_command(tmp_path: Path, lock: str, command: str) -> None:
    source = lock_tree(tmp_path / "src", {"pyproject.toml": '[project]\nname = "a"\n', lock: "# a lock\n"})
    with pytest.raises(ValueError, match=f"^fastapi_app_lockfile: the source has {lock}, which the role does not read; export it with `{command}"):
        sa.describe("dir", source, tmp_path / "cache")
    # Named, the exported lock is the one the release installs; none installs without a lock.
    source = lock_tree(source, {"requirements.lock": HASHED})
    assert sa.describe("dir", source, tmp_path / "cache", lockfile="requirements.lock")["lock"]["kind"] == "requirements"
    assert sa.describe("dir", source, tmp_path / "cache", lockfile="none")["lock"] is None
