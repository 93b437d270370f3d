"""Filter that checks the app's requires-python against the host's interpreter before a build.

Without it, pip or uv fail deep in the install ("requires a different Python") after the lock,
the account and the release directory exist; the check names the interpreter, the requirement
and the variable to change instead.
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


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"fastapi_app_python_mismatch": python_mismatch}
