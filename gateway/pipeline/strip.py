"""Strip: the first stage. Removes what a client must never decide for the upstream.

A client may not send a path that different servers read differently, the identity headers the
gateway injects (in any spelling), the forwarding headers the gateway writes, nor headers that
only describe its connection to the gateway (hop-by-hop, RFC 9110 §7.6.1).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import unquote

from multidict import CIMultiDict, CIMultiDictProxy

from gateway.errors import bad_path, missing_original_path
from keygate_core import headers as wire

if TYPE_CHECKING:
    from gateway.pipeline.mutate import IdentityHeaderNames

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

#: Forwarding facts only a trusted proxy may state; from any other peer every spelling goes.
UNTRUSTED_FORWARDING = (
    "Forwarded",
    "X-Real-IP",
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    # Path overrides some frameworks and proxies honour: the app must route on the path the
    # gateway decided on, not on one the client claims.
    "X-Forwarded-Uri",
    "X-Original-URI",
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-Envoy-Original-Path",
)
#: Written by the gateway itself; no spelling of them is taken from the client.
GATEWAY_WRITTEN = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", wire.REQUEST_ID)

# Encoded slashes, backslashes, NULs and dot segments mean different paths to different
# decoders; a policy decided on one reading must not be applied to another. So do a literal
# backslash (a slash to Windows-style servers) and a ;parameter in any segment: servlet
# containers drop it (/admin;x=1/users is /admin/users to Tomcat, Jetty and Undertow, and
# /public/..;/private a dot segment), other servers keep it. Encoded too, as some decode first.
_AMBIGUOUS = re.compile(r"%2f|%5c|%00|%2e|%3b|;|\\|(^|/)\.\.?(/|$)|//", re.IGNORECASE)
_PARAMETER = re.compile(r";|%3b", re.IGNORECASE)
# Still percent-encoded after one decoding: an application that decodes again reads another
# path (/public/%252e%252e/private is /public/../private to it).
_ENCODED_TWICE = re.compile(r"%[0-9a-f]{2}", re.IGNORECASE)

# RFC 9110 §5.6.2 tchar; anything else in a field name is not HTTP and is dropped unread.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


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


@functools.lru_cache(maxsize=4096)
def _read_name(name: str) -> tuple[str, bool]:
    # What strip needs of a field name, remembered: the same few names come on every request.
    return canonical_name(name), is_field_name(name)


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
    * any field whose name is not an RFC 9110 token, or whose value holds CR, LF or NUL (no
      HTTP parser would have produced it: dropped rather than handed to the next hop to split).

    ``keep_upgrade`` is for a WebSocket handshake the forwarder passes on: when the client's
    ``Connection`` lists ``upgrade`` and it sent ``Upgrade``, the result keeps those ``Upgrade``
    values plus a fresh ``Connection: Upgrade`` naming nothing else (aiohttp's ``ws_connect``
    writes the same pair when they are absent, and keeps them when present). Everything else
    ``Connection`` named is still removed. Without an ``upgrade`` token the flag changes nothing,
    because RFC 9110 §7.8 only honours ``Upgrade`` when ``Connection`` names it.

    The input is not modified; surviving fields keep their order and spelling.
    """
    named: set[str] = set()
    # "connection" has no "-" for a "_" to stand in for: the case-insensitive lookup finds every
    # spelling, and most requests have none.
    for value in headers.getall("Connection", ()):
        named.update(canonical_name(t.strip(" \t")) for t in value.split(","))
    named.discard("")
    upgrading = keep_upgrade and "upgrade" in named
    identity = _canonical_names(tuple(protected))
    kept: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        key, valid = _read_name(name)
        if key in identity or not valid or "\r" in value or "\n" in value or "\x00" in value:
            continue
        if (upgrading and key == "upgrade") or (key not in HOP_BY_HOP and key not in named):
            kept.add(name, value)
    if upgrading and "Upgrade" in kept:
        kept.add("Connection", "Upgrade")
    return kept


def protected_headers(
    app_names: IdentityHeaderNames, service_names: IdentityHeaderNames
) -> tuple[str, ...]:
    """Every identity header a client must never set: the names the app sees (``app_names``),
    the names keygate's own services read (``service_names``) and the internal headers."""
    return (
        *app_names.all(),
        *service_names.all(),
        wire.INTERNAL_SECRET,
        wire.CLIENT_ADDRESS,
        wire.IDENTITY_SOURCE,
        wire.EMAIL_VERIFIED,
        wire.RATE_LIMIT,
    )


@functools.lru_cache(maxsize=4096)
def is_ambiguous(raw_path: str) -> bool:
    """Whether ``raw_path`` (without the query) could name different routes to different
    readers: see :data:`_AMBIGUOUS` and :data:`_ENCODED_TWICE`. Remembered: most requests
    ask about paths asked about before."""
    return bool(_AMBIGUOUS.search(raw_path) or _ENCODED_TWICE.search(unquote(raw_path)))


def unambiguous_path(target: str, what: str = "the path") -> str:
    """The raw path of a request target (query dropped).

    Raises 400 ``ambiguous_path`` when it does not start with ``/`` (absolute-, authority- and
    asterisk-form targets are never joined to an upstream URL) or when it :func:`is_ambiguous`;
    ``what`` names the path in the error's detail.
    """
    raw_path = target.split("?", 1)[0]
    if not raw_path.startswith("/"):
        raise bad_path(f"{what} must start with /")
    if is_ambiguous(raw_path):
        if _PARAMETER.search(raw_path):
            raise bad_path(f"{what} contains a ; parameter")
        raise bad_path(f"{what} contains encoded slashes or dot segments")
    return raw_path


#: Where forward-auth proxies put the protected request's path: nginx, Traefik, Envoy.
ORIGINAL_PATH_HEADERS = ("X-Original-URI", "X-Forwarded-Uri", "X-Envoy-Original-Path")
_DISAGREE = f"{', '.join(ORIGINAL_PATH_HEADERS[:-1])} and {ORIGINAL_PATH_HEADERS[-1]} disagree"


def original_path(headers: CIMultiDictProxy[str]) -> str:
    """The raw path a forward-auth request asks about: ``X-Original-URI`` (nginx),
    ``X-Forwarded-Uri`` (Traefik) or ``X-Envoy-Original-Path`` (Envoy).

    Raises 400 ``missing_original_path`` without any of them (deciding for ``/`` would fail
    open), and 400 ``ambiguous_path`` when they disagree (each proxy passes the *others* through
    from the client, so two answers mean someone is lying) or the path is ambiguous.
    """
    claimed = {value for name in ORIGINAL_PATH_HEADERS for value in headers.getall(name, [])}
    if not claimed:
        raise missing_original_path(ORIGINAL_PATH_HEADERS)
    if len(claimed) > 1:
        raise bad_path(_DISAGREE)
    return unambiguous_path(claimed.pop(), "the original path")
