"""Forwarded headers, client address, request id: client claims count only via trusted proxies."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway.forwarded import Network, client_address, forwarded_headers

TRUSTED: tuple[Network, ...] = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("fd00::/8"),
)


def forwarded(pairs: list[tuple[str, str]], peer_ip: str) -> dict[str, str]:
    return dict(
        forwarded_headers(
            CIMultiDict(pairs),
            peer_ip=peer_ip,
            scheme="http",
            host="gw.example",
            trusted_proxies=TRUSTED,
        )
    )


@pytest.mark.parametrize(
    ("pairs", "peer_ip", "expected"),
    [
        ([], "203.0.113.7", ("203.0.113.7", "http", "gw.example")),
        (
            [
                ("X-Forwarded-For", "6.6.6.6"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "evil.example"),
            ],
            "203.0.113.7",
            ("203.0.113.7", "http", "gw.example"),
        ),
        (
            [
                ("X-Forwarded-For", "198.51.100.1"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "app.example"),
            ],
            "10.0.0.2",
            ("198.51.100.1, 10.0.0.2", "https", "app.example"),
        ),
        ([], "10.0.0.2", ("10.0.0.2", "http", "gw.example")),
        (
            [("X-Forwarded-For", "1.1.1.1, 10.0.0.9"), ("x-forwarded-for", "10.0.0.8")],
            "10.0.0.2",
            ("1.1.1.1, 10.0.0.9, 10.0.0.8, 10.0.0.2", "http", "gw.example"),
        ),
        (
            [("X-Forwarded-For", "198.51.100.1")],
            "::ffff:10.0.0.2",
            ("198.51.100.1, ::ffff:10.0.0.2", "http", "gw.example"),
        ),
        ([("X-Forwarded-For", "6.6.6.6")], "", ("unknown", "http", "gw.example")),
    ],
    ids=[
        "direct-client",
        "spoofing-client-discarded",
        "trusted-proxy-appended",
        "trusted-proxy-without-headers",
        "chain-over-two-header-lines",
        "ipv4-mapped-trusted-peer",
        "unix-socket-peer",
    ],
)
def test_forwarded_headers_trust_only_configured_proxies(
    pairs: list[tuple[str, str]], peer_ip: str, expected: tuple[str, str, str]
) -> None:
    """X-Forwarded-* extend a trusted proxy's view and replace anyone else's."""
    assert forwarded(pairs, peer_ip) == {
        "X-Forwarded-For": expected[0],
        "X-Forwarded-Proto": expected[1],
        "X-Forwarded-Host": expected[2],
    }


@given(st.lists(st.tuples(st.sampled_from(["X-Forwarded-For", "X-Forwarded-Host"]), st.text())))
def test_untrusted_clients_cannot_influence_forwarded_headers(
    pairs: list[tuple[str, str]],
) -> None:
    """Whatever an untrusted client sends, the upstream sees the gateway's own view."""
    assert forwarded(pairs, "203.0.113.7") == {
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": "gw.example",
    }


@pytest.mark.parametrize(
    ("xff", "peer_ip", "expected"),
    [
        (["6.6.6.6"], "203.0.113.7", "203.0.113.7"),
        (["198.51.100.1"], "10.0.0.2", "198.51.100.1"),
        (["6.6.6.6, 198.51.100.1, 10.0.0.9"], "10.0.0.2", "198.51.100.1"),
        (["6.6.6.6", "198.51.100.1"], "10.0.0.2", "198.51.100.1"),
        (["10.0.0.7, 10.0.0.9"], "10.0.0.2", "10.0.0.7"),
        ([], "10.0.0.2", "10.0.0.2"),
        (["6.6.6.6, unknown, 10.0.0.9"], "10.0.0.2", "10.0.0.9"),
        (["198.51.100.1:4711"], "10.0.0.2", "198.51.100.1"),
        (["[2001:DB8::1]:443"], "fd00::1", "2001:db8::1"),
        (["2001:DB8::1"], "fd00::1", "2001:db8::1"),
        (["198.51.100.1"], "::ffff:10.0.0.2", "198.51.100.1"),
        (["198.51.100.1"], "", ""),
        ([], "2001:DB8::5", "2001:db8::5"),
        ([], "::ffff:203.0.113.9", "203.0.113.9"),
        (["::ffff:198.51.100.4"], "10.0.0.2", "198.51.100.4"),
    ],
    ids=[
        "untrusted-peer-ignores-xff",
        "one-trusted-hop",
        "right-most-untrusted-wins",
        "across-header-lines",
        "all-hops-trusted",
        "trusted-peer-without-xff",
        "garbage-stops-the-walk",
        "ipv4-with-port",
        "bracketed-ipv6-with-port",
        "ipv6-normalised",
        "ipv4-mapped-peer",
        "unix-socket-peer",
        "untrusted-ipv6-peer-normalised",
        "ipv4-mapped-untrusted-peer-is-ipv4",
        "ipv4-mapped-hop-is-ipv4",
    ],
)
def test_client_address_is_the_first_untrusted_hop(
    xff: list[str], peer_ip: str, expected: str
) -> None:
    """Per-client limits key on the nearest address no trusted proxy vouches away."""
    headers = CIMultiDict(("X-Forwarded-For", value) for value in xff)
    assert client_address(headers, peer_ip=peer_ip, trusted_proxies=TRUSTED) == expected
