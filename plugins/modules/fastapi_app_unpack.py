#!/usr/bin/python
"""Documentation of the action plugin plugins/action/fastapi_app_unpack.py, which does the work."""

from __future__ import annotations

DOCUMENTATION = r"""
module: fastapi_app_unpack
short_description: Unpack a tar archive from the controller into a new directory on the host
version_added: 0.10.0
description:
  - Unpacks O(src) into O(dest) with GNU tar (gzip, xz, bzip2, zstd or none), the files owned by
    the connecting (or become) user.
  - The archive goes to tar's standard input with the command, in one round trip and without a
    Python module. Over 16 MiB, or where the connection does not pipeline, it is transferred first.
  - Unlike M(ansible.builtin.unarchive) it does not compare the archive with O(dest) first, as it
    is meant for a directory just created empty, and it always reports a change.
  - Check mode reports the change without doing it.
options:
  src:
    description: The archive on the controller (a path, or a name looked up in the role's files).
    type: path
    required: true
  dest:
    description: The directory on the host; it must exist.
    type: path
    required: true
  strip_components:
    description: Leading path components to strip from the names in the archive (0 or 1).
    type: int
    default: 0
# No GitHub account speaks for the project yet: (!UNKNOWN) is validate-modules' form for that.
author: the fastapi_app authors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Unpack the source
  fastapi_ops.app.fastapi_app_unpack:
    src: /home/me/.cache/fastapi_app/0123abcd.tar.gz
    dest: /opt/hello/releases/1.0.0-0123abcd/src
"""

RETURN = r"""
src:
  description: The archive on the controller.
  type: str
  returned: success
dest:
  description: The directory it was unpacked into.
  type: str
  returned: success
"""
