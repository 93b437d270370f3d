"""Filter that checks fastapi_app_maintenance_allow before any of it reaches nginx's `geo` block.

nginx accepts less than Python's ipaddress does (no netmask form, no IPv6 zone) and only warns
about host bits under a prefix, so each rule is spelt out here, with its message.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

# An address, optionally followed by a prefix length in digits: the forms a `geo` entry takes.
SHAPE = re.compile(r"^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$")


def address_errors(entries: Iterable[Any]) -> list[str]:
    """One message per entry that is not an IPv4/IPv6 address or CIDR network nginx's `geo` takes."""
    errors: list[str] = []
    for entry in entries:
        if not isinstance(entry, str) or not SHAPE.match(entry):
            errors.append(f"{entry!r} is not an address or CIDR network such as 192.0.2.10 or 2001:db8::/32.")
            continue
        try:
            ipaddress.ip_network(entry, strict=True)
        except ValueError as error:
            if "host bits set" in str(error):
                network = ipaddress.ip_network(entry, strict=False)
                errors.append(f"{entry!r} has host bits set after its prefix; the network is {network}.")
            else:
                errors.append(f"{entry!r} is not an address or CIDR network: {error}.")
    return errors


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"fastapi_app_address_errors": address_errors}
