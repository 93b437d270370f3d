"""The repository is the Ansible collection of galaxy.yml (fastapi_ops.app): the built tarball holds
what the playbooks use and none of the test kit, it installs from the tarball and from a git URL
pinned to a commit, and the installed playbooks load from the installed collection alone. The role
calls its plugins by their full names, each of which plugins/ defines.

Every ansible command runs outside the checkout (no ansible.cfg, no roles_path) with
ANSIBLE_COLLECTIONS_PATH set to the install directory only and its own ANSIBLE_HOME, so nothing
but the installed copy can answer. That the installed deploy playbook also deploys is proven by
the Molecule `default` scenario, which converges through it (molecule/default/converge.yml).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from ansible.release import __version__ as ansible_version
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
NAMESPACE, NAME, VERSION = GALAXY["namespace"], GALAXY["name"], GALAXY["version"]
FQCN = f"{NAMESPACE}.{NAME}"
ROLE = ROOT / "roles" / "fastapi_app"
MODULES = sorted(path.stem for path in (ROOT / "plugins" / "modules").glob("*.py"))
LOOKUPS = sorted(path.stem for path in (ROOT / "plugins" / "lookup").glob("*.py"))

# What the playbooks and the role need at run time, relative to the collection root.
REQUIRED = [
    "roles/fastapi_app/tasks/main.yml",
    "roles/fastapi_app/meta/argument_specs.yml",
    "playbooks/deploy.yml",
    "playbooks/rollback.yml",
    "playbooks/fleet.yml",
    "playbooks/run.yml",
    "playbooks/status.yml",
    "playbooks/logs.yml",
    "playbooks/tasks/fleet_lb.yml",
    # playbooks/tasks/fleet_lb.yml renders it from `playbook_dir | dirname`.
    "templates/etc/nginx/sites-available/fastapi-fleet.conf.j2",
    "meta/runtime.yml",
    "README.md",
    "LICENSE",
    "CHANGELOG.rst",
    # The release history antsibull-changelog writes CHANGELOG.rst from (also read by the Ansible docs build).
    "changelogs/changelog.yaml",
    *(path.relative_to(ROOT).as_posix() for path in sorted((ROOT / "plugins").glob("*/*.py"))),
]
# The development and test kit: never in the collection (a path or any of its parents).
FORBIDDEN = {".git", ".venv", ".cache", ".ansible", ".pytest_cache", "__pycache__", "tests", "molecule", "benchmarks",
             "examples", "scripts", "tools", ".ci", ".config", "dist", "Makefile", "ansible.cfg", "requirements-dev.txt",
             "inventory/demo", "playbooks/collections", "changelogs/fragments", "changelogs/.plugin-cache.yaml"}
PLAYBOOKS = ["deploy", "fleet", "logs", "rollback", "run", "status"]


def tool(name: str) -> str:
    """The console script of this interpreter's environment (the pinned toolchain), else PATH's."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def isolated_env(work: Path, collections: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(ANSIBLE_HOME=str(work / "ansible-home"), ANSIBLE_COLLECTIONS_PATH=str(collections),
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    return env


def run(args: list[str], work: Path, collections: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=work, env=isolated_env(work, collections), capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


def install(source: str, work: Path) -> Path:
    """ansible-galaxy collection install SOURCE into WORK/collections; the installed collection's root."""
    collections = work / "collections"
    work.mkdir(parents=True, exist_ok=True)
    run([tool("ansible-galaxy"), "collection", "install", "--offline", "--force", "-p", str(collections), source],
        work, collections)
    return collections / "ansible_collections" / NAMESPACE / NAME


def files(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if not path.is_dir()}


def forbidden(paths: set[str]) -> list[str]:
    """The paths that are, or lie below, something of FORBIDDEN, or are compiled Python."""
    def parents(path: str) -> set[str]:
        parts = path.split("/")
        return {"/".join(parts[:end]) for end in range(1, len(parts) + 1)} | set(parts)
    return sorted(path for path in paths if parents(path) & FORBIDDEN or path.endswith(".pyc"))


def snapshot(dest: Path) -> tuple[Path, str]:
    """A git repository whose one commit is the checkout as it stands (tracked and untracked files
    git does not ignore), and that commit's id: what the next commit would hold, so the git URL
    install tests this tree and not an older HEAD."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    for relative in sorted({os.fsdecode(raw) for raw in listed if raw}):
        source, target = ROOT / relative, dest / relative
        if not os.path.lexists(source):  # deleted in the work tree, not yet in the index
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot of the work tree"]):
        subprocess.run(git + args, cwd=dest, capture_output=True, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=dest, capture_output=True, text=True, check=True)
    return dest, head.stdout.strip()


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("build")
    run([tool("ansible-galaxy"), "collection", "build", "--output-path", str(work / "dist"), str(ROOT)],
        work, work / "collections")
    built = list((work / "dist").glob("*.tar.gz"))
    assert len(built) == 1, built
    return built[0]


@pytest.fixture(scope="module")
def members(tarball: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tarball) as archive:
        return {member.name: member for member in archive.getmembers()}


@pytest.fixture(scope="module")
def installed(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install(str(tarball), tmp_path_factory.mktemp("tarball-install"))


def test_the_tarball_is_the_version_of_galaxy_yml(tarball: Path, installed: Path):
    assert tarball.name == f"{NAMESPACE}-{NAME}-{VERSION}.tar.gz"
    info = json.loads((installed / "MANIFEST.json").read_text())["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == (NAMESPACE, NAME, VERSION)
    assert info["license"] == ["MIT"]
    assert "MIT License" in (installed / "LICENSE").read_text()
    # antsibull-changelog released this version: in the history and in the generated changelog.
    assert VERSION in yaml.safe_load((installed / "changelogs" / "changelog.yaml").read_text())["releases"]
    assert f"\nv{VERSION}\n{'=' * len('v' + VERSION)}\n" in (installed / "CHANGELOG.rst").read_text()
    # The tested range: it holds the ansible-core these tests run with, and no later line.
    requires = SpecifierSet(yaml.safe_load((installed / "meta" / "runtime.yml").read_text())["requires_ansible"])
    assert Version(ansible_version).base_version in requires
    assert f"{Version(ansible_version).major}.{Version(ansible_version).minor + 1}.0" not in requires


def test_the_tarball_has_what_the_playbooks_use_and_no_test_kit(members: dict[str, tarfile.TarInfo]):
    regular = {name for name, member in members.items() if member.isfile()}
    assert [path for path in REQUIRED if path not in regular] == []
    assert forbidden(set(members)) == []
    # Links would point into the builder's checkout; nothing may land outside the install directory.
    assert sorted(name for name, member in members.items() if not (member.isfile() or member.isdir())) == []
    assert sorted(name for name in members if name.startswith("/") or ".." in name.split("/")) == []


def test_the_installed_collection_is_the_tarball(installed: Path, members: dict[str, tarfile.TarInfo]):
    assert files(installed) == {name for name, member in members.items() if member.isfile()}


def test_the_installed_playbooks_load_from_the_collection_alone(installed: Path):
    """Role, tasks files and modules resolve from the installed copy: no checkout, ansible.cfg or
    roles_path in reach (cwd and ANSIBLE_COLLECTIONS_PATH are the install's)."""
    shipped = sorted(path.stem for path in (installed / "playbooks").glob("*.yml"))
    assert shipped == PLAYBOOKS
    collections, work = installed.parents[2], installed.parents[3]
    result = run([tool("ansible-playbook"), "--syntax-check", *(f"{FQCN}.{stem}" for stem in shipped)],
                 work, collections)
    for stem in shipped:
        assert f"playbook: {installed / 'playbooks' / stem}.yml" in result.stdout


def test_every_module_of_the_installed_collection_has_its_documentation(installed: Path):
    """ansible-doc reads each module's DOCUMENTATION (also the ones that only document an action plugin)."""
    collections, work = installed.parents[2], installed.parents[3]
    for module in MODULES:
        result = run([tool("ansible-doc"), "--json", f"{FQCN}.{module}"], work, collections)
        documented = json.loads(result.stdout)[f"{FQCN}.{module}"]["doc"]
        assert documented["module"] == module and documented["short_description"], module
        assert documented["options"], module


def test_every_filter_and_lookup_of_the_installed_collection_has_its_documentation(installed: Path):
    """A filter's documentation is plugins/filter/<name>.yml beside the file that defines it; the
    lookup's is in its Python file. ansible-doc reads both, with examples and return values."""
    collections, work = installed.parents[2], installed.parents[3]
    for kind, names in (("filter", sorted(filters())), ("lookup", LOOKUPS)):
        result = run([tool("ansible-doc"), "-t", kind, "--json", *(f"{FQCN}.{name}" for name in names)], work, collections)
        documented = json.loads(result.stdout)
        assert sorted(documented) == [f"{FQCN}.{name}" for name in names], kind
        for name in names:
            entry = documented[f"{FQCN}.{name}"]
            assert entry["doc"]["name"] == name and entry["doc"]["short_description"] and entry["doc"]["options"], name
            assert entry["examples"] and entry["return"], name


def test_a_git_url_pinned_to_a_commit_installs_the_same_collection(installed: Path, tmp_path: Path):
    repository, commit = snapshot(tmp_path / "repository")
    from_git = install(f"git+file://{repository},{commit}", tmp_path / "git-install")
    info = json.loads((from_git / "MANIFEST.json").read_text())["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == (NAMESPACE, NAME, VERSION)
    assert files(from_git) == files(installed)


def test_the_checkout_is_the_collection_through_a_committed_link():
    """A fresh clone finds fastapi_ops.app in itself: the link is in git as a link (mode 120000),
    relative, and leads to the repository root."""
    link = Path("playbooks/collections/ansible_collections") / NAMESPACE / NAME
    staged = subprocess.run(["git", "ls-files", "-s", "--", str(link)], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split()
    assert staged[:1] == ["120000"], staged
    assert not os.path.isabs(os.readlink(ROOT / link))
    assert (ROOT / link).resolve() == ROOT


# --- the role calls its plugins by their full names ---

def filters() -> dict[str, str]:
    """Filter name -> the plugins/filter file that defines it (the keys of FilterModule.filters())."""
    found = {}
    for path in sorted((ROOT / "plugins" / "filter").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name == "filters":
                returned = next(child.value for child in ast.walk(node) if isinstance(child, ast.Return))
                found.update({key.value: path.name for key in returned.keys})
    return found


def role_texts() -> dict[str, str]:
    return {path.relative_to(ROOT).as_posix(): path.read_text() for path in sorted(ROLE.rglob("*"))
            if path.suffix in {".yml", ".j2"}}


def test_every_full_name_the_role_uses_is_a_plugin_of_the_collection():
    plugins = set(filters()) | set(MODULES) | set(LOOKUPS)
    # The playbooks' own filters (the fleet's progress report) count as used too.
    texts = list(role_texts().values()) + [path.read_text() for path in sorted((ROOT / "playbooks").rglob("*.yml"))]
    used = {name for text in texts for name in re.findall(rf"\b{re.escape(FQCN)}\.(\w+)", text)}
    assert used - plugins - {ROLE.name} == set()
    # Every module, filter and lookup is used by the role or a playbook, so none is shipped for nothing.
    assert plugins - used == set()


def test_the_role_uses_no_plugin_by_its_short_name():
    """A short name works nowhere any more: filter_plugins/ and library/ are gone from the role."""
    filter_use = re.compile(r"(?:\|\s*|(?:map|select|reject)\(\s*['\"])(" + "|".join(filters()) + r")\b")
    module_use = re.compile(r"^\s*(?:- )?(" + "|".join(MODULES) + r"):", re.MULTILINE)
    short = {path: filter_use.findall(text) + module_use.findall(text) for path, text in role_texts().items()
             if not path.startswith(("roles/fastapi_app/defaults/", "roles/fastapi_app/meta/"))}
    assert {path: names for path, names in short.items() if names} == {}
    assert not (ROLE / "library").exists() and not (ROLE / "filter_plugins").exists()
