"""Filter that finds fastapi_app_* variables the role does not know: typos, caught by tasks/validate_names.yml.

Ansible ignores a variable nobody reads, so `fastapi_app_gunicron_workers: 3` used to deploy with
the default worker count and no word about it. Kept out of Jinja because choosing the suggestion
is a rule with cases (the shared prefix, names too far from any to suggest one).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

PREFIX = "fastapi_app_"
# difflib's own default. Below it the best candidate is usually unrelated to the name, and a wrong
# "did you mean" for a variable of the user's own misleads more than no suggestion.
CUTOFF = 0.6


def unknown_variables(names: Iterable[str], known: Iterable[str], own: Iterable[str] = ()) -> list[dict[str, str | None]]:
    """The names with the role's prefix that are neither known nor the user's own, sorted, each
    with the closest known or own name (None when none is close).

    Other names, the internal __fastapi_app_* ones among them, are not the role's to judge.
    """
    allowed = set(known) | set(own)
    # Compared without the prefix that every candidate shares: with it, any two names look alike
    # (fastapi_app_sentry_dsn would be "close" to fastapi_app_user).
    candidates = {name[len(PREFIX) :]: name for name in sorted(allowed) if name.startswith(PREFIX)}
    unknown: list[dict[str, str | None]] = []
    for name in sorted(set(names)):
        if not name.startswith(PREFIX) or name in allowed:
            continue
        close = difflib.get_close_matches(name[len(PREFIX) :], candidates, n=1, cutoff=CUTOFF)
        unknown.append({"name": name, "suggestion": candidates[close[0]] if close else None})
    return unknown


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"fastapi_app_unknown_variables": unknown_variables}
