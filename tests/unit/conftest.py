"""The action plugins import the collection's shared code by its full name
(ansible_collections.fastapi_ops.app.plugins.plugin_utils): playbooks/collections holds this
checkout as that collection, as it does for ansible-playbook (ansible.cfg collections_path)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "playbooks" / "collections"))


def pytest_addoption(parser):
    parser.addoption(
        "--serving-python",
        default=os.environ.get("TEST_SERVING_PYTHON", ""),
        help="python whose site-packages hold the gunicorn, uvicorn and uvicorn-worker that "
        "test_fastapi_app_worker.py serves with (default: $TEST_SERVING_PYTHON, else this interpreter); "
        "make unit runs it once more with .venv-serving-low/bin/python, the low end of serving_range.json",
    )
