"""The action plugins import the collection's shared code by its full name
(ansible_collections.fastapi_ops.app.plugins.plugin_utils): playbooks/collections holds this
checkout as that collection, as it does for ansible-playbook (ansible.cfg collections_path)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "playbooks" / "collections"))
