"""Filters that check what the app's source asks for against the host and the role, before a build.

Without them, pip or uv fail deep in the install ("requires a different Python", a resolver
conflict with the serving stack, a worker that does not import) after the lock, the account and
the release directory exist; each check names the package or interpreter, what is needed and the
variable or file to change instead.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

# ansible-core requires packaging, so the controller always has it; the guard lets the plugin load
# where it is missing (ansible-test's import sanity test) and say so only when the filter is used.
try:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version
except ImportError as error:
    PACKAGING_IMPORT_ERROR: ImportError | None = error
else:
    PACKAGING_IMPORT_ERROR = None


def python_mismatch(requires_python: str, version: str, interpreter: str) -> str:
    """An error message when the interpreter's version is outside requires-python, else ''."""
    if not requires_python.strip():
        return ""
    if PACKAGING_IMPORT_ERROR is not None:
        raise AnsibleFilterError("fastapi_app_python_mismatch needs the Python package packaging") from PACKAGING_IMPORT_ERROR
    try:
        allowed = SpecifierSet(requires_python)
        found = Version(version)
    except (InvalidSpecifier, InvalidVersion) as error:
        return f"the app's requires-python {requires_python!r} or the interpreter's version {version!r} cannot be read: {error}"
    if allowed.contains(found, prereleases=True):
        return ""
    return (f"the app requires Python {requires_python} (requires-python in its pyproject.toml) but fastapi_app_python="
            f"{interpreter} is Python {version}; set fastapi_app_python to an interpreter that satisfies it, or change requires-python")


def serving_mismatch(locked: dict[str, str], supported: dict[str, str], lockfile: str) -> str:
    """An error message for each serving package the lock pins outside the range the role's
    worker supports (files/serving_range.json), else ''."""
    problems = []
    for name, version in sorted(locked.items()):
        if name not in supported:
            continue
        try:
            inside = SpecifierSet(supported[name]).contains(Version(version), prereleases=True)
        except InvalidVersion:
            inside = False
        if not inside:
            problems.append(f"{lockfile} locks {name}=={version}, but the role's gunicorn worker supports {name}{supported[name]}; "
                            f"lock a {name} version in that range (e.g. uv lock --upgrade-package {name}, "
                            f"pip-compile --upgrade-package {name}, poetry update {name}) and export the lock again")
    return "; ".join(problems)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"fastapi_app_python_mismatch": python_mismatch, "fastapi_app_serving_mismatch": serving_mismatch}
