"""Request heads, read with httptools (llhttp, in C); heads sent upstream and answers of keygate's
own making, written once as bytes (an upstream's answer: :mod:`gateway.relay.response_head`).

The relay reads a request head only when it has all of it (up to the blank line), so a request
it will not handle on its fast path can be handed to aiohttp whole. :func:`read_request` says
which requests those are: anything but a plain HTTP/1.1 request with an origin-form target and
an optional Content-Length body, or one for keygate's own ``/_keygate/`` paths.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from http.cookies import Morsel
from types import MappingProxyType

import httptools
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

#: Fields that send a request to aiohttp: other framing, protocol switches, interim answers.
_SLOW_FIELDS = frozenset({b"transfer-encoding", b"upgrade", b"expect"})
#: Fields :func:`read_request` looks at, beyond passing them on.
_READ_FIELDS = _SLOW_FIELDS | {b"content-length", b"host", b"connection"}
_RESERVED = b"/_keygate/"
#: How aiohttp turns field bytes into text, and back: nothing is lost either way.
_TEXT = ("utf-8", "surrogateescape")


class _HeadReader:
    """httptools' callbacks for one request head: the target and the fields, as bytes."""

    __slots__ = ("fields", "target")

    def __init__(self) -> None:
        self.target = b""
        self.fields: list[tuple[bytes, bytes]] = []

    def on_url(self, url: bytes) -> None:
        self.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, value))


class RelayRequest:
    """A request the relay forwards itself; what the stages read (a ``ProxiedRequest``)."""

    __slots__ = (
        "__dict__",
        "body_length",
        "host",
        "http10",
        "keep_alive",
        "method",
        "raw_fields",
        "raw_path",
        "remote",
    )

    def __init__(
        self,
        method: str,
        target: str,
        raw_fields: list[tuple[bytes, bytes]],
        remote: str,
        body_length: int,
        keep_alive: bool,
        http10: bool,
        host: str = "",
    ) -> None:
        self.method = method
        #: The fields as received: name and value bytes.
        self.raw_fields = raw_fields
        self.http10 = http10
        self.raw_path = target
        self.remote = remote
        self.body_length = body_length
        self.keep_alive = keep_alive
        #: The Host header (only an HTTP/1.0 request may come without one).
        self.host = host

    scheme = "http"

    @functools.cached_property
    def headers(self) -> CIMultiDictProxy[str]:
        """The fields as text, decoded as aiohttp decodes them; made when a stage first asks
        (the lane needs none of them)."""
        fields = [(name.decode(*_TEXT), value.decode(*_TEXT)) for name, value in self.raw_fields]
        return CIMultiDictProxy(CIMultiDict(fields))

    @functools.cached_property
    def path(self) -> str:
        """The decoded path, exactly as aiohttp decodes it (yarl), for route matching."""
        path = self.raw_path.split("?", 1)[0]
        return _decoded(path) if "%" in path else path

    @functools.cached_property
    def cookies(self) -> Mapping[str, str]:
        """The Cookie header's pairs, parsed as aiohttp parses them."""
        parsed = _parse_cookie_header(self.headers.get("Cookie", ""))
        return MappingProxyType({name: morsel.value for name, morsel in parsed})


@functools.lru_cache(maxsize=4096)
def _decoded(path: str) -> str:
    return URL.build(path=path, encoded=True).path


def _parse_cookie_header(header: str) -> list[tuple[str, Morsel[str]]]:
    from aiohttp._cookie_helpers import parse_cookie_header  # aiohttp's own reading

    return parse_cookie_header(header)


def read_request(head: bytes, remote: str) -> RelayRequest | None:
    """The request whose complete head (ending in a blank line) is ``head``, or ``None`` when
    aiohttp should answer it: not HTTP/1.1, not a plain origin-form target, keygate's own
    paths, chunked or other framing, ``Upgrade``, ``Expect``, a second ``Host``, or a head
    llhttp refuses (aiohttp then gives the 400)."""
    reader = _HeadReader()
    try:
        parser = httptools.HttpRequestParser(reader)
        parser.feed_data(head)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        return None
    target = reader.target
    # llhttp has checked the request line; it ends in the version.
    line_end = head.index(b"\r\n")
    version = head[line_end - 3 : line_end]
    if (
        version not in (b"1.1", b"1.0")
        or not target.startswith(b"/")
        or target.startswith(_RESERVED)
        or b"#" in target
    ):
        return None
    http10 = version == b"1.0"
    length = 0
    hosts: list[bytes] = []
    connection: list[bytes] = []
    for name, value in reader.fields:
        lower = name.lower()
        if lower in _READ_FIELDS:
            if lower in _SLOW_FIELDS:
                return None
            if lower == b"content-length":
                length = int(value)  # llhttp accepts digits only, and one value
            elif lower == b"host":
                hosts.append(value)
            else:
                connection.extend(token.strip().lower() for token in value.split(b","))
    if len(hosts) > 1 or (not hosts and not http10):
        return None
    # RFC 9112 §9.3: HTTP/1.1 stays open unless told "close"; HTTP/1.0 only when asked.
    keep_alive = b"keep-alive" in connection if http10 else b"close" not in connection
    return RelayRequest(
        parser.get_method().decode("ascii"),
        target.decode(*_TEXT),
        reader.fields,
        remote,
        length,
        keep_alive,
        http10,
        hosts[0].decode(*_TEXT) if hosts else "",
    )


def request_head(method: str, target: str, host: str, headers: CIMultiDict[str]) -> bytes:
    """The head sent upstream: the stages' headers, ``Host`` the upstream's own."""
    fields = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    return (first_lines(method, target, host) + fields + "\r\n").encode(*_TEXT)


def first_lines(method: str, target: str, host: str) -> str:
    """The request line and ``Host`` of a head sent upstream."""
    return f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"


def response_bytes(response: web.Response, *, close: bool) -> bytes:
    """A whole response (a refusal, a 502…) of aiohttp's making, as bytes for the wire."""
    body = response.body
    assert isinstance(body, bytes)
    lines = [f"HTTP/1.1 {response.status} {response.reason}\r\n"]
    lines.extend(
        f"{name}: {value}\r\n"
        for name, value in response.headers.items()
        if name != "Content-Length"
    )
    lines.append(f"Content-Length: {len(body)}\r\n")
    if close:
        lines.append("Connection: close\r\n")
    lines.append("\r\n")
    return "".join(lines).encode() + body
