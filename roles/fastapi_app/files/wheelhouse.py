#!/usr/bin/env python3
"""Turn an app's lockfile into the exact set of wheels a release installs: its wheelhouse.

Runs once per release on the build host (the first host of the run, or fastapi_app_build_host),
with the Python the app hosts run. Every host then installs from these files, offline, so a
release id means the same bytes on every host of a fleet. The locked set comes from
  uv.lock       `uv export --locked` (fails with uv's own message when the lock is stale),
  pylock.toml   PEP 751, read here,
  requirements  a pip requirements file in which every requirement carries --hash.
The role's serving stack comes from the lock where the lock has it; what the lock lacks is
resolved against the locked versions as constraints, so no locked version ever changes.
The dependency wheels are kept on the build host by what decides them, so a release that only
changes the app's code builds just the app's wheel.
Prints one JSON object: python, machine, locked, added, from_lock, dependencies (built or
reused), wheels, local (the local projects' wheels) and environment (tasks/build.yml copies the
serving virtualenv when it is unchanged).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
COMMENT = re.compile(r"(^|\s)#.*$")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


class BuildError(Exception):
    """A failure whose message says what to change."""


def normalize(name: str) -> str:
    """PEP 503 name: the form in which two spellings of a project compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = NAME.match(requirement)
    if not match:
        raise BuildError(f"not a requirement: {requirement!r}")
    return normalize(match.group(1))


@dataclass
class LockedSet:
    """Requirement entries (continuation lines joined) and the local projects the lock names."""

    entries: list[str] = field(default_factory=list)
    local: list[str] = field(default_factory=list)

    def names(self) -> dict[str, str]:
        """Normalized name -> locked version."""
        pins = {}
        for entry in self.entries:
            match = PIN.match(entry)
            if match:
                pins[normalize(match.group(1))] = match.group(2)
        return pins

    def constraints(self) -> str:
        """The pins without hashes: constraints for resolving what the lock lacks."""
        return "".join(entry.split(" --hash")[0].rstrip(" \\") + "\n" for entry in self.entries)


def parse_requirements(text: str, require_hashes: bool) -> LockedSet:
    """A requirements file in the form `uv export` and `pip-compile --generate-hashes` write."""
    locked = LockedSet()
    logical: list[str] = []
    current: list[str] = []
    for raw in text.splitlines():
        line = COMMENT.sub("", raw).strip()
        continued = line.endswith("\\")
        line = line.removesuffix("\\").strip()
        if line:
            current.append(line)
        if not continued and current:
            logical.append(" ".join(current))
            current = []
    if current:
        logical.append(" ".join(current))
    for entry in logical:
        if entry.startswith(("-e ", "--editable ")):
            locked.local.append(entry.split(None, 1)[1])
        elif entry.startswith((".", "/", "file:")):
            locked.local.append(entry.split(" ;")[0].split(" --hash")[0])
        elif entry.startswith("-"):
            raise BuildError(f"unsupported option line in the lock: {entry!r}")
        else:
            if not PIN.match(entry):
                raise BuildError(f"the lock does not pin an exact version: {entry!r}")
            if require_hashes and "--hash=" not in entry:
                raise BuildError(f"the lock has no --hash for {entry!r}: lock it with hashes (pip-compile --generate-hashes, uv pip compile --generate-hashes)")
            locked.entries.append(entry)
    return locked


def parse_pylock(text: str) -> LockedSet:
    """PEP 751: every package with a version and hashes becomes a pin; directories are local projects."""
    data = tomllib.loads(text)
    locked = LockedSet()
    for package in data.get("packages", []):
        name = package["name"]
        marker = f" ; {package['marker']}" if package.get("marker") else ""
        if "directory" in package:
            locked.local.append(package["directory"]["path"])
            continue
        hashes = [archive["hashes"]["sha256"] for archive in package.get("wheels", []) if "sha256" in archive.get("hashes", {})]
        sdist = package.get("sdist", {})
        if "sha256" in sdist.get("hashes", {}):
            hashes.append(sdist["hashes"]["sha256"])
        if "version" not in package or not hashes:
            raise BuildError(f"pylock.toml: package {name} has no version or no sha256 hashes of wheels or sdist")
        locked.entries.append(f"{name}=={package['version']}{marker} " + " ".join(f"--hash=sha256:{h}" for h in hashes))
    return locked


def serving_plan(locked: LockedSet, runtime: list[str]) -> tuple[list[str], list[str]]:
    """(the runtime packages the lock already has, the ones to add)."""
    names = locked.names()
    from_lock = [f"{requirement_name(r)}=={names[requirement_name(r)]}" for r in runtime if requirement_name(r) in names]
    add = [r for r in runtime if requirement_name(r) not in names]
    return from_lock, add


def wheel_pin(path: Path) -> tuple[str, str]:
    """(normalized name, version) from a wheel file name (name-version-...-tags.whl)."""
    parts = path.name[: -len(".whl")].split("-")
    if len(parts) < 5:
        raise BuildError(f"not a wheel file name: {path.name}")
    return normalize(parts[0]), parts[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def install_lines(hashes: dict[Path, str]) -> str:
    """One pin with the wheel's own hash per wheel: hosts install these files and no others."""
    lines = []
    for wheel in sorted(hashes, key=wheel_pin):
        name, version = wheel_pin(wheel)
        lines.append(f"{name}=={version} --hash=sha256:{hashes[wheel]}\n")
    return "".join(lines)


def local_projects(src: Path, project_dir: str, local: list[str]) -> list[str]:
    """The app's project first, then the other local projects the lock names (uv workspace members).

    Paths are relative to the source; one that leaves it (a lock exported from another checkout)
    cannot be built on the build host.
    """
    projects = [project_dir.strip("/") or "."]
    for path in local:
        inside = (src / path.removeprefix("file://")).resolve()
        if not inside.is_relative_to(src.resolve()):
            raise BuildError(f"the lock names the local project {path}, outside the source: export the lock from the project's own directory")
        projects.append(os.path.relpath(inside, src.resolve()))
    return list(dict.fromkeys(projects))


def run(argv: list[str], cwd: Path | None = None, what: str = "") -> str:
    # uv trusts the host's certificate store, as apt and Debian's pip do (a company proxy's CA
    # installed on the host then works), and never fetches an interpreter of its own.
    env = {**os.environ, "UV_SYSTEM_CERTS": "1", "UV_PYTHON_DOWNLOADS": "never", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(f"{what or argv[0]} failed (exit {result.returncode}): {' '.join(argv)}\n{result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def locked_set(args: argparse.Namespace) -> LockedSet:
    lock = args.src / args.lock
    if args.kind == "uv":
        project = tomllib.loads((args.src / args.project_dir / "pyproject.toml").read_text())
        package = ["--package", project["project"]["name"]] if args.project_dir not in ("", ".") else []
        text = run([str(args.uv), "export", "--locked", "--no-dev", "--no-editable", "--format", "requirements.txt",
                    "--no-header", "--no-annotate", "--python", str(args.python), *package],
                   cwd=lock.parent, what="uv export (fastapi_app_lockfile " + args.lock + ")")
        return parse_requirements(text, require_hashes=True)
    if args.kind == "pylock":
        return parse_pylock(lock.read_text())
    return parse_requirements(lock.read_text(), require_hashes=True)


def dependency_key(locked: LockedSet, runtime: list[str], python: str, uv_spec: str) -> str:
    """What decides a release's dependency wheels: the locked set, the serving stack, the
    interpreter and machine they are built for, and the uv that ships with them."""
    digest = hashlib.sha256()
    for part in [*locked.entries, "", *runtime, "", python, platform.machine(), uv_spec]:
        digest.update(part.encode() + b"\n")
    return digest.hexdigest()[:20]


def environment_key(hashes: dict[Path, str], local: dict[Path, str]) -> str:
    """What a virtualenv installed from these wheels holds besides the local projects' code: the
    other wheels' bytes and the local projects' names. A release with the same key can start from
    a copy of the serving release's virtualenv and install only its local projects again."""
    digest = hashlib.sha256()
    for wheel in sorted(hashes, key=lambda path: path.name):
        digest.update((f"local {wheel_pin(wheel)[0]}" if wheel in local else f"{wheel.name} {hashes[wheel]}").encode() + b"\n")
    return digest.hexdigest()[:16]


def link_into_file(path: Path, dest: Path) -> None:
    """A hard link where the file system allows, a copy elsewhere."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(path, dest)
    except OSError:
        shutil.copy2(path, dest)


def link_into(source: Path, dest: Path) -> None:
    """Every file of source into dest."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        link_into_file(path, dest / path.name)


def entry_hashes(entry: str) -> list[str]:
    """The sha256 digests a lock entry allows."""
    return re.findall(r"--hash=sha256:([0-9a-f]{64})", entry)


def complete_sets(store: Path) -> list[Path]:
    """The dependency sets kept on this host whose build finished (set.json is written last), by name."""
    return [marker.parent for marker in sorted(store.glob("*/set.json"))]


def kept_wheels(store: Path) -> dict[str, Path]:
    """sha256 -> a wheel of a complete dependency set kept on this host (hashes.json of each set).

    A new set takes from them every wheel whose hash its lock allows: a dependency change
    downloads only the packages that changed."""
    found: dict[str, Path] = {}
    for kept in complete_sets(store):
        if (kept / "hashes.json").exists():
            for name, digest in json.loads((kept / "hashes.json").read_text()).items():
                found.setdefault(digest, kept / "wheels" / name)
    return found


def prune_sets(store: Path, keep: int) -> None:
    """The newest `keep` dependency sets stay (a set is touched when used), older ones go."""
    sets = sorted(complete_sets(store), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in sets[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def dependency_set(args: argparse.Namespace, locked: LockedSet, python: str) -> tuple[Path, dict[str, object]]:
    """The directory with the dependency wheels (wheels/, the uv wheel in tools/) and set.json.

    Built once per key and kept on the build host: a release that only changes the app's code
    reuses them and downloads nothing. A set appears under its key only when complete (renamed
    from a temporary directory), so an interrupted or concurrent build never leaves half of one.
    """
    store = args.cache / "wheelsets"
    done = store / dependency_key(locked, args.runtime, python, args.uv_spec)
    if (done / "set.json").exists():
        os.utime(done)
        return done, {**json.loads((done / "set.json").read_text()), "dependencies": "reused"}
    work = store / f"{done.name}.{os.getpid()}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    (work / "wheels").mkdir(parents=True)
    from_lock, add = serving_plan(locked, args.runtime)
    added: list[str] = []
    wanted = locked.entries[:]
    if add:
        (work / "serving.in").write_text("".join(f"{r}\n" for r in add))
        (work / "locked-constraints.txt").write_text(locked.constraints())
        compiled = run([str(args.uv), "pip", "compile", str(work / "serving.in"), "--constraint", str(work / "locked-constraints.txt"),
                        "--generate-hashes", "--no-header", "--no-annotate", "--python", str(args.python), "--cache-dir", str(args.cache / "uv")],
                       what="adding the serving stack (fastapi_app_runtime_packages) to the locked versions")
        extra = parse_requirements(compiled, require_hashes=True)
        locked_names = locked.names()
        for entry in extra.entries:
            if requirement_name(entry) not in locked_names:
                wanted.append(entry)
                added.append(entry.split(" ")[0])
    kept = kept_wheels(store)
    missing = []
    for entry in wanted:
        wheel = next((kept[digest] for digest in entry_hashes(entry) if digest in kept), None)
        # A marker is pip's to judge: such an entry always goes to pip.
        if wheel is None or " ; " in entry.split(" --hash")[0]:
            missing.append(entry)
        else:
            link_into_file(wheel, work / "wheels" / wheel.name)
    if missing:
        (work / "wanted.txt").write_text("".join(f"{entry}\n" for entry in missing))
        run([str(args.pip), "wheel", "--no-input", "--require-hashes", "--no-deps", "--cache-dir", str(args.cache / "pip"),
             "--wheel-dir", str(work / "wheels"), "--requirement", str(work / "wanted.txt")], what="pip wheel (downloading the locked set)")
    tools = [wheel for kept in complete_sets(store) for wheel in sorted((kept / "tools").glob(f"{args.uv_spec.replace('==', '-')}-*.whl"))]
    if tools:
        link_into_file(tools[0], work / "tools" / tools[0].name)
    else:
        run([str(args.pip), "download", "--no-input", "--no-deps", "--only-binary", ":all:", "--cache-dir", str(args.cache / "pip"),
             "--dest", str(work / "tools"), args.uv_spec], what="pip download " + args.uv_spec)
    (work / "hashes.json").write_text(json.dumps({wheel.name: sha256(wheel) for wheel in (work / "wheels").glob("*.whl")}, sort_keys=True))
    info = {"locked": len(locked.entries), "added": added, "from_lock": from_lock, "downloaded": len(missing)}
    (work / "set.json").write_text(json.dumps(info, sort_keys=True) + "\n")
    try:
        work.rename(done)
    except OSError:  # another build completed the same set first: use that one
        shutil.rmtree(work, ignore_errors=True)
    prune_sets(store, args.keep_sets)
    return done, {**info, "dependencies": "built"}


def build(args: argparse.Namespace) -> dict[str, object]:
    out: Path = args.out
    shutil.rmtree(out, ignore_errors=True)
    locked = locked_set(args)
    python = run([str(args.python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).strip()
    dependencies, info = dependency_set(args, locked, python)
    link_into(dependencies / "wheels", out / "wheels")
    link_into(dependencies / "tools", out / "tools")
    for project in local_projects(args.src, args.project_dir, locked.local):
        run([str(args.uv), "build", "--wheel", "--out-dir", str(out / "wheels"), "--python", str(args.python),
             "--cache-dir", str(args.cache / "uv"), str(args.src / project)], what=f"uv build of {project}")
    hashes = {wheel: sha256(wheel) for wheel in sorted((out / "wheels").glob("*.whl"))}
    shared = {path.name for path in (dependencies / "wheels").iterdir()}
    local = {wheel: digest for wheel, digest in hashes.items() if wheel.name not in shared}
    (out / "install.txt").write_text(install_lines(hashes))
    (out / "install-local.txt").write_text(install_lines(local))
    manifest = {**info, "python": python, "machine": platform.machine(), "lock": args.lock,
                "wheels": {wheel.name: digest for wheel, digest in hashes.items()},
                "local": sorted(wheel.name for wheel in local), "environment": environment_key(hashes, local)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    if args.tar:
        pack(out, args.tar)
    return manifest


def pack(out: Path, tar: Path) -> None:
    """The bundle that travels through the controller to the other hosts: the output as one tar."""
    with tarfile.open(tar, "w") as bundle:
        for name in ["manifest.json", "install.txt", "install-local.txt", "wheels", "tools"]:
            bundle.add(out / name, arcname=name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["uv", "pylock", "requirements"], required=True)
    parser.add_argument("--src", type=Path, required=True, help="the unpacked source (workspace root for a uv workspace)")
    parser.add_argument("--lock", required=True, help="the lockfile, relative to --src")
    parser.add_argument("--project-dir", default="", help="the app's project, relative to --src")
    parser.add_argument("--runtime", action="append", default=[], help="a serving-stack requirement")
    parser.add_argument("--python", type=Path, required=True)
    parser.add_argument("--uv", type=Path, required=True)
    parser.add_argument("--uv-spec", required=True)
    parser.add_argument("--pip", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tar", type=Path, help="also pack the output into this tar")
    parser.add_argument("--keep-sets", type=int, default=5, help="dependency sets kept in CACHE/wheelsets")
    args = parser.parse_args(argv)
    try:
        manifest = build(args)
    except (BuildError, OSError, KeyError, tomllib.TOMLDecodeError) as error:
        print(f"fastapi_app_lockfile: {error}", file=sys.stderr)
        return 1
    print(json.dumps(manifest, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
