"""`--check --diff` on the converged hosts must predict no change at all."""

from __future__ import annotations

import re

from stack import run_playbook


def test_check_diff_on_converged_hosts_reports_no_change():
    result = run_playbook("deploy", "--check", "--diff")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    recap = re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+).*failed=(\d+)", result.stdout, re.MULTILINE)
    assert recap, result.stdout[-2000:]
    assert all(changed == "0" and failed == "0" for _unused, changed, failed in recap), result.stdout[-4000:]
