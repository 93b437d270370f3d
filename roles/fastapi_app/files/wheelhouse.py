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
# name[extras]==version, then an optional "; marker" and the per-requirement --hash options.
PIN = re.compile(r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?P<extras>\[[^\]]*\])?\s*==\s*(?P<version>[^\s;\\,]+)"
                 r"\s*(?:;(?P<marker>.*?))?\s*(?P<hashes>(?:--hash[= ]\S+\s*)*)$")
HASH = re.compile(r"--hash[= ](?:sha256:)?([0-9a-f]{64})\b")
# pip options of a requirements file that only say where the files come from (the hashes still
# decide which files are taken): honoured on the build host. uv and pip-compile write the first.
SOURCE_OPTIONS = ("--index-url", "-i", "--extra-index-url", "--trusted-host", "--find-links", "-f",
                  "--no-binary", "--only-binary", "--prefer-binary", "--pre")
EDITABLE = ("-e ", "--editable ", "--editable=")


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
    """Requirement entries (continuation lines joined), the local projects the lock names and the
    pip options that say where the files come from."""

    entries: list[str] = field(default_factory=list)
    local: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    def names(self) -> dict[str, str]:
        """Normalized name -> locked version."""
        pins = {}
        for entry in self.entries:
            match = PIN.match(entry)
            if match:
                pins[normalize(match.group("name"))] = match.group("version")
        return pins

    def constraints(self) -> str:
        """The pins without extras and hashes: constraints for resolving what the lock lacks."""
        lines = []
        for entry in self.entries:
            match = PIN.match(entry)
            if match:
                marker = f" ; {match.group('marker').strip()}" if match.group("marker") else ""
                lines.append(f"{match.group('name')}=={match.group('version')}{marker}\n")
        return "".join(lines)


def marker(entry: str) -> str:
    """The environment marker of a lock entry, "" without one."""
    match = PIN.match(entry)
    return (match.group("marker") or "").strip() if match else ""


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, the line with its continuations joined and comments removed)."""
    logical: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = COMMENT.sub("", raw).strip()
        continued = line.endswith("\\")
        line = line.removesuffix("\\").strip()
        if line and not current:
            start = number
        if line:
            current.append(line)
        if not continued and current:
            logical.append((start, " ".join(current)))
            current = []
    if current:
        raise BuildError(f"line {start}: the lock ends inside a continued line (a trailing '\\'): {' '.join(current)!r}")
    return logical


def parse_requirements(text: str, require_hashes: bool) -> LockedSet:
    """A requirements lock in any form pip-compile, uv, poetry export and pdm export write:
    extras, environment markers, continuation lines, several hashes, comments, index options.
    Local projects (`.`, `-e ./lib`) are kept apart: they are built from the source."""
    locked = LockedSet()
    for number, entry in logical_lines(text):
        if entry.startswith(EDITABLE):
            locked.local.append(re.split(r"[ =]", entry, maxsplit=1)[1].strip().split(" ;")[0].split(" --hash")[0])
        elif entry.startswith((".", "/", "file:")):
            locked.local.append(entry.split(" ;")[0].split(" --hash")[0])
        elif entry.startswith("-"):
            option = re.split(r"[ =]", entry, maxsplit=1)[0]
            if option not in SOURCE_OPTIONS:
                raise BuildError(f"line {number}: {entry!r}: a lock takes no {option} line (pip's index options are "
                                 f"honoured: {', '.join(SOURCE_OPTIONS[:4])}...); write every requirement into the one file")
            locked.options.append(entry)
        else:
            match = PIN.match(entry)
            if not match:
                raise BuildError(f"line {number}: the lock does not pin an exact version (name==version): {entry!r}")
            if require_hashes and not HASH.search(match.group("hashes") or ""):
                raise BuildError(f"line {number}: the lock has no sha256 --hash for {entry!r}: lock it with hashes "
                                 "(pip-compile --generate-hashes, uv export, poetry export)")
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
    for part in [*locked.options, *locked.entries, "", *runtime, "", python, platform.machine(), uv_spec]:
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


def index_arguments(options: list[str]) -> list[str]:
    """The lock's index options as uv pip compile takes them."""
    argv: list[str] = []
    for option in options:
        name, value = (option.replace("=", " ", 1).split(" ", 1) + [""])[:2]
        if name in ("--index-url", "-i"):
            argv += ["--index-url", value.strip()]
        elif name == "--extra-index-url":
            argv += ["--extra-index-url", value.strip()]
    return argv


def serving_additions(args: argparse.Namespace, work: Path, locked: LockedSet, add: list[str]) -> LockedSet:
    """The serving packages the lock lacks, resolved with every locked version as a constraint.

    The role's pins first; when they do not go with the locked versions (an app that locks an
    older uvicorn than the pinned uvicorn-worker needs), the same packages within the range the
    role's worker supports (--runtime-range), so the app's locked versions win."""
    (work / "locked-constraints.txt").write_text(locked.constraints())
    ranges = dict(item.split("=", 1) for item in args.runtime_range)
    attempts = [add]
    if ranges:
        attempts.append([within_range(requirement, ranges) for requirement in add])
    failure = ""
    for requirements in attempts:
        (work / "serving.in").write_text("".join(f"{r}\n" for r in requirements))
        try:
            compiled = run([str(args.uv), "pip", "compile", str(work / "serving.in"), "--constraint", str(work / "locked-constraints.txt"),
                            "--generate-hashes", "--no-header", "--no-annotate", "--python", str(args.python),
                            "--cache-dir", str(args.cache / "uv"), *index_arguments(locked.options)],
                           what="adding the serving stack (fastapi_app_runtime_packages) to the locked versions")
        except BuildError as error:
            failure = str(error)
            continue
        return parse_requirements(compiled, require_hashes=True)
    pinned = {name: version for name, version in locked.names().items() if name in ranges}
    raise BuildError(f"the serving stack ({', '.join(add)}) cannot be added to the lock's versions "
                     f"{', '.join(f'{n}=={v}' for n, v in pinned.items()) or ''} within the range the role supports "
                     f"({', '.join(f'{n}{r}' for n, r in ranges.items())}): lock versions inside it, "
                     f"or add the serving packages to the app's lock yourself\n{failure}")


def within_range(requirement: str, ranges: dict[str, str]) -> str:
    """uvicorn[standard]==0.54.0 -> uvicorn[standard]>=0.30.0,<0.55 (the range of its name)."""
    match = re.match(r"^([A-Za-z0-9._-]+)(\[[^\]]*\])?", requirement)
    assert match is not None
    name = normalize(match.group(1))
    return f"{match.group(1)}{match.group(2) or ''}{ranges[name]}" if name in ranges else requirement


def build_failure(output: str, missing: list[str]) -> str:
    """One line naming the package whose wheel could not be built, its version and the cause."""
    failed = re.findall(r"Failed (?:building wheel for|to build) ([A-Za-z0-9._-]+)", output)
    if not failed:
        return ""
    name = normalize(failed[0])
    version = next((m.group("version") for m in map(PIN.match, missing) if m and normalize(m.group("name")) == name), "?")
    causes = [line.strip() for line in output.splitlines()
              if re.search(r"(fatal error:|error: (?!subprocess-exited-with-error|metadata-generation-failed|"
                           r"legacy-install-failure|failed-wheel-build-for-install)|No such file or directory|"
                           r"can't find Rust compiler|command '.*' failed)", line)]
    cause = causes[0] if causes else "see the build's output below"
    return (f"could not build a wheel for {name}=={version} from its sdist: {cause}. A compiler, headers or a "
            "toolchain it needs go into fastapi_app_build_packages (Debian packages for the build host, e.g. "
            "gcc, python3-dev, libpq-dev); or lock a version that has a wheel for this Python and machine")


def build_wheels(args: argparse.Namespace, work: Path, missing: list[str]) -> list[str]:
    """pip wheel of the entries not kept on this host: downloads wheels, builds sdists.

    Each sdist is built in an isolated PEP 517 environment with a current build backend, also
    an old one with only a setup.py (Debian's pip would otherwise run `setup.py bdist_wheel`
    with the system's setuptools and no `wheel`). Returns the names of the packages built from
    their sdists."""
    try:
        output = run([str(args.pip), "wheel", "--no-input", "--require-hashes", "--no-deps", "--use-pep517",
                      "--cache-dir", str(args.cache / "pip"), "--wheel-dir", str(work / "wheels"),
                      "--requirement", str(work / "wanted.txt")], what="pip wheel (downloading the locked set)")
    except BuildError as error:
        named = build_failure(str(error), missing)
        raise BuildError(f"{named}\n{error}" if named else str(error)) from None
    return sorted({normalize(name) for name in re.findall(r"Created wheel for ([A-Za-z0-9._-]+):", output)})


def dependency_set(args: argparse.Namespace, locked: LockedSet, python: str) -> tuple[Path, dict[str, object]]:
    """The directory with the dependency wheels (wheels/, the uv wheel in tools/) and set.json.

    Built once per key and kept on the build host: a release that only changes the app's code
    reuses them and downloads nothing. A set appears under its key only when complete (renamed
    from a temporary directory), so an interrupted or concurrent build never leaves half of one.
    """
    store = args.cache / "wheelsets"
    done = store / dependency_key(locked, [*args.runtime, *args.runtime_range], python, args.uv_spec)
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
        extra = serving_additions(args, work, locked, add)
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
        if wheel is None or marker(entry):
            missing.append(entry)
        else:
            link_into_file(wheel, work / "wheels" / wheel.name)
    from_source: list[str] = []
    if missing:
        (work / "wanted.txt").write_text("".join(f"{line}\n" for line in [*locked.options, *missing]))
        from_source = build_wheels(args, work, missing)
    tools = [wheel for kept in complete_sets(store) for wheel in sorted((kept / "tools").glob(f"{args.uv_spec.replace('==', '-')}-*.whl"))]
    if tools:
        link_into_file(tools[0], work / "tools" / tools[0].name)
    else:
        run([str(args.pip), "download", "--no-input", "--no-deps", "--only-binary", ":all:", "--cache-dir", str(args.cache / "pip"),
             "--dest", str(work / "tools"), args.uv_spec], what="pip download " + args.uv_spec)
    (work / "hashes.json").write_text(json.dumps({wheel.name: sha256(wheel) for wheel in (work / "wheels").glob("*.whl")}, sort_keys=True))
    info = {"locked": len(locked.entries), "added": added, "from_lock": from_lock, "downloaded": len(missing),
            "built_from_source": from_source}
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
    parser.add_argument("--runtime-range", action="append", default=[],
                        help="NAME=SPECIFIER: the versions of a serving package the role supports, e.g. uvicorn=>=0.30,<0.55")
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
