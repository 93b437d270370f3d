"""Unit tests for plugins/filter/fastapi_app_addresses.py."""

from __future__ import annotations

from typing import Any

import pytest

from modload import load

addresses = load("fastapi_app_addresses", "plugins/filter/fastapi_app_addresses.py")


def test_addresses_and_networks_of_both_families_pass() -> None:
    assert addresses.address_errors(["192.0.2.10", "198.51.100.0/24", "10.0.0.0/8", "2001:db8::/32", "::1", "0.0.0.0/0"]) == []


def test_an_empty_list_passes() -> None:
    assert addresses.address_errors([]) == []


@pytest.mark.parametrize(("entry", "expected"), [
    ("192.0.2.300", "is not an address or CIDR network:"),
    ("198.51.100.0/33", "is not an address or CIDR network:"),
    ("example.com", "is not an address or CIDR network such as"),
    ("192.0.2.0/255.255.255.0", "is not an address or CIDR network such as"),
    ("fe80::1%eth0", "is not an address or CIDR network such as"),
    ("192.0.2.1; deny all", "is not an address or CIDR network such as"),
    (" 192.0.2.1", "is not an address or CIDR network such as"),
    ("", "is not an address or CIDR network such as"),
    (3232235521, "is not an address or CIDR network such as"),
])
def test_what_nginx_geo_would_not_take_is_named(entry: Any, expected: str) -> None:
    errors = addresses.address_errors(["192.0.2.10", entry])
    assert len(errors) == 1
    assert repr(entry) in errors[0] and expected in errors[0]


def test_host_bits_under_a_prefix_name_the_network() -> None:
    assert addresses.address_errors(["10.1.2.3/8"]) == ["'10.1.2.3/8' has host bits set after its prefix; the network is 10.0.0.0/8."]
