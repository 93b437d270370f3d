#!/usr/bin/env python3
"""Turn a controller-side app source into one content-addressed artifact.

Runs on the controller (delegate_to: localhost, run_once) so that every host of a play gets the
same bytes and the same release id, and so that a directory is shipped as one archive instead
of file by file. Prints one JSON object: sha256, version, artifact (path), strip_components and
dependencies: the app's declared requirements when they are static (pyproject.toml's [project]
table, a wheel's metadata), else null. Equal dependencies let a release reuse the virtualenv of
the one before it.
"""

from __future__ import annotations

import argparse
import email.parser
import gzip
import hashlib
import io
import json
import os
import re
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

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


def pyproject_version(root: Path) -> str:
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return ""
    with pyproject.open("rb") as handle:
        data = tomllib.load(handle)
    version = data.get("project", {}).get("version", "")
    return version if isinstance(version, str) else ""


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


def archive_pyproject(path: Path, strip_components: int) -> bytes | None:
    """pyproject.toml at the top of a tar archive (after strip_components), if any."""
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            parts = member.name.removeprefix("./").split("/")
            if parts[strip_components:] == ["pyproject.toml"] and member.isfile():
                handle = tar.extractfile(member)
                return handle.read() if handle else None
    return None


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


def describe(kind: str, source: Path, cache_dir: Path) -> dict[str, object]:
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
        pyproject = source / "pyproject.toml"
        return {"sha256": sha, "version": pyproject_version(source), "artifact": str(artifact),
                "strip_components": 0,
                "dependencies": pyproject_dependencies(pyproject.read_bytes() if pyproject.is_file() else None)}
    if not source.is_file():
        raise ValueError(f"fastapi_app_source_path: {source} is not a file on the controller")
    if kind == "archive":
        if not source.name.endswith(TAR_SUFFIXES):
            raise ValueError(f"fastapi_app_source_path: {source.name} is not a tar archive ({', '.join(TAR_SUFFIXES)})")
        strip = tar_strip_components(source)
        return {"sha256": sha256_file(source), "version": "", "artifact": str(source),
                "strip_components": strip, "dependencies": pyproject_dependencies(archive_pyproject(source, strip))}
    if kind == "package":
        if not source.name.endswith(PACKAGE_SUFFIXES):
            raise ValueError(f"fastapi_app_source_path: {source.name} is not a wheel or sdist ({', '.join(PACKAGE_SUFFIXES)})")
        return {"sha256": sha256_file(source), "version": package_version(source.name),
                "artifact": str(source), "strip_components": 0, "dependencies": wheel_dependencies(source)}
    raise ValueError(f"fastapi_app_source_kind: {kind} has no controller-side artifact")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["dir", "archive", "package"])
    parser.add_argument("source", type=Path)
    parser.add_argument("cache_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        result = describe(args.kind, args.source.expanduser().resolve(), args.cache_dir)
    except (OSError, tarfile.TarError, zipfile.BadZipFile, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        # Errors from reading the source do not say which setting they are about.
        print(f"fastapi_app_source_path: cannot package {args.source}: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        # Our own messages start with the name of the Ansible variable at fault.
        print(error, file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
