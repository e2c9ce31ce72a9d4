"""Per-address counters count IPv4 addresses, and IPv6 clients by network (finding 17)."""

from __future__ import annotations

import pytest

from introspector.attempts import address_bucket


@pytest.mark.parametrize(
    ("address", "prefix", "expected"),
    [
        ("203.0.113.7", 64, "203.0.113.7"),
        ("::ffff:203.0.113.7", 64, "203.0.113.7"),
        ("2001:db8:1:2::1", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", 64, "2001:db8:1:3::/64"),
        ("2001:db8:1:2::1", 48, "2001:db8:1::/48"),
        ("2001:db8:1:2::1", 128, "2001:db8:1:2::1/128"),
        ("not an address", 64, "not an address"),
    ],
    ids=[
        "ipv4",
        "ipv4-mapped-is-ipv4",
        "ipv6-by-64",
        "ipv6-top-of-64",
        "next-64-differs",
        "configurable-48",
        "configurable-128",
        "not-an-address-kept",
    ],
)
def test_address_bucket(address: str, prefix: int, expected: str) -> None:
    """One IPv6 client's /64 is one counter; ``::ffff:a.b.c.d`` counts as ``a.b.c.d``."""
    assert address_bucket(address, prefix) == expected
