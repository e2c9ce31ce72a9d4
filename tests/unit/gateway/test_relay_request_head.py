"""The relay reads a plain request head itself, exactly as llhttp reads it, or leaves it to
llhttp: the request it forwards (or hands to aiohttp) is the same either way."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.relay.heads import _PLAIN_REQUEST, RelayRequest, read_request
from tests.unit.gateway.head_fields import SEPARATORS, field_values

PEER = "198.51.100.7"
FACTS = (
    "method",
    "raw_path",
    "path",
    "raw_fields",
    "body_length",
    "keep_alive",
    "http10",
    "host",
    "authorization",
)


def _same_reading(head: bytes) -> RelayRequest | None:
    """Both readings of ``head`` agree (or both leave it to aiohttp); the relay's own."""
    expected = read_request(head, PEER, plain=False)
    read = read_request(head, PEER)
    if expected is None or read is None:
        assert expected is None and read is None, head
        return None
    assert [getattr(read, f) for f in FACTS] == [getattr(expected, f) for f in FACTS], head
    assert read.headers == expected.headers, head
    return read


@pytest.mark.parametrize(
    "head",
    [
        b"GET /orders?id=7 HTTP/1.1\r\nHost: shop.example\r\nAccept: */*\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, X-Other\r\n\r\n",
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",  # HTTP/1.1 without Host
        b"GET /_keygate/healthz HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a%2Fb/caf%C3%A9 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\nauthorization: Basic y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Trailing: v  \r\nX-Tab:\tw\r\nX-None:\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Utf8: caf\xc3\xa9\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\x01b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: v\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n folded: v\r\n\r\n",
    ],
)
def test_plain_heads_are_read_as_llhttp_reads_them(head: bytes) -> None:
    """Each head: the same request (or both hand it to aiohttp)."""
    _same_reading(head)


def test_the_common_request_is_read_without_llhttp() -> None:
    """The request most clients send takes the relay's own reading (otherwise it buys
    nothing), with its facts read off the head."""
    head = (
        b"GET /orders?id=7 HTTP/1.1\r\nHost: shop.example\r\n"
        b"Authorization: Bearer kg_x\r\nContent-Length: 0\r\n\r\n"
    )
    assert _PLAIN_REQUEST.fullmatch(head) is not None
    read = _same_reading(head)
    assert read is not None
    assert (read.method, read.path, read.host, read.authorization, read.keep_alive) == (
        "GET",
        "/orders",
        "shop.example",
        ["Bearer kg_x"],
        True,
    )


_NAMES = st.sampled_from(
    [
        b"Host",
        b"host",
        b"Content-Length",
        b"Connection",
        b"Transfer-Encoding",
        b"Upgrade",
        b"Expect",
        b"Authorization",
        b"Cookie",
        b"X-A",
        b"x_a",
        b"Bad Name",
        b"",
    ]
)
_VALUES = field_values(b"websocket", b"Bearer kg_x", b"\x00")
_TARGETS = st.lists(
    st.sampled_from([b"/", b"a", b"%2F", b"?", b"=", b"#", b'"', b"<", b"{", b"~", b"\xc3\xa9"]),
    max_size=5,
).map(lambda parts: b"/" + b"".join(parts))


@settings(max_examples=600, deadline=None)
@given(
    method=st.sampled_from([b"GET", b"HEAD", b"POST", b"DELETE", b"PATCH", b"BREW", b"get"]),
    target=st.one_of(_TARGETS, st.sampled_from([b"", b"*", b"a/", b"http://a/"])),
    version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.10"]),
    fields=st.lists(st.tuples(_NAMES, SEPARATORS, _VALUES), max_size=5),
)
def test_any_head_gets_the_same_reading(
    method: bytes, target: bytes, version: bytes, fields: list[tuple[bytes, bytes, bytes]]
) -> None:
    """Random heads mixing the fields the relay reads, with odd targets, spacing and
    characters."""
    lines = b"".join(name + sep + value + b"\r\n" for name, sep, value in fields)
    _same_reading(method + b" " + target + b" " + version + b"\r\n" + lines + b"\r\n")
