"""Every lock form the tools write, read as the build host and the controller read it.

tests/unit/locks/ holds the verbatim output of pip-compile, uv, Poetry and PDM for one project
(tests/unit/locks/README.md: versions, commands, what is hard in each) and four minimal
corruptions of them. Each real one must parse to the project's resolution; each corrupt one must
fail naming its line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from modload import load

wh = load("fastapi_app_wheelhouse", "roles/fastapi_app/files/wheelhouse.py")
sa = load("fastapi_app_source_lookup", "plugins/lookup/fastapi_app_source.py")

LOCKS = Path(__file__).parent / "locks"
# The resolution every tool agrees on (Linux, CPython 3.11); universal locks add the win32 two.
LINUX = {
    "annotated-types": "0.8.0", "anyio": "4.16.0", "click": "8.5.1", "docopt": "0.6.2", "fastapi": "0.115.6",
    "h11": "0.16.0", "httptools": "0.9.0", "idna": "3.21", "netifaces": "0.11.0", "pydantic": "2.14.4",
    "pydantic-core": "2.50.5", "python-dotenv": "1.2.4", "pyyaml": "6.0.4", "starlette": "0.41.3",
    "typing-extensions": "4.16.0", "typing-inspection": "0.4.5", "uvicorn": "0.32.0", "uvloop": "0.23.0",
    "watchfiles": "1.3.0", "websockets": "17.4",
}
UNIVERSAL = {**LINUX, "colorama": "0.4.6", "pywin32": "312"}
# file: (the set, the local projects, the option lines, whether the extra is kept)
REAL = {
    "pip-compile.txt": (LINUX, [], [], True),
    "pip-compile-pyproject.txt": (LINUX, [], [], True),
    "pip-compile-index-options.txt": (LINUX, [], ["--extra-index-url file:///tmp/h-corpus/emptyindex", "--find-links /tmp/h-corpus/links"], True),
    "poetry-export.txt": (UNIVERSAL, [], [], False),
    "uv-export.txt": (UNIVERSAL, ["."], [], False),
    "uv-export-no-project.txt": (UNIVERSAL, [], [], False),
    "uv-pip-compile.txt": (LINUX, [], [], False),
    "uv-pip-compile-emit-index-url.txt": (LINUX, [], ["--index-url https://pypi.org/simple"], False),
    "pdm-export.txt": (UNIVERSAL, [], [], True),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_each_tools_output_reads_as_its_resolution(name: str) -> None:
    expected, local, options, extra = REAL[name]
    locked = wh.parse_requirements((LOCKS / name).read_text(), require_hashes=True)
    assert locked.names() == expected
    assert (locked.local, locked.options) == (local, options)
    uvicorn = next(entry for entry in locked.entries if wh.requirement_name(entry) == "uvicorn")
    assert uvicorn.startswith("uvicorn[standard]==0.32.0" if extra else "uvicorn==0.32.0")
    # Every entry keeps all its hashes; the win32-only ones keep their markers for pip to judge.
    assert all(wh.entry_hashes(entry) for entry in locked.entries)
    assert len(wh.entry_hashes(next(e for e in locked.entries if e.startswith("websockets==")))) == 154
    for entry in locked.entries:
        if wh.requirement_name(entry) in ("colorama", "pywin32"):
            assert "win32" in wh.marker(entry), entry
    # The resolver's constraints: no extras, no hashes, the markers kept.
    constraints = locked.constraints()
    assert "[standard]" not in constraints and "--hash" not in constraints
    assert len(constraints.splitlines()) == len(expected)


@pytest.mark.parametrize("name", sorted(REAL))
def test_the_controller_reads_the_serving_stack_of_each(tmp_path: Path, name: str) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "requirements.lock").write_bytes((LOCKS / name).read_bytes())
    lock = sa.describe("dir", source, tmp_path / "cache", lockfile="requirements.lock")["lock"]
    assert (lock["kind"], lock["serving"]) == ("requirements", {"uvicorn": "0.32.0"})


def line_of(name: str, pattern: str) -> int:
    lines = (LOCKS / name).read_text().splitlines()
    return next(number for number, line in enumerate(lines, start=1) if re.match(pattern, line))


@pytest.mark.parametrize(
    ("name", "line", "message"),
    [
        ("bad-unpinned.txt", 24, r"the lock does not pin an exact version \(name==version\): 'fastapi>=0.115.6 --hash"),
        ("bad-missing-hash.txt", 21, r"the lock has no sha256 --hash for 'docopt==0.6.2'"),
        ("bad-include.txt", 4, r"'-r other.txt': a lock takes no -r line"),
        ("bad-dangling-continuation.txt", None, r"the lock ends inside a continued line"),
    ],
)
def test_a_malformed_lock_fails_naming_its_line(tmp_path: Path, name: str, line: int | None, message: str) -> None:
    # A dangling continuation is reported where its entry starts (websockets, the last one).
    number = line or line_of(name, r"^websockets==")
    with pytest.raises(wh.BuildError, match=f"^line {number}: {message}"):
        wh.parse_requirements((LOCKS / name).read_text(), require_hashes=True)
    source = tmp_path / "src"
    source.mkdir()
    (source / "requirements.lock").write_bytes((LOCKS / name).read_bytes())
    with pytest.raises(ValueError, match=f"^fastapi_app_lockfile: requirements.lock: line {number}: {message}"):
        sa.describe("dir", source, tmp_path / "cache", lockfile="requirements.lock")
