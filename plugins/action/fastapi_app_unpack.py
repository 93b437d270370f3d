"""Unpack a tar archive from the controller on the host: the archive goes to tar's stdin in the
one round trip that runs it (plugins/plugin_utils/host_command.py). An archive over STDIN_LIMIT
bytes, or a connection that does not pipeline, takes a file transfer first.

ansible.builtin.unarchive also stats the destination with a module run and has tar compare the
archive with it before it unpacks: about 1.2-1.9 s over a container connection against 0.5 s
with a transfer and a module run, and about 0.1 s through stdin. The role unpacks only into
directories it has just created, so there is nothing to compare.
"""

from __future__ import annotations

import os
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.fastapi_ops.app.plugins.plugin_utils import host_command

# A source archive is usually a few hundred KiB; a fleet's wheel bundle can be tens of MiB, held in
# memory once per fork when sent through stdin.
STDIN_LIMIT = 16 * 1024 * 1024


# GNU tar tells a file's compression by itself, not a stream's: on stdin it is named by its magic.
MAGIC = {b"\x1f\x8b": "--gzip", b"\xfd7zXZ\x00": "--xz", b"BZh": "--bzip2", b"\x28\xb5\x2f\xfd": "--zstd"}


def tar_argv(archive: str, dest: str, strip_components: int, head: bytes = b"") -> list[str]:
    """Unpack `archive` (a path, or "-" for stdin whose first bytes are `head`); the files belong to
    the user that unpacks them."""
    compression = [flag for magic, flag in MAGIC.items() if archive == "-" and head.startswith(magic)]
    return ["tar", "-x", *compression, "-f", archive, "-C", dest, "--no-same-owner", f"--strip-components={strip_components}"]


class ActionModule(ActionBase):
    # The temporary directory is made only for a transfer.
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("src", "dest", "strip_components"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        if not args.get("src") or not args.get("dest"):
            raise AnsibleActionFail("fastapi_app_unpack needs src (an archive on the controller) and dest (a directory on the host)")
        strip = int(args.get("strip_components", 0))
        if strip not in (0, 1):
            raise AnsibleActionFail(f"strip_components must be 0 or 1, not {strip}")
        local = self._find_needle("files", args["src"])
        if self._task.check_mode:
            return {**result, "changed": True, "msg": f"would unpack {local} into {args['dest']}"}
        if host_command.can_send_stdin(self) and os.path.getsize(local) <= STDIN_LIMIT:
            with open(local, "rb") as archive:
                data = archive.read()
            unpacked = host_command.run(self, tar_argv("-", args["dest"], strip, data[:8]), data)
        else:
            try:
                remote = self._connection._shell.join_path(self._make_tmp_path(), "archive")
                self._transfer_file(local, remote)
                self._fixup_perms2((self._connection._shell.tmpdir, remote))
                unpacked = host_command.run(self, tar_argv(remote, args["dest"], strip))
            finally:
                self._remove_tmp_path(self._connection._shell.tmpdir)
        if unpacked["rc"] != 0:
            return {**result, "failed": True, "msg": f"unpacking {local} into {args['dest']} failed: {unpacked['stderr'] or unpacked['stdout']}"}
        return {**result, "changed": True, "src": local, "dest": args["dest"]}
