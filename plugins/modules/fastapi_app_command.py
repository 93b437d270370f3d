#!/usr/bin/python
"""Documentation of the action plugin plugins/action/fastapi_app_command.py, which does the work."""

from __future__ import annotations

DOCUMENTATION = r"""
module: fastapi_app_command
short_description: Run a command on the host in one round trip, without a Python module
version_added: 0.10.0
description:
  - Runs O(argv) through the connection's shell, as M(ansible.builtin.command) would run it, with the
    task's environment and become, but without sending a Python module (about 0.2 s less a task
    over SSH or a container connection).
  - A non-zero exit fails the task. It always reports a change; set C(changed_when) for a read.
  - Check mode runs nothing and skips, as M(ansible.builtin.command) does.
options:
  argv:
    description: The command and its arguments; no shell interprets them.
    type: list
    elements: str
    required: true
  stdin:
    description:
      - Given to the command on its standard input as is (no newline added).
      - Sent on the connection like a pipelined module; without pipelining the task runs
        M(ansible.builtin.command) instead.
    type: str
# No GitHub account speaks for the project yet: (!UNKNOWN) is validate-modules' form for that.
author: the fastapi_app authors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Stop the canary
  fastapi_ops.app.fastapi_app_command:
    argv: [systemctl, stop, --no-block, hello-canary.service]
  changed_when: false
"""

RETURN = r"""
cmd:
  description: The command run.
  type: list
  elements: str
  returned: always
rc:
  description: Its exit status.
  type: int
  returned: when run
stdout:
  description: What it printed, without the last newline.
  type: str
  returned: when run
stderr:
  description: What it printed on stderr, without the last newline.
  type: str
  returned: when run
stdout_lines:
  description: RV(stdout) split into lines.
  type: list
  elements: str
  returned: when run
stderr_lines:
  description: RV(stderr) split into lines.
  type: list
  elements: str
  returned: when run
"""
