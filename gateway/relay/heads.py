"""Request heads, read with httptools (llhttp, in C); heads sent upstream and answers of keygate's
own making, written once as bytes (an upstream's answer: :mod:`gateway.relay.response_head`).

The relay reads a request head only when it has all of it (up to the blank line), so a request
it will not handle on its fast path can be handed to aiohttp whole. :func:`read_request` says
which requests those are: anything but a plain HTTP/1.1 request with an origin-form target and
an optional Content-Length body, or one for keygate's own ``/_keygate/`` paths.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from enum import Enum
from http.cookies import Morsel
from types import MappingProxyType
from typing import Final, Literal

import httptools
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.pipeline.mutate import is_bearer
from gateway.relay import _plain
from gateway.relay.fields import BEARER, DROP, KEEP, SLOW_FIELDS, FieldNames, lane_line

_RESERVED = b"/_keygate/"
#: How aiohttp turns field bytes into text, and back: nothing is lost either way.
_TEXT = ("utf-8", "surrogateescape")
#: A field line written ``Name: value`` with one space and no blanks around the value, in
#: characters llhttp allows (RFC 9110 §5.5: visible characters, spaces and tabs inside, and
#: obs-text); shared with the answer heads' reading (:mod:`gateway.relay.response_head`).
#: The value is one run of those characters that neither starts nor ends with a blank (the
#: look-ahead and look-behind), or nothing: one run is faster to match than words and blanks.
PLAIN_FIELD_LINE = (
    rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]++: "
    rb"(?:(?![\t\x20])[\t\x20-\x7e\x80-\xff]++(?<![\t\x20]))?\r\n"
)
#: The head most clients send: a common method, an origin-form target in characters every
#: parser takes, HTTP/1.1 or 1.0, and every field a :data:`PLAIN_FIELD_LINE`. Groups: method,
#: target, minor version, the field lines.
_PLAIN_REQUEST = re.compile(
    rb"(GET|HEAD|POST|PUT|DELETE|PATCH|OPTIONS) (/[!$%&'()*+,\-./0-9:;=?@A-Z_a-z~]*+) "
    rb"HTTP/1\.([01])\r\n"
    rb"((?:" + PLAIN_FIELD_LINE + rb")*+)"
    rb"\r\n"
)
#: One field line of a head :data:`_PLAIN_REQUEST` matched.
_PLAIN_FIELD = re.compile(rb"([^:]+): ([^\r]*)\r\n")
#: Longer Content-Length values are left to llhttp, which refuses what overflows.
_LONGEST_LENGTH = 15


class _Undecided(Enum):
    """What :func:`_request` answers when the plain reading leaves the head to llhttp (an
    enum member, so that the type checker tells it from a request without a cast)."""

    UNDECIDED = 0


_UNDECIDED: Final = _Undecided.UNDECIDED
#: The names of requests read without a lane: every lane verdict is "the stages decide".
NO_LANE = FieldNames()


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
        "authorization",
        "body_length",
        "encoded_path",
        "host",
        "http10",
        "keep_alive",
        "lane_lines",
        "method",
        "path",
        "raw_fields",
        "raw_path",
        "remote",
        "target",
    )

    def __init__(
        self,
        method: str,
        target: bytes,
        raw_fields: list[tuple[bytes, bytes]],
        remote: str,
        body_length: int,
        keep_alive: bool,
        http10: bool,
        host: str = "",
        authorization: list[str] | None = None,
        lane_lines: bytes | None = None,
    ) -> None:
        self.method = method
        #: The fields as received: name and value bytes.
        self.raw_fields = raw_fields
        self.http10 = http10
        #: The request target as sent (origin-form: the path and query, still encoded).
        self.target = target
        self.raw_path = raw_path = target.decode(*_TEXT)
        self.remote = remote
        self.body_length = body_length
        self.keep_alive = keep_alive
        #: The Host header (only an HTTP/1.0 request may come without one).
        self.host = host
        #: Every Authorization field's value, as text (see
        #: :func:`gateway.request.authorization_values`).
        self.authorization = authorization if authorization is not None else []
        #: The field lines the lane sends upstream, when it can (see :mod:`gateway.relay.lane`).
        self.lane_lines = lane_lines
        path = raw_path.split("?", 1)[0] if b"?" in target else raw_path
        #: The path without the query, still encoded.
        self.encoded_path = path
        #: The decoded path, exactly as aiohttp decodes it (yarl), for route matching.
        self.path = _decoded(path) if "%" in path else path

    scheme = "http"

    @functools.cached_property
    def headers(self) -> CIMultiDictProxy[str]:
        """The fields as text, decoded as aiohttp decodes them; made when a stage first asks
        (the lane needs none of them)."""
        fields = [(name.decode(*_TEXT), value.decode(*_TEXT)) for name, value in self.raw_fields]
        return CIMultiDictProxy(CIMultiDict(fields))

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


def read_request(
    head: bytes, remote: str, names: FieldNames = NO_LANE, *, plain: bool = True
) -> RelayRequest | None:
    """The request whose complete head (ending in a blank line) is ``head``, or ``None`` when
    aiohttp should answer it: not HTTP/1.1, not a plain origin-form target, keygate's own
    paths, chunked or other framing, ``Upgrade``, ``Expect``, a second ``Host``, a bare-LF
    head, or a head llhttp refuses (aiohttp then gives the 400).

    A head :data:`_PLAIN_REQUEST` matches is read without llhttp, with the same outcome
    (``tests/unit/gateway/test_relay_request_head.py`` compares the two): by the compiled
    reading (:mod:`gateway.relay._plain`) when it is sure, else by :func:`_request`. Without
    ``plain``, llhttp reads every head. ``names`` is the lane's
    (:class:`~gateway.relay.lane.Lane`) when the request's field lines for it are wanted."""
    if plain:
        compiled = _plain.read_request(head, names.kinds, remote)
        if compiled is not None:
            return RelayRequest(*compiled)
        match = _PLAIN_REQUEST.fullmatch(head)
        if match is not None:
            method, target, minor, lines = match.groups()
            fields = _PLAIN_FIELD.findall(lines)
            read = _request(method, target, minor == b"0", fields, remote, names, True)
            if read is not _UNDECIDED:
                return read
    if b"\n\n" in head:
        return None  # a bare-LF head: aiohttp answers those
    reader = _HeadReader()
    try:
        parser = httptools.HttpRequestParser(reader)
        parser.feed_data(head)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        return None
    # llhttp has checked the request line; it ends in the version.
    line_end = head.index(b"\r\n")
    version = head[line_end - 3 : line_end]
    if version not in (b"1.1", b"1.0"):
        return None
    http10 = version == b"1.0"
    request = _request(parser.get_method(), reader.target, http10, reader.fields, remote, names)
    assert request is not _UNDECIDED  # only the plain reading leaves a head undecided
    return request


def _request(
    method: bytes,
    target: bytes,
    http10: bool,
    fields: list[tuple[bytes, bytes]],
    remote: str,
    names: FieldNames,
    plain: bool = False,
) -> RelayRequest | Literal[_Undecided.UNDECIDED] | None:
    """The request, once its head is read; ``None`` for what :func:`read_request` leaves to
    aiohttp. From the ``plain`` reading, :data:`_UNDECIDED` when its ``Content-Length`` is for
    llhttp to judge (more than one, or not one short run of digits)."""
    if not target.startswith(b"/") or target.startswith(_RESERVED) or b"#" in target:
        return None
    length = -1
    hosts: list[bytes] = []
    connection: list[bytes] = []
    authorization: list[str] = []
    lines: list[bytes] | None = []
    kinds = names.kinds
    for name, value in fields:
        kind = kinds.get(name)
        if kind is None:
            kind = names.kind(name)
        lower, verdict = kind
        if lower:
            if lower in SLOW_FIELDS:
                return None
            if lower == b"content-length":
                # llhttp allows digits only, and one value; the plain reading checks.
                if plain and (length >= 0 or len(value) > _LONGEST_LENGTH or not value.isdigit()):
                    return _UNDECIDED
                length = int(value)
            elif lower == b"host":
                hosts.append(value)
            elif lower == b"authorization":
                text = value.decode(*_TEXT)
                authorization.append(text)
                if verdict == BEARER and plain and is_bearer(text):
                    continue  # not for the upstream (lane_line's verdict, read once)
            else:
                connection.extend(token.strip().lower() for token in value.split(b","))
        if lines is not None and verdict != DROP:
            if verdict == KEEP and plain:
                lines.append(name + b": " + value + b"\r\n")
            else:
                lines = lane_line(lines, verdict, name, value)
    if len(hosts) > 1 or (not hosts and not http10):
        return None
    # RFC 9112 §9.3: HTTP/1.1 stays open unless told "close"; HTTP/1.0 only when asked.
    keep_alive = b"keep-alive" in connection if http10 else b"close" not in connection
    return RelayRequest(
        _METHODS.get(method) or method.decode("ascii"),
        target,
        fields,
        remote,
        max(length, 0),
        keep_alive,
        http10,
        hosts[0].decode(*_TEXT) if hosts else "",
        authorization,
        None if lines is None else b"".join(lines),
    )


_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}


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
