"""The tar command of the unpack action (plugins/action/fastapi_app_unpack.py), run on real archives,
from a file (a transfer) and from stdin (sent with the command)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from modload import load

unpack = load("fastapi_app_unpack_action", "plugins/action/fastapi_app_unpack.py")


def archive(path: Path, names: dict[str, bytes], compression: str) -> None:
    with tarfile.open(path, f"w:{compression}") as tar:
        for name, data in names.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o640, 4321, 4321
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("route", ["file", "stdin"])
@pytest.mark.parametrize(("compression", "strip", "top"), [("gz", 1, "hello_app-1.0/"), ("xz", 0, ""), ("bz2", 0, ""), ("", 0, "")])
def test_unpacks_any_compression_stripping_the_top_directory(tmp_path: Path, compression: str, strip: int, top: str, route: str) -> None:
    src = tmp_path / "src.tar"
    archive(src, {f"{top}pyproject.toml": b"[project]\n", f"{top}src/app/main.py": b"app = 1\n"}, compression)
    dest = tmp_path / "dest"
    dest.mkdir()
    data = src.read_bytes()
    if route == "file":
        subprocess.run(unpack.tar_argv(str(src), str(dest), strip), check=True)
    else:
        subprocess.run(unpack.tar_argv("-", str(dest), strip, data[:8]), input=data, check=True)
    assert (dest / "pyproject.toml").read_bytes() == b"[project]\n"
    assert (dest / "src/app/main.py").read_bytes() == b"app = 1\n"
    main = (dest / "src/app/main.py").stat()
    # The archive's owner is not kept; its modes are.
    assert (main.st_uid, oct(main.st_mode)[-3:]) == (os.getuid(), "640")


def test_a_broken_archive_fails(tmp_path: Path) -> None:
    src = tmp_path / "broken.tar.gz"
    src.write_bytes(b"not an archive")
    (tmp_path / "dest").mkdir()
    assert subprocess.run(unpack.tar_argv(str(src), str(tmp_path / "dest"), 0), check=False, capture_output=True).returncode != 0


def test_a_broken_archive_on_stdin_fails(tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    data = b"\x1f\x8bnot gzip at all"
    argv = unpack.tar_argv("-", str(tmp_path / "dest"), 0, data[:8])
    assert "--gzip" in argv
    assert subprocess.run(argv, input=data, check=False, capture_output=True).returncode != 0
