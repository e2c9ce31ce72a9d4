"""Request and response heads: read with httptools (llhttp, in C), written once as bytes.

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

from gateway.pipeline.cookies import sets_keygate_cookie
from gateway.pipeline.strip import HOP_BY_HOP

#: Fields that send a request to aiohttp: other framing, protocol switches, interim answers.
_SLOW_FIELDS = frozenset({b"transfer-encoding", b"upgrade", b"expect"})
_HOP_BY_HOP = frozenset(name.encode() for name in HOP_BY_HOP)
_RESERVED = b"/_keygate/"
#: How aiohttp turns field bytes into text, and back: nothing is lost either way.
_TEXT = ("utf-8", "surrogateescape")


class _HeadReader:
    """httptools' callbacks for one head: the target (or reason) and the fields, as bytes."""

    __slots__ = ("fields", "target")

    def __init__(self) -> None:
        self.target = b""
        self.fields: list[tuple[bytes, bytes]] = []

    def on_url(self, url: bytes) -> None:
        self.target += url

    def on_status(self, reason: bytes) -> None:
        self.target += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, value))


class RelayRequest:
    """A request the relay forwards itself; what the stages read (a ``ProxiedRequest``)."""

    __slots__ = (
        "__dict__",
        "body_length",
        "headers",
        "http10",
        "keep_alive",
        "method",
        "raw_path",
        "remote",
    )

    def __init__(
        self,
        method: str,
        target: str,
        headers: CIMultiDictProxy[str],
        remote: str,
        body_length: int,
        keep_alive: bool,
        http10: bool,
    ) -> None:
        self.method = method
        self.http10 = http10
        self.raw_path = target
        self.headers = headers
        self.remote = remote
        self.body_length = body_length
        self.keep_alive = keep_alive

    scheme = "http"

    @property
    def host(self) -> str:
        """The Host header (only an HTTP/1.0 request may come without one)."""
        return self.headers.get("Host", "")

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


def _sets(set_cookie: bytes) -> bool:
    return sets_keygate_cookie(set_cookie.decode("latin-1"))


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
    hosts = 0
    connection: list[bytes] = []
    pairs = []
    for name, value in reader.fields:
        lower = name.lower()
        if lower in _SLOW_FIELDS:
            return None
        if lower == b"content-length":
            length = int(value)  # llhttp accepts digits only, and one value
        elif lower == b"host":
            hosts += 1
        elif lower == b"connection":
            connection.extend(token.strip().lower() for token in value.split(b","))
        pairs.append((name.decode(*_TEXT), value.decode(*_TEXT)))
    if hosts > 1 or (hosts == 0 and not http10):
        return None
    # RFC 9112 §9.3: HTTP/1.1 stays open unless told "close"; HTTP/1.0 only when asked.
    keep_alive = b"keep-alive" in connection if http10 else b"close" not in connection
    return RelayRequest(
        parser.get_method().decode("ascii"),
        target.decode("utf-8", "surrogateescape"),
        CIMultiDictProxy(CIMultiDict(pairs)),
        remote,
        length,
        keep_alive,
        http10,
    )


def request_head(method: str, target: str, host: str, headers: CIMultiDict[str]) -> bytes:
    """The head sent upstream: the stages' headers, ``Host`` the upstream's own."""
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
    lines.append("\r\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


class _ResponseReader(_HeadReader):
    """httptools' callbacks for a response: its head, then (when chunked) its body, decoded
    and framed again as chunks of the relay's own."""

    __slots__ = ("complete", "framed", "keep_alive", "parser", "parts")

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[bytes] = []
        self.complete = False
        self.framed = True
        self.parser: httptools.HttpResponseParser | None = None
        self.keep_alive = False

    def on_headers_complete(self) -> None:
        # Read here: once a body-less answer is complete, llhttp forgets it.
        assert self.parser is not None
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.parts.append(b"%x\r\n%b\r\n" % (len(body), body) if self.framed else body)

    def on_message_complete(self) -> None:
        self.complete = True


class ResponseHead:
    """An upstream response head: status, reason, fields, and how its body is framed."""

    __slots__ = ("_parser", "_reader", "chunked", "fields", "keep_alive", "length", "status")

    def __init__(self, head: bytes) -> None:
        """Read ``head`` (ending in the blank line); raises ``httptools.HttpParserError``."""
        self._reader = _ResponseReader()
        self._parser = self._reader.parser = httptools.HttpResponseParser(self._reader)
        self._parser.feed_data(head)
        self.status: int = self._parser.get_status_code()
        self.keep_alive = self._reader.keep_alive
        self.fields = self._reader.fields  # as received: name and value bytes
        self.length: int | None = None
        self.chunked = False
        for name, value in self._reader.fields:
            lower = name.lower()
            if lower == b"content-length":
                self.length = int(value)
            elif lower == b"transfer-encoding":
                self.chunked = value.strip().lower().endswith(b"chunked")

    def unframed(self) -> None:
        """Pass decoded chunks on as they are (for an HTTP/1.0 client, which reads to the
        close), without the relay's own chunk framing."""
        self._reader.framed = False

    def decode_chunks(self, data: bytes) -> tuple[bytes, bool, bool]:
        """Feed chunked body bytes. Returns what to send the client (chunks of the relay's
        own framing, the last one included once the upstream's has come), whether the body is
        over, and whether the upstream stopped cleanly there (no bytes after its last chunk).
        Raises ``httptools.HttpParserError`` on broken framing before the end."""
        reader = self._reader
        try:
            self._parser.feed_data(data)
            clean = True
        except httptools.HttpParserError:
            if not reader.complete:
                raise
            clean = False
        out = b"".join(reader.parts)
        reader.parts.clear()
        if reader.complete:
            return (out + b"0\r\n\r\n" if reader.framed else out), True, clean
        return out, False, clean

    def client_head(
        self,
        added: Mapping[str, str],
        *,
        chunked: bool,
        close: bool,
        keep_alive: bool = False,
        foreign: bool = True,
    ) -> bytes:
        """The head for the client: hop-by-hop fields (and those ``Connection`` names) and the
        fields in ``added`` replaced; ``chunked`` when the relay frames the body itself. From a
        ``foreign`` upstream, a ``Set-Cookie`` for one of keygate's cookies is dropped."""
        fields = self._reader.fields
        drop = set(_HOP_BY_HOP)
        for name, value in fields:
            if name.lower() == b"connection":
                drop.update(token.strip().lower() for token in value.split(b","))
        drop.update(name.lower().encode() for name in added)
        lines = [b"HTTP/1.1 %d %s\r\n" % (self.status, self._reader.target)]
        for name, value in fields:
            lower = name.lower()
            if lower not in drop and not (foreign and lower == b"set-cookie" and _sets(value)):
                lines.append(b"%s: %s\r\n" % (name, value))
        for added_name, text in added.items():
            lines.append(f"{added_name}: {text}\r\n".encode())
        if chunked:
            lines.append(b"Transfer-Encoding: chunked\r\n")
        if close:
            lines.append(b"Connection: close\r\n")
        elif keep_alive:
            lines.append(b"Connection: keep-alive\r\n")  # HTTP/1.0 closes without it
        lines.append(b"\r\n")
        return b"".join(lines)


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
