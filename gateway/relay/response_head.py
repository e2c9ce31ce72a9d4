"""An upstream's response head: read with httptools (llhttp, in C), rewritten for the client.

Each field name is lower-cased once, when the head is read; writing the client's head is then
one pass over the fields with set lookups, because almost every answer keeps every field.
"""

from __future__ import annotations

import functools
import re

import httptools

from gateway.pipeline.cookies import sets_keygate_cookie
from gateway.pipeline.limit import RATE_LIMIT_HEADERS
from gateway.pipeline.strip import HOP_BY_HOP
from gateway.relay import _plain
from gateway.relay.added import Added
from gateway.relay.heads import PLAIN_FIELD_LINE
from keygate_core import headers as wire

_HOP_BY_HOP = frozenset(name.encode() for name in HOP_BY_HOP)
#: The fields :class:`ResponseHead` reads, beyond passing them on.
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})
#: The head most upstreams send: HTTP/1.1, a status and reason, and every field a
#: :data:`~gateway.relay.heads.PLAIN_FIELD_LINE`.
_PLAIN_HEAD = re.compile(
    rb"HTTP/1\.1 [1-9][0-9][0-9] [\t\x20-\x7e\x80-\xff]*+\r\n"
    rb"(?:" + PLAIN_FIELD_LINE + rb")*+"
    rb"\r\n"
)
_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close"})
_NONE_NAMED: frozenset[bytes] = frozenset()
#: The names the relay adds to an answer (:meth:`gateway.proxy.Pipeline.answer_headers`).
_ADDED_NAMES = (wire.REQUEST_ID, *RATE_LIMIT_HEADERS)
#: The fields of a plain head that are more than passed on: its framing, what the client never
#: gets (hop-by-hop, what the relay adds), ``Set-Cookie`` (keygate's cookies are dropped).
#: A plain head without them goes to the client as it came.
_NOTABLE_NAMES = sorted(
    {*_HOP_BY_HOP, b"content-length", b"set-cookie", *(n.lower().encode() for n in _ADDED_NAMES)},
    key=len,
    reverse=True,
)
_plain.set_notable(tuple(_NOTABLE_NAMES))
_NOTABLE = re.compile(
    rb"\r\n(" + b"|".join(re.escape(name) for name in _NOTABLE_NAMES) + rb"): ([^\r]*)"
)
#: Longer Content-Length values are left to llhttp, which refuses what overflows.
_LONGEST_LENGTH = 15
#: What ends the client's head, by ``close`` and ``keep_alive`` (see
#: :meth:`ResponseHead.client_head`).
_ENDINGS = {
    (False, False): b"\r\n",
    (False, True): b"Connection: keep-alive\r\n\r\n",  # an HTTP/1.0 client closes without it
    (True, False): b"Connection: close\r\n\r\n",
    (True, True): b"Connection: close\r\n\r\n",
}
#: Final statuses whose answers have no body, whatever their framing fields say.
NO_BODY_STATUS = frozenset({204, 304})


class _ResponseReader:
    """httptools' callbacks for a response: its head, then (when chunked) its body, decoded
    and framed again as chunks of the relay's own."""

    __slots__ = ("complete", "fields", "framed", "keep_alive", "parser", "parts", "reason")

    def __init__(self) -> None:
        self.reason = b""
        self.fields: list[tuple[bytes, bytes]] = []
        self.parts: list[bytes] = []
        self.complete = False
        self.framed = True
        self.parser: httptools.HttpResponseParser | None = None
        self.keep_alive = False

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, value))

    def on_headers_complete(self) -> None:
        # Read here: once a body-less answer is complete, llhttp forgets it.
        assert self.parser is not None
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.parts.append(b"%x\r\n%b\r\n" % (len(body), body) if self.framed else body)

    def on_message_complete(self) -> None:
        self.complete = True


@functools.lru_cache(maxsize=256)
def _added(names: tuple[str, ...]) -> tuple[frozenset[bytes], bool]:
    """What the client never gets from the upstream when the relay adds ``names``: the
    hop-by-hop fields and ``names`` (lower-case); and whether :data:`_NOTABLE` finds every one
    of ``names`` in a head."""
    replaced = frozenset(n.lower().encode() for n in names)
    notable = replaced <= frozenset(_NOTABLE_NAMES)
    return _HOP_BY_HOP | replaced, notable


def _sets(set_cookie: bytes) -> bool:
    return sets_keygate_cookie(set_cookie.decode("latin-1"))


class ResponseHead:
    """An upstream response head: status, reason, fields, and how its body is framed."""

    __slots__ = (
        "_fields",
        "_lower",
        "_named",
        "_notable",
        "_parser",
        "_reader",
        "_verbatim",
        "chunked",
        "keep_alive",
        "length",
        "reason",
        "status",
    )

    def __init__(self, head: bytes, *, plain: bool = True) -> None:
        """Read ``head`` (ending in the blank line); raises ``httptools.HttpParserError``.
        Without ``plain``, llhttp reads even a plain head (to compare the two readings)."""
        self._fields: list[tuple[bytes, bytes]] | None = None
        self.chunked = False
        if plain and _PLAIN_HEAD.fullmatch(head) is not None and self._read_plain(head):
            return
        self._verbatim: bytes | None = None
        #: A plain head holds a field :data:`_NOTABLE` finds, besides ``Content-Length``.
        self._notable = True
        #: What a ``Connection`` field names (hop-by-hop too), lower-case.
        self._named: frozenset[bytes] | set[bytes] = set()
        self.length: int | None = None
        reader = _ResponseReader()
        parser = reader.parser = httptools.HttpResponseParser(reader)
        self._reader: _ResponseReader | None = reader
        self._parser: httptools.HttpResponseParser | None = parser
        parser.feed_data(head)
        self.status: int = parser.get_status_code()
        self.reason = reader.reason
        self.keep_alive = reader.keep_alive
        self._fields = reader.fields
        self._lower = lower = [name.lower() for name, _ in reader.fields]
        if _FRAMING.isdisjoint(lower):
            return
        for (_, value), name in zip(reader.fields, lower, strict=True):
            if name == b"content-length":
                self.length = int(value)
            elif name == b"transfer-encoding":
                self.chunked = value.strip().lower().endswith(b"chunked")
            elif name == b"connection":
                self._named.update(token.strip().lower() for token in value.split(b","))

    def _read_plain(self, head: bytes) -> bool:
        """Read a head :data:`_PLAIN_HEAD` matches, as llhttp would; ``False`` (and llhttp
        reads it) for anything more: ``Transfer-Encoding``, a second or long
        ``Content-Length``, a ``Connection`` naming more than ``keep-alive`` or ``close``."""
        length = None
        named: frozenset[bytes] = _NONE_NAMED
        notable = False
        # Names and values lower-case: a Connection value's tokens are compared so anyway.
        for name, value in _NOTABLE.findall(head.lower()):
            if name == b"content-length":
                if length is not None or len(value) > _LONGEST_LENGTH or not value.isdigit():
                    return False  # framing llhttp decides (and may refuse)
                length = int(value)
                continue
            notable = True
            if name == b"transfer-encoding":
                return False
            if name == b"connection":
                tokens = frozenset(token.strip() for token in value.split(b","))
                if not tokens <= _PLAIN_CONNECTION:
                    return False
                named |= tokens
        status = int(head[9:12])
        if status == 101:
            return False  # llhttp reads a protocol switch
        self.status = status
        self.reason = head[13 : head.index(b"\r\n")]
        self.length = length
        # llhttp's should_keep_alive() for HTTP/1.1: not "close", and the body not read to the
        # end of the connection (RFC 9112 §6.3).
        self.keep_alive = b"close" not in named and (
            length is not None or status < 200 or status in NO_BODY_STATUS
        )
        self._named = named
        self._notable = notable
        self._verbatim = head
        self._reader = self._parser = None
        return True

    @property
    def fields(self) -> list[tuple[bytes, bytes]]:
        """The fields as received: name and value bytes."""
        if self._fields is None:
            self._split()
        assert self._fields is not None
        return self._fields

    def _lower_names(self) -> list[bytes]:
        """Each field's name, lower-case."""
        if self._fields is None:
            self._split()
        return self._lower

    def _split(self) -> None:
        """The fields of a plain head, when more than its notable ones are asked for."""
        assert self._verbatim is not None
        lines = self._verbatim[:-4].split(b"\r\n")
        self._fields = fields = [line.partition(b": ")[::2] for line in lines[1:]]
        self._lower = [name.lower() for name, _ in fields]

    def field(self, lower_name: bytes) -> bytes | None:
        """The first value of the field named ``lower_name`` (lower-case), if any."""
        for (_, value), name in zip(self.fields, self._lower_names(), strict=True):
            if name == lower_name:
                return value
        return None

    def unframed(self) -> None:
        """Pass decoded chunks on as they are (for an HTTP/1.0 client, which reads to the
        close), without the relay's own chunk framing."""
        if self._reader is not None:  # a plain head is never chunked
            self._reader.framed = False

    def decode_chunks(self, data: bytes) -> tuple[bytes, bool, bool]:
        """Feed chunked body bytes. Returns what to send the client (chunks of the relay's
        own framing, the last one included once the upstream's has come), whether the body is
        over, and whether the upstream stopped cleanly there (no bytes after its last chunk).
        Raises ``httptools.HttpParserError`` on broken framing before the end."""
        reader, parser = self._reader, self._parser
        assert reader is not None and parser is not None  # a chunked head is never plain
        try:
            parser.feed_data(data)
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
        added: Added,
        *,
        chunked: bool,
        close: bool,
        keep_alive: bool = False,
        foreign: bool = True,
    ) -> bytes:
        """The head for the client: hop-by-hop fields (and those ``Connection`` names) and the
        fields in ``added`` replaced; ``chunked`` when the relay frames the body itself. From a
        ``foreign`` upstream, a ``Set-Cookie`` for one of keygate's cookies is dropped."""
        drop, notable = _added(added.names)
        if self._named:
            drop = drop | self._named
        verbatim = self._verbatim
        if verbatim is not None and not self._notable and notable:
            lines = [verbatim[:-2]]  # nothing in it is dropped: written as it came
        elif (
            verbatim is not None
            and drop.isdisjoint(self._lower_names())
            and not (foreign and b"set-cookie" in self._lower_names())
        ):
            lines = [verbatim[:-2]]  # every line kept, and written as it came
        else:
            lines = [b"HTTP/1.1 %d %s\r\n" % (self.status, self.reason)]
            for (name, value), lower in zip(self.fields, self._lower_names(), strict=True):
                if lower in drop or (foreign and lower == b"set-cookie" and _sets(value)):
                    continue
                lines.append(name + b": " + value + b"\r\n")
        lines.append(added.lines)
        if chunked:
            lines.append(b"Transfer-Encoding: chunked\r\n")
        lines.append(_ENDINGS[close, keep_alive])
        return b"".join(lines)


def whole_answer(
    data: bytes, added: Added, *, close: bool, keep_alive: bool = False
) -> tuple[int, bytes] | None:
    """The status of the answer in ``data`` and what the client gets of it, when ``data`` is
    one whole answer of the kind almost every upstream sends: a plain head
    (:data:`_PLAIN_HEAD`) with a final status other than 204 and 304, whose only field
    :data:`_NOTABLE` finds is one ``Content-Length``, and exactly that many body bytes after
    it. Nothing in such a head is dropped: the client gets it as it came with ``added`` after
    its fields, then the body (what :meth:`ResponseHead.client_head` writes for it, with the
    same ``close`` and ``keep_alive``), without the head read into an object. ``None`` for
    anything else: :class:`ResponseHead` reads it. Not for the answer to a ``HEAD`` request,
    whose ``Content-Length`` describes a body that does not follow.

    Read by :mod:`gateway.relay._plain` (compiled), in one pass; the tests compare what it
    gives with :class:`ResponseHead`'s reading of the same bytes."""
    if not _added(added.names)[1]:
        return None  # a field it adds might be in the head, to be replaced
    return _plain.whole_answer(data, added.lines, _ENDINGS[close, keep_alive])
