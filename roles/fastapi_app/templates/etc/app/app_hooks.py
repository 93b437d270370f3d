# The app's own gunicorn hooks (fastapi_app_gunicorn_hooks, fastapi_app_gunicorn_config), included
# into gunicorn.conf.py (etc/app/gunicorn.conf.py.j2) and unit-tested on its own (tests/unit).
# gunicorn runs them from the master that reads gunicorn.conf.py: an app module that cannot be
# imported, that defines no hook, or that sets what the role decides fails that read, so the
# canary's start fails with this message before the release gets any traffic.
import importlib
import inspect
import runpy

from gunicorn.config import KNOWN_SETTINGS

# gunicorn settings with an input of the role's own; any other setting goes to fastapi_app_gunicorn_extra.
_APP_HOOKS_SETTING_INPUTS = {
    "workers": "fastapi_app_gunicorn_workers",
    "timeout": "fastapi_app_gunicorn_timeout",
    "graceful_timeout": "fastapi_app_gunicorn_graceful_timeout",
    "keepalive": "fastapi_app_gunicorn_keepalive",
    "max_requests": "fastapi_app_gunicorn_max_requests",
    "max_requests_jitter": "fastapi_app_gunicorn_max_requests_jitter",
    "loglevel": "fastapi_app_gunicorn_loglevel",
    "accesslog": "fastapi_app_gunicorn_access_log",
    "wsgi_app": "fastapi_app_asgi_target",
    "raw_env": "fastapi_app_env and fastapi_app_secrets",
}
# gunicorn settings the role decides itself, and why.
_APP_HOOKS_ROLE_OWNED = {
    "bind": "the listening socket comes from the .socket unit (socket activation)",
    "worker_class": "the role's worker drains without losing a request and tells systemd when every worker serves",
    "chdir": "a master serves the release it started with",
    "daemon": "systemd supervises the master",
    "pidfile": "systemd supervises the master",
    "user": "the unit's User= runs the service",
    "group": "the unit's Group= runs the service",
    "control_socket": "each unit has its own in its runtime directory",
    "forwarded_allow_ips": "only nginx can reach the socket",
    "errorlog": "gunicorn's log goes to the journal",
}
# Hooks the role refuses, and why.
_APP_HOOKS_REFUSED = {
    "pre_request": "the uvicorn worker never calls it; use an ASGI middleware",
    "post_request": "the uvicorn worker never calls it; use an ASGI middleware",
    "ssl_context": "TLS ends at nginx",
}
# Values a gunicorn setting takes (a module, class or other object of the same name is the app's own).
_APP_HOOKS_PLAIN = (bool, int, float, str, bytes, list, tuple, dict, set, type(None))


def _app_hooks_namespace(variable, value, release, source):
    """The top-level names of the app's hooks module (fastapi_app_gunicorn_hooks) or config file
    (fastapi_app_gunicorn_config, relative to the release's source tree)."""
    where = f"{variable}={value!r} (release {release.name})"
    if variable == "fastapi_app_gunicorn_config":
        path = source / value
        if not path.is_file():
            raise RuntimeError(f"{where}: there is no file {path} in the release; name the app's gunicorn.conf.py relative to its source.")
        try:
            return runpy.run_path(str(path), run_name="fastapi_app_gunicorn_config")
        except Exception as error:
            raise RuntimeError(f"{where}: running it failed: {type(error).__name__}: {error}") from error
    try:
        return vars(importlib.import_module(value))
    except ModuleNotFoundError as error:
        if error.name and (value == error.name or value.startswith(error.name + ".")):
            raise RuntimeError(f"{where}: no module {error.name!r} in the release's virtualenv or its source tree {source}; name a"
                               f" module of the app, as its own code imports it (for example myapp.gunicorn_hooks).") from None
        raise RuntimeError(f"{where}: importing it failed: {type(error).__name__}: {error}") from error
    except Exception as error:
        raise RuntimeError(f"{where}: importing it failed: {type(error).__name__}: {error}") from error


def _app_hooks_check(variable, value, namespace, settings=KNOWN_SETTINGS):
    """{hook name: function} of the app's namespace; a RuntimeError that names `variable` and the fix
    when it defines no gunicorn hook, a refused one, one with the wrong arguments, or a setting."""
    where = f"{variable}={value!r}"
    hooks = {s.name: len(inspect.signature(s.default).parameters) for s in settings if s.section == "Server Hooks"}
    public = {name: found for name, found in namespace.items() if not name.startswith("_")}
    problems = []
    taken = {}
    for name, found in sorted(public.items()):
        if name in _APP_HOOKS_REFUSED and callable(found):
            problems.append(f"the hook {name} is refused: {_APP_HOOKS_REFUSED[name]}")
        elif name in hooks and callable(found):
            try:
                inspect.signature(found).bind(*range(hooks[name]))
            except (TypeError, ValueError):
                problems.append(f"the hook {name} must take {hooks[name]} argument(s), as gunicorn calls it")
            else:
                taken[name] = found
        elif name in _APP_HOOKS_ROLE_OWNED and isinstance(found, _APP_HOOKS_PLAIN):
            problems.append(f"the setting {name} belongs to the role ({_APP_HOOKS_ROLE_OWNED[name]}): remove it")
        elif name in _APP_HOOKS_SETTING_INPUTS and isinstance(found, _APP_HOOKS_PLAIN):
            problems.append(f"the setting {name} is the role's input {_APP_HOOKS_SETTING_INPUTS[name]}: set that instead")
        elif any(s.name == name for s in settings) and name not in hooks and isinstance(found, _APP_HOOKS_PLAIN):
            problems.append(f"the setting {name} is not taken from here: put it in fastapi_app_gunicorn_extra")
    if problems:
        raise RuntimeError(f"{where}: " + "; ".join(problems) + ". Only gunicorn's server hooks are taken from the app (docs/settings.md).")
    if not taken:
        functions = sorted(name for name, found in public.items() if inspect.isfunction(found))
        raise RuntimeError(f"{where} defines none of gunicorn's server hooks ({', '.join(sorted(set(hooks) - set(_APP_HOOKS_REFUSED)))});"
                           f" its functions: {', '.join(functions) or 'none'}.")
    return taken
