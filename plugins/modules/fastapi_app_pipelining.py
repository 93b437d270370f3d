#!/usr/bin/python
"""Documentation of the action plugin plugins/action/fastapi_app_pipelining.py, which does the work."""

from __future__ import annotations

DOCUMENTATION = r"""
module: fastapi_app_pipelining
version_added: 0.10.0
short_description: Warn when the connection does not pipeline
description:
  - Reports whether the task's connection pipelines (C(pipelining) of ansible.cfg's C([connection]) section, or the
    C(ansible_pipelining) variable, with the become method allowing it), and adds a warning when it does not - the
    same text for every host, so Ansible shows it once a run.
  - Runs on the controller; the host is not contacted. Never changes anything.
options:
  warn:
    description: Add the warning when the connection does not pipeline; false only reports C(pipelining).
    type: bool
    default: true
# No GitHub account speaks for the project yet: (!UNKNOWN) is validate-modules' form for that.
author: the fastapi_app authors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Check that the connection pipelines
  fastapi_ops.app.fastapi_app_pipelining:
"""

RETURN = r"""
pipelining:
  description: Whether the connection pipelines.
  type: bool
  returned: always
"""
