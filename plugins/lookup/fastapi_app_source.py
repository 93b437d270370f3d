"""Turn a controller-side app source into one content-addressed artifact: the lookup
fastapi_ops.app.fastapi_app_source.

Runs in ansible-playbook itself, once per run (tasks/validate_source.yml keeps the result as a
fact of localhost), so that every host of a play gets the same bytes and the same release id,
and so that a directory is shipped as one archive instead of file by file. In-process, it costs
a tenth of a second where a command on localhost cost 0.8. Returns one dict: sha256, version,
artifact (path), strip_components, installable (the tree's root holds pyproject.toml or
setup.py), requires_python, lock and dependencies: the app's declared requirements when they are
static (pyproject.toml's [project] table, a wheel's metadata), else null. Equal dependencies let
a release reuse the virtualenv of the one before it.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: fastapi_app_source
short_description: Package a controller-side app source into one content-addressed archive
version_added: 0.10.0
description:
  - Packs a directory (or takes a tar archive, wheel or sdist as it is) into the cache directory
    under its sha256 and describes it. The role ships that archive to every host of a play, and
    reads the facts of the app's project it needs before the build from the description.
  - A directory is packed reproducibly (fixed order, owner, times and modes), without VCS data,
    virtualenvs, caches and build leftovers, so equal trees give equal archives.
  - Runs on the controller. Use it with C(query) (or C(lookup) with C(wantlist=true)); it returns
    a list of one dictionary.
options:
  _terms:
    description:
      - Three terms, in this order.
      - The kind of source, V(dir), V(archive) (a tar archive) or V(package) (a wheel or sdist).
      - The source's path on the controller.
      - The cache directory that receives a packed directory's archive.
    type: list
    elements: str
    required: true
  lockfile:
    description:
      - The lockfile relative to the source. An empty string detects C(uv.lock) or C(pylock.toml),
        V(none) turns locks off.
      - A pip requirements file counts as a lock only with a C(--hash) on every requirement.
    type: str
    default: ""
  project_dir:
    description: The app's project directory relative to the source (a uv workspace member).
    type: str
    default: ""
# No GitHub account speaks for the project yet: (!UNKNOWN) is validate-modules' form for that.
author: the fastapi_app authors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Package the app directory on the controller
  ansible.builtin.set_fact:
    packaged: "{{ query('fastapi_ops.app.fastapi_app_source', 'dir', '/home/me/src/hello_app', '/home/me/.cache/fastapi_app') | first }}"

- name: Describe a wheel, with locks turned off
  ansible.builtin.debug:
    msg: >-
      {{ query('fastapi_ops.app.fastapi_app_source', 'package', 'dist/hello_app-1.0.0-py3-none-any.whl',
               '/home/me/.cache/fastapi_app', lockfile='none') | first }}

- name: Package a uv workspace whose app is the member apps/api
  ansible.builtin.set_fact:
    packaged: >-
      {{ query('fastapi_ops.app.fastapi_app_source', 'dir', '/home/me/src/workspace', '/home/me/.cache/fastapi_app',
               project_dir='apps/api') | first }}
"""

RETURN = r"""
_raw:
  description: One dictionary that describes the packaged source.
  type: list
  elements: dict
  contains:
    sha256:
      description: The sha256 of the artifact (of the uncompressed tar for a directory).
      type: str
    artifact:
      description: The artifact's path on the controller; for a directory, C(<sha256>.tar.gz) in the cache directory.
      type: str
    strip_components:
      description: Leading path components to strip when unpacking (1 when a tar archive holds one top-level directory).
      type: int
    version:
      description: The project's version (pyproject.toml, or a package's file name), or an empty string.
      type: str
    installable:
      description: Whether the tree's root holds C(pyproject.toml) or C(setup.py), so pip can install it.
      type: bool
    dependencies:
      description: The app's requirements when they are static (pyproject.toml's C([project]) table, a wheel's metadata), else null.
      type: list
      elements: str
    requires_python:
      description: The project's C(requires-python), or an empty string.
      type: str
    lock:
      description: The lock the release installs (kind V(uv), V(pylock) or V(requirements), path, sha256), or null.
      type: dict
"""

import email.parser
import gzip
import hashlib
import importlib.util
import io
import os
import re
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

# Build leftovers and VCS data never belong in a release and would make the hash unstable.
EXCLUDED_DIRS = frozenset(
    {".git", ".hg", ".svn", "__pycache__", ".venv", "venv", ".tox", ".nox", ".mypy_cache",
     ".pytest_cache", ".ruff_cache", "build", "dist", "node_modules"}
)
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".egg-info")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2")
PACKAGE_SUFFIXES = (".whl", ".tar.gz", ".zip")
CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def iter_tree(root: Path) -> list[Path]:
    """Files and directories under root, sorted, without excluded entries."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in EXCLUDED_DIRS and not d.endswith(EXCLUDED_SUFFIXES)
        )
        base = Path(dirpath)
        found.extend(base / d for d in dirnames)
        found.extend(base / f for f in sorted(filenames) if not f.endswith(EXCLUDED_SUFFIXES))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def tar_directory(root: Path) -> bytes:
    """A reproducible tar of root: fixed order, owner, mtime and modes, so equal trees give equal bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in iter_tree(root):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(root).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            info.pax_headers = {}
            if info.islnk():
                # gettarinfo turns a second hard link to an inode into a link entry; store the
                # file itself, so the tree's hard links neither drop files nor change the hash.
                info.type = tarfile.REGTYPE
                info.linkname = ""
                info.size = path.stat().st_size
            if info.isdir():
                info.mode = 0o755
                tar.addfile(info)
            elif info.isfile():
                info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            elif info.issym():
                tar.addfile(info)
    return buffer.getvalue()


def pyproject_dependencies(data: bytes | None) -> list[str] | None:
    """[project] dependencies of a pyproject.toml, or None when they are not static or not there."""
    if data is None:
        return None
    project = tomllib.loads(data.decode()).get("project")
    if not isinstance(project, dict) or "dependencies" in project.get("dynamic", []):
        return None
    dependencies = project.get("dependencies", [])
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        return None
    return sorted(dependencies)


def archive_file(path: Path, strip_components: int, name: str) -> bytes | None:
    """The file at relative path name in a tar archive (after strip_components), if any."""
    wanted = [part for part in name.split("/") if part not in ("", ".")]
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            parts = member.name.removeprefix("./").split("/")
            if parts[strip_components:] == wanted and member.isfile():
                handle = tar.extractfile(member)
                return handle.read() if handle else None
    return None


def pyproject_requires_python(data: bytes | None) -> str:
    """[project] requires-python of a pyproject.toml, or an empty string."""
    if data is None:
        return ""
    value = tomllib.loads(data.decode()).get("project", {}).get("requires-python", "")
    return value if isinstance(value, str) else ""


def lock_kind(name: str) -> str:
    """uv, pylock or requirements, from the lockfile's name."""
    base = name.rsplit("/", 1)[-1]
    if base == "uv.lock":
        return "uv"
    if re.fullmatch(r"pylock(\.[^.]+)?\.toml", base):
        return "pylock"
    return "requirements"


def wheelhouse() -> ModuleType:
    """The role's lock reader (roles/fastapi_app/files/wheelhouse.py, which the build host runs):
    the controller checks a lock with the very code that will build it."""
    name = "fastapi_ops_app_wheelhouse"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[2] / "roles" / "fastapi_app" / "files" / "wheelhouse.py"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load the role's lock reader {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses resolve their module by name
        spec.loader.exec_module(module)
    return sys.modules[name]


# Locks of project managers the role does not read: the command that turns each into a
# requirements lock the role takes (docs/dependencies.md#poetry-and-pdm).
FOREIGN_LOCKS = {
    "poetry.lock": "poetry export --format requirements.txt --output requirements.lock (the poetry-plugin-export plugin)",
    "pdm.lock": "pdm export --format requirements --output requirements.lock",
}


def find_lock(read: Callable[[str], bytes | None], lockfile: str, project_dir: str) -> dict[str, object] | None:
    """The lockfile the release installs: the one named, or uv.lock / pylock.toml found in the source.

    A uv workspace keeps its uv.lock at the root and the app in a member directory (project_dir).
    A requirements lock is read here as the build host will read it: every line's form, exact
    pins and hashes are checked before a host changes. `serving` holds the lock's versions of
    the serving stack, which the role checks against the range its worker supports.
    """
    if lockfile == "none":
        return None
    project = f"{project_dir.strip('/')}/" if project_dir.strip("/.") else ""
    candidates = [lockfile] if lockfile else ["uv.lock", f"{project}pylock.toml", "pylock.toml"]
    for name in dict.fromkeys(candidates):
        data = read(name)
        if data is None:
            continue
        kind = lock_kind(name)
        try:
            versions = locked_versions(kind, data.decode())
        except (wheelhouse().BuildError, tomllib.TOMLDecodeError, KeyError, UnicodeDecodeError) as error:
            raise ValueError(f"fastapi_app_lockfile: {name}: {error}") from None
        serving = {package: versions[package] for package in SERVING_PACKAGES if package in versions}
        return {"kind": kind, "path": name, "sha256": hashlib.sha256(data).hexdigest(), "serving": serving}
    if lockfile:
        raise ValueError(f"fastapi_app_lockfile: {lockfile} is not in the source; give a path relative to fastapi_app_source_path,"
                         " or '' to detect uv.lock and pylock.toml")
    for foreign, export in FOREIGN_LOCKS.items():
        found = next((f"{where}{foreign}" for where in dict.fromkeys([project, ""]) if read(f"{where}{foreign}") is not None), None)
        if found:
            raise ValueError(f"fastapi_app_lockfile: the source has {found}, which the role does not read; export it with "
                             f"`{export}`, commit the file and set fastapi_app_lockfile: requirements.lock, or set "
                             "fastapi_app_lockfile: none to install without a lock")
    return None


# The serving stack's packages whose locked versions must lie in the worker's supported range.
SERVING_PACKAGES = ("gunicorn", "uvicorn", "uvicorn-worker")


def locked_versions(kind: str, text: str) -> dict[str, str]:
    """Normalized name -> version of every package the lock pins; a malformed lock raises,
    naming the line."""
    reader = wheelhouse()
    if kind == "uv":
        # uv export runs on the build host (it checks the lock against pyproject.toml there).
        return {reader.normalize(package["name"]): package.get("version", "") for package in tomllib.loads(text).get("package", [])}
    locked = reader.parse_pylock(text) if kind == "pylock" else reader.parse_requirements(text, require_hashes=True)
    for local in locked.local:
        path = local.removeprefix("file:").removeprefix("//")
        if path.startswith("/") or ".." in Path(path).parts:
            raise reader.BuildError(f"the lock installs {local!r}, a path outside the source: a lock may name only projects "
                                    "inside the source (they are built from it), e.g. '.' or './libs/common'")
    return locked.names()


def wheel_dependencies(path: Path) -> list[str] | None:
    """Requires-Dist of a wheel; None for an sdist, whose metadata may be computed at build time."""
    if not path.name.endswith(".whl"):
        return None
    with zipfile.ZipFile(path) as wheel:
        names = [n for n in wheel.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if len(names) != 1:
            return None
        metadata = email.parser.BytesParser().parsebytes(wheel.read(names[0]), headersonly=True)
    return sorted(metadata.get_all("Requires-Dist") or [])


def package_version(name: str) -> str:
    """Version from a wheel (name-ver-tags.whl) or sdist (name-ver.tar.gz) file name."""
    if name.endswith(".whl"):
        parts = name[: -len(".whl")].split("-")
        return parts[1] if len(parts) >= 5 else ""
    match = re.match(r"^.+?-(\d[^-]*?)(\.tar\.gz|\.zip)$", name)
    return match.group(1) if match else ""


def tar_strip_components(path: Path) -> int:
    """1 when every member sits under one top-level directory (the usual `project-1.0/` layout)."""
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    names = [member.name.removeprefix("./") for member in members]
    tops = {name.split("/", 1)[0] for name in names} - {""}
    if len(tops) != 1:
        return 0
    top = tops.pop()
    lone_file = any(name == top and not member.isdir() for name, member in zip(names, members, strict=True))
    return 0 if lone_file else 1


def project_facts(read: Callable[[str], bytes | None], lockfile: str, project_dir: str) -> dict[str, object]:
    """What the app's project says about its build: version, static dependencies, Python, lock."""
    project = f"{project_dir.strip('/')}/" if project_dir.strip("/.") else ""
    pyproject = read(f"{project}pyproject.toml")
    if project and pyproject is None:
        raise ValueError(f"fastapi_app_project_dir: {project_dir} has no pyproject.toml in the source")
    version = tomllib.loads(pyproject.decode()).get("project", {}).get("version", "") if pyproject else ""
    return {"version": version if isinstance(version, str) else "",
            # pip installs the source tree itself only when its root has one of these.
            "installable": any(read(name) is not None for name in ("pyproject.toml", "setup.py")),
            "dependencies": pyproject_dependencies(pyproject),
            "requires_python": pyproject_requires_python(pyproject),
            "lock": find_lock(read, lockfile, project_dir)}


def describe(kind: str, source: Path, cache_dir: Path, lockfile: str = "", project_dir: str = "") -> dict[str, object]:
    if kind == "dir":
        if not source.is_dir():
            raise ValueError(f"fastapi_app_source_path: {source} is not a directory on the controller")
        raw = tar_directory(source)
        sha = hashlib.sha256(raw).hexdigest()
        cache_dir.mkdir(parents=True, exist_ok=True)
        artifact = cache_dir / f"{sha}.tar.gz"
        if not artifact.exists():
            partial = artifact.with_name(f"{artifact.name}.{os.getpid()}.partial")
            with partial.open("wb") as handle, gzip.GzipFile(fileobj=handle, mode="wb", mtime=0) as gz:
                gz.write(raw)
            partial.replace(artifact)

        def read(name: str) -> bytes | None:
            path = source / name
            return path.read_bytes() if path.is_file() else None

        return {"sha256": sha, "artifact": str(artifact), "strip_components": 0, **project_facts(read, lockfile, project_dir)}
    if not source.is_file():
        raise ValueError(f"fastapi_app_source_path: {source} is not a file on the controller")
    if kind == "archive":
        if not source.name.endswith(TAR_SUFFIXES):
            raise ValueError(f"fastapi_app_source_path: {source.name} is not a tar archive ({', '.join(TAR_SUFFIXES)})")
        strip = tar_strip_components(source)
        facts = project_facts(lambda name: archive_file(source, strip, name), lockfile, project_dir)
        return {"sha256": sha256_file(source), "artifact": str(source), "strip_components": strip, **facts, "version": ""}
    if kind == "package":
        if not source.name.endswith(PACKAGE_SUFFIXES):
            raise ValueError(f"fastapi_app_source_path: {source.name} is not a wheel or sdist ({', '.join(PACKAGE_SUFFIXES)})")
        return {"sha256": sha256_file(source), "version": package_version(source.name), "artifact": str(source),
                "strip_components": 0, "installable": False, "dependencies": wheel_dependencies(source), "requires_python": "",
                "lock": None}
    raise ValueError(f"fastapi_app_source_kind: {kind} has no controller-side artifact")


class SourceError(Exception):
    """A source that cannot be packaged; the message names the variable at fault."""


def package(kind: str, source: str, cache_dir: str, lockfile: str = "", project_dir: str = "") -> dict[str, object]:
    """describe(), with every failure a SourceError whose message starts with the variable's name."""
    path = Path(source).expanduser().resolve()
    if kind not in ("dir", "archive", "package"):
        raise SourceError(f"fastapi_app_source_kind: {kind} is not packaged on the controller (dir, archive, package)")
    try:
        return describe(kind, path, Path(cache_dir).expanduser(), lockfile, project_dir)
    except (OSError, tarfile.TarError, zipfile.BadZipFile, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        # Errors from reading the source do not say which setting they are about.
        raise SourceError(f"fastapi_app_source_path: cannot package {source}: {error}") from error
    except ValueError as error:
        # Our own messages start with the name of the Ansible variable at fault.
        raise SourceError(str(error)) from error


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, object]]:
        if len(terms) != 3:
            raise AnsibleLookupError(f"fastapi_app_source takes kind, source path and cache directory, not {terms!r}")
        try:
            return [package(*(str(term) for term in terms), lockfile=str(kwargs.get("lockfile", "")),
                            project_dir=str(kwargs.get("project_dir", "")))]
        except SourceError as error:
            raise AnsibleLookupError(str(error)) from error
