"""Strip: the first stage. Removes what a client must never decide for the upstream.

A client may not send the identity headers the gateway injects, in any spelling, nor headers that
only describe its connection to the gateway (hop-by-hop, RFC 9110 §7.6.1).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

#: Fields that describe one connection, never the request (RFC 9110 §7.6.1), plus the
#: non-standard Proxy-Connection that old clients still send. Lower-case.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
    }
)

# RFC 9110 §5.6.2 tchar; anything else in a field name is not HTTP and is dropped unread.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A value no HTTP parser would have produced; dropped rather than handed to the next hop to split.
_UNSAFE_VALUE = re.compile(r"[\r\n\x00]")


def canonical_name(name: str) -> str:
    """The form in which two field names are "the same header" to some server behind us.

    Lower-cased, and ``_`` read as ``-``: CGI-style servers (PHP, WSGI, nginx with
    ``underscores_in_headers``) fold ``X_User_Id`` and ``X-User-Id`` into one variable, so a
    client must not be able to smuggle one spelling past a check on the other.
    """
    return name.lower().replace("_", "-")


@functools.lru_cache(maxsize=4096)
def is_field_name(name: str) -> bool:
    """Whether ``name`` is a syntactically valid HTTP field name (an RFC 9110 token)."""
    return _TOKEN.fullmatch(name) is not None


@functools.lru_cache(maxsize=64)
def _canonical_names(names: tuple[str, ...]) -> frozenset[str]:
    # The protected names are the same tuple on every request: canonicalise them once.
    return frozenset(canonical_name(n) for n in names)


def strip_inbound(
    headers: CIMultiDictProxy[str] | CIMultiDict[str],
    protected: Iterable[str],
    *,
    keep_upgrade: bool = False,
) -> CIMultiDict[str]:
    """A new header set without anything the client may not send through the gateway.

    Removed, every copy of:

    * each ``protected`` name (the identity headers the gateway injects), matched
      case-insensitively with ``_`` read as ``-`` (see :func:`canonical_name`);
    * the hop-by-hop fields in :data:`HOP_BY_HOP`;
    * every field named in a ``Connection`` header (comma-separated, any case, whitespace and
      ``_`` spellings tolerated) — protected names included, though they go anyway;
    * any field whose name is not an RFC 9110 token, or whose value holds CR, LF or NUL.

    ``keep_upgrade`` is for a WebSocket handshake the forwarder passes on: when the client's
    ``Connection`` lists ``upgrade`` and it sent ``Upgrade``, the result keeps those ``Upgrade``
    values plus a fresh ``Connection: Upgrade`` naming nothing else (aiohttp's ``ws_connect``
    writes the same pair when they are absent, and keeps them when present). Everything else
    ``Connection`` named is still removed. Without an ``upgrade`` token the flag changes nothing,
    because RFC 9110 §7.8 only honours ``Upgrade`` when ``Connection`` names it.

    The input is not modified; surviving fields keep their order and spelling.
    """
    named: set[str] = set()
    for name, value in headers.items():
        if canonical_name(name) == "connection":
            named.update(canonical_name(t.strip(" \t")) for t in value.split(","))
    named.discard("")
    upgrading = keep_upgrade and "upgrade" in named
    identity = _canonical_names(tuple(protected))
    kept: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        key = canonical_name(name)
        if key in identity or not is_field_name(name) or _UNSAFE_VALUE.search(value):
            continue
        if (upgrading and key == "upgrade") or (key not in HOP_BY_HOP and key not in named):
            kept.add(name, value)
    if upgrading and "Upgrade" in kept:
        kept.add("Connection", "Upgrade")
    return kept
