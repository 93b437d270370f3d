"""The app's own gunicorn hooks (fastapi_app_gunicorn_hooks / fastapi_app_gunicorn_config):
roles/fastapi_app/templates/etc/app/app_hooks.py on its own, then gunicorn.conf.py.j2 rendered with
them and read as gunicorn reads it, the role's hooks chained before the app's."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
import pytest
import yaml
from gunicorn.config import Config

from modload import ROOT, load

ROLE = ROOT / "roles" / "fastapi_app"
ah = load("fastapi_app_app_hooks", "roles/fastapi_app/templates/etc/app/app_hooks.py")
RELEASE = Path("/opt/app/releases/1.0.0-abc")


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package `hookapp` in tmp_path, importable; its modules are written by each test."""
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    for name in [m for m in sys.modules if m == "hookapp" or m.startswith("hookapp.")]:
        monkeypatch.delitem(sys.modules, name)
    (tmp_path / "hookapp").mkdir()
    (tmp_path / "hookapp" / "__init__.py").write_text("")
    return tmp_path / "hookapp"


def write(path: Path, source: str) -> None:
    path.write_text(textwrap.dedent(source))


def hooks_of(variable: str, value: str, source: Path = Path("/nonexistent")) -> dict[str, Any]:
    return ah._app_hooks_check(variable, value, ah._app_hooks_namespace(variable, value, RELEASE, source))


def test_a_hooks_module_gives_its_hooks(package: Path) -> None:
    write(package / "hooks.py", """
        import os
        workers_seen = []
        def on_starting(server): pass
        def post_fork(server, worker): pass
        def child_exit(server, worker, *rest): pass
        def helper(x, y, z): pass
    """)
    assert sorted(hooks_of("fastapi_app_gunicorn_hooks", "hookapp.hooks")) == ["child_exit", "on_starting", "post_fork"]


@pytest.mark.parametrize(("value", "expected"), [
    ("hookapp.missing", "fastapi_app_gunicorn_hooks='hookapp.missing' (release 1.0.0-abc): no module 'hookapp.missing' in the release"),
    ("nosuchpkg.hooks", "no module 'nosuchpkg' in the release's virtualenv or its source tree"),
])
def test_a_module_that_does_not_exist_is_named_with_the_fix(package: Path, value: str, expected: str) -> None:
    with pytest.raises(RuntimeError) as raised:
        hooks_of("fastapi_app_gunicorn_hooks", value)
    assert expected in str(raised.value) and "name a module of the app" in str(raised.value)


def test_a_module_whose_import_fails_says_why(package: Path) -> None:
    write(package / "broken.py", "import not_installed_dependency\n")
    with pytest.raises(RuntimeError, match=r"hookapp.broken.*importing it failed: ModuleNotFoundError: No module named 'not_installed_dependency'"):
        hooks_of("fastapi_app_gunicorn_hooks", "hookapp.broken")


def test_a_module_without_a_hook_lists_what_it_defines(package: Path) -> None:
    write(package / "typo.py", "def onstarting(server): pass\n")
    with pytest.raises(RuntimeError) as raised:
        hooks_of("fastapi_app_gunicorn_hooks", "hookapp.typo")
    message = str(raised.value)
    assert "defines none of gunicorn's server hooks (" in message and "on_starting" in message and "post_fork" in message
    assert message.endswith("its functions: onstarting.")
    assert "pre_request" not in message, "a refused hook is not offered"


def test_settings_and_refused_hooks_are_named_with_the_input_to_use(package: Path) -> None:
    write(package / "conf.py", """
        bind = "0.0.0.0:8000"
        workers = 4
        preload_app = True
        def on_starting(server): pass
        def pre_request(worker, req): pass
        def post_fork(server): pass
    """)
    with pytest.raises(RuntimeError) as raised:
        hooks_of("fastapi_app_gunicorn_hooks", "hookapp.conf")
    message = str(raised.value)
    assert "the setting bind belongs to the role (the listening socket comes from the .socket unit" in message
    assert "the setting workers is the role's input fastapi_app_gunicorn_workers: set that instead" in message
    assert "the setting preload_app is not taken from here: put it in fastapi_app_gunicorn_extra" in message
    assert "the hook pre_request is refused: the uvicorn worker never calls it" in message
    assert "the hook post_fork must take 2 argument(s)" in message


def test_a_config_file_of_the_source_gives_its_hooks(tmp_path: Path) -> None:
    write(tmp_path / "gunicorn.conf.py", """
        import multiprocessing
        def when_ready(server): pass
        def worker_exit(server, worker): pass
    """)
    assert sorted(hooks_of("fastapi_app_gunicorn_config", "gunicorn.conf.py", tmp_path)) == ["when_ready", "worker_exit"]
    with pytest.raises(RuntimeError, match=r"fastapi_app_gunicorn_config='deploy/gunicorn.conf.py' \(release 1.0.0-abc\): there is no file"):
        hooks_of("fastapi_app_gunicorn_config", "deploy/gunicorn.conf.py", tmp_path)


def render(**overrides: Any) -> str:
    """gunicorn.conf.py as the role renders it (Ansible's template module: trim_blocks)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"), trim_blocks=True,
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    env.filters["ternary"] = lambda value, yes, no: yes if value else no
    context = {**yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()), "ansible_managed": "managed",
               "fastapi_app_name": "app", "__fastapi_app_socket": "app.socket", "__fastapi_app_canary": "app-canary",
               "__fastapi_app_drain_seconds": 5, "__fastapi_app_workdir": "/src", **overrides}
    hooks_input = "fastapi_app_gunicorn_hooks" if context["fastapi_app_gunicorn_hooks"] else (
        "fastapi_app_gunicorn_config" if context["fastapi_app_gunicorn_config"] else "")
    return env.get_template("etc/app/gunicorn.conf.py.j2").render(__fastapi_app_hooks_input=hooks_input, **context)


def read_as_gunicorn(text: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    """The rendered file executed and its settings set as gunicorn's config reader does (arity checks included)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("FASTAPI_APP_DRAIN_SECONDS", "FASTAPI_APP_WEBSOCKET_GRACE_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    namespace: dict[str, Any] = {"__file__": "gunicorn.conf.py", "__name__": "__config__"}
    exec(compile(text, "gunicorn.conf.py", "exec"), namespace)  # noqa: S102 - the role's own template
    cfg = Config()
    for name, value in namespace.items():
        if name in cfg.settings:
            cfg.set(name, value)
    return cfg


def test_without_app_hooks_the_config_has_none_of_this() -> None:
    text = render()
    assert "_app_hooks" not in text and "KNOWN_SETTINGS" not in text


@pytest.mark.parametrize("metrics", [False, True])
def test_the_roles_hooks_run_first_then_the_apps(package: Path, monkeypatch: pytest.MonkeyPatch, metrics: bool) -> None:
    calls: list[str] = []
    write(package / "hooks.py", """
        CALLS = []
        def on_starting(server): CALLS.append("app on_starting")
        def on_reload(server): CALLS.append("app on_reload")
        def post_fork(server, worker): CALLS.append("app post_fork")
        def child_exit(server, worker): CALLS.append("app child_exit")
    """)
    monkeypatch.syspath_prepend(str(ROLE / "files"))
    import fastapi_app_worker
    monkeypatch.setattr(fastapi_app_worker, "defer_ready", lambda workers: calls.append(f"role defer_ready({workers})"))
    monkeypatch.setattr(fastapi_app_worker, "mark_reload", lambda: calls.append("role mark_reload"))
    if metrics:
        from prometheus_client import multiprocess
        monkeypatch.setattr(multiprocess, "mark_process_dead", lambda pid: calls.append(f"role mark_process_dead({pid})"))
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
        monkeypatch.setenv("RUNTIME_DIRECTORY", str(package.parent / "run"))
    cfg = read_as_gunicorn(render(fastapi_app_gunicorn_hooks="hookapp.hooks", fastapi_app_metrics=metrics), monkeypatch)
    import hookapp.hooks
    calls_of_app = hookapp.hooks.CALLS

    def each(hook: str, *args: Any) -> list[str]:
        calls.clear()
        calls_of_app.clear()
        getattr(cfg, hook)(*args)
        return calls + calls_of_app

    server, worker = SimpleNamespace(num_workers=3), SimpleNamespace(pid=42)
    assert each("on_starting", server) == ["role defer_ready(3)", "app on_starting"]
    assert each("on_reload", server) == ["role mark_reload", "app on_reload"]
    assert each("post_fork", server, worker) == ["app post_fork"]
    assert each("child_exit", server, worker) == (["role mark_process_dead(42)"] if metrics else []) + ["app child_exit"]
    assert cfg.worker_class_str == "fastapi_app_worker.UvicornWorker" and cfg.workers > 0


def test_a_missing_module_fails_the_config_read_naming_the_input(package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RuntimeError, match=r"^fastapi_app_gunicorn_hooks='hookapp.gone' \(release [^)]+\): no module 'hookapp.gone'"):
        read_as_gunicorn(render(fastapi_app_gunicorn_hooks="hookapp.gone"), monkeypatch)
