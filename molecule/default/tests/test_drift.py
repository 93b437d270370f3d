"""A re-run puts back what was changed by hand: the account and directory tasks run only when the
one host-state read (library/fastapi_app_host_state.py) finds a difference, so that read must see it."""

from __future__ import annotations

from typing import Any

from stack import role_task_outputs, run_playbook


def test_a_run_repairs_the_account_and_directories(host: Any, app: dict[str, Any]) -> None:
    name = app["fastapi_app_name"]
    main_pid = host.check_output(f"systemctl show -p MainPID --value {name}.service")
    host.run_expect([0], f"chmod 0755 /etc/{name} && chgrp root /etc/{name} && chmod 0777 /opt/{name}/cache "
                         f"&& usermod --shell /bin/bash {name}")

    result = run_playbook("deploy", "--limit", host.backend.get_hostname())

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    outcome = role_task_outputs(result.stdout)
    assert "changed:" in outcome.get("Create the app user", ""), result.stdout[-3000:]
    assert "changed:" in outcome.get("Create the release and configuration directories", ""), result.stdout[-3000:]
    assert "changed:" not in outcome.get("Create the app group", "")
    config = host.file(f"/etc/{name}")
    assert (config.mode, config.user, config.group) == (0o750, "root", name)
    assert host.file(f"/opt/{name}/cache").mode == 0o700
    assert host.user(name).shell == "/usr/sbin/nologin"
    # Nothing that serves was touched by the repair.
    assert host.check_output(f"systemctl show -p MainPID --value {name}.service") == main_pid
