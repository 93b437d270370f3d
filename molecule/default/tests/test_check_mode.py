"""`--check --diff` on the converged hosts must predict no change at all."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path


def test_check_diff_on_converged_hosts_reports_no_change():
    ephemeral = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    converge = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]).parent / "resources" / "playbooks" / "converge.yml"
    env = dict(os.environ, ANSIBLE_CONFIG=str(ephemeral / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    result = subprocess.run(
        ["ansible-playbook", "--check", "--diff", "-i", str(ephemeral / "inventory"), str(converge)],
        capture_output=True, text=True, env=env, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    recap = re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+).*failed=(\d+)", result.stdout, re.MULTILINE)
    assert recap, result.stdout[-2000:]
    assert all(changed == "0" and failed == "0" for _, changed, failed in recap), result.stdout[-4000:]
