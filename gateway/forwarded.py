"""X-Forwarded-* and the client's address, believing only configured proxies.

Forwarded headers are not trusted by default (as in aiohttp): a client can write anything in
them, so they only count when the direct peer is in ``KEYGATE_TRUSTED_PROXIES``.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Callable, Sequence

from multidict import CIMultiDict, CIMultiDictProxy

from keygate_core import headers as wire

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Headers = CIMultiDictProxy[str] | CIMultiDict[str]

#: Sent as X-Forwarded-For when the peer has no IP address (a Unix socket), as RFC 7239 does.
UNKNOWN_PEER = "unknown"

log = logging.getLogger("keygate.gateway")

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


@functools.lru_cache(maxsize=4096)
def parse_address(text: str) -> Address | None:
    """The IP address in one X-Forwarded-For entry or peer string, ``None`` when there is none.

    Accepts bare IPv4/IPv6, ``[v6]``, ``[v6]:port`` and ``v4:port`` (some proxies append ports).
    Pure, so answers are remembered: the same few peers ask on every request.
    """
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def _text(address: Address) -> str:
    # str() of an address is slow enough to show in profiles; the same few peers come back.
    # An IPv4-mapped IPv6 address (a dual-stack socket's IPv4 peer) is that IPv4 address, so
    # per-client keys downstream do not tell ``::ffff:a.b.c.d`` from ``a.b.c.d``.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def is_trusted(address: Address | None, trusted_proxies: Sequence[Network]) -> bool:
    """Whether ``address`` lies in one of ``trusted_proxies``.

    An IPv4-mapped IPv6 address (``::ffff:10.0.0.1``, how dual-stack sockets report IPv4 peers)
    is also matched against IPv4 networks.
    """
    if address is None or not trusted_proxies:
        return False
    candidates: list[Address] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    return any(a in network for a in candidates for network in trusted_proxies)


def proxied_request_id(
    existing: Headers, peer_ip: str, trusted_proxies: Sequence[Network]
) -> str | None:
    """The ``X-Request-Id`` a trusted proxy sent, ``None`` from anyone else.

    A client's own id is never believed: it goes into logs and the audit log, and a client
    that could choose it could reuse someone else's to muddle an investigation.
    """
    if not trusted_proxies:
        return None  # the common deployment: nobody to believe, nothing to parse
    claimed = existing.get(wire.REQUEST_ID)
    if claimed is None or not is_trusted(parse_address(peer_ip), trusted_proxies):
        return None
    return claimed


def _chain(existing: Headers) -> list[str]:
    return [
        entry.strip()
        for value in existing.getall("X-Forwarded-For", [])
        for entry in value.split(",")
        if entry.strip()
    ]


def forwarded_headers(
    existing: Headers,
    *,
    peer_ip: str,
    scheme: str,
    host: str,
    trusted_proxies: Sequence[Network],
) -> list[tuple[str, str]]:
    """``X-Forwarded-For``, ``-Proto`` and ``-Host`` for the upstream, always all three.

    ``existing`` is the request as received (before stripping). When the direct peer is a
    trusted proxy, its ``X-Forwarded-For`` chain is kept with ``peer_ip`` appended, and its
    ``X-Forwarded-Proto``/``-Host`` are kept (falling back to ``scheme``/``host``). From any
    other peer the client's values are discarded: the chain is just ``peer_ip``
    (:data:`UNKNOWN_PEER` when it is empty), proto is ``scheme`` and host is ``host``.

    Callers *set* these names, replacing whatever the client sent.
    """
    if is_trusted(parse_address(peer_ip), trusted_proxies):
        chain = ", ".join([*_chain(existing), peer_ip])
        proto = ", ".join(existing.getall("X-Forwarded-Proto", [])) or scheme
        forwarded_host = ", ".join(existing.getall("X-Forwarded-Host", [])) or host
        return [
            ("X-Forwarded-For", chain),
            ("X-Forwarded-Proto", proto),
            ("X-Forwarded-Host", forwarded_host),
        ]
    return [
        ("X-Forwarded-For", peer_ip or UNKNOWN_PEER),
        ("X-Forwarded-Proto", scheme),
        ("X-Forwarded-Host", host),
    ]


def client_address(existing: Headers, *, peer_ip: str, trusted_proxies: Sequence[Network]) -> str:
    """The address per-client limits apply to, normalised (``str(ip_address)``, IPv4-mapped
    IPv6 as IPv4).

    The direct peer, unless it is a trusted proxy; then the right-most ``X-Forwarded-For``
    entry outside every trusted network. Walking stops at an entry that is not an address —
    nothing to its left can be verified — and the nearest trusted hop is used instead; if every
    hop is trusted, the left-most one. A peer that is not an IP address is returned as given.
    """
    peer = parse_address(peer_ip)
    if peer is None:
        return peer_ip
    if not is_trusted(peer, trusted_proxies):
        return _text(peer)
    nearest: Address = peer
    for entry in reversed(_chain(existing)):
        hop = parse_address(entry)
        if hop is None:
            break
        if not is_trusted(hop, trusted_proxies):
            return _text(hop)
        nearest = hop
    return _text(nearest)


class ForwardingTrust:
    """Whether a request's peer is a trusted proxy, noticing when it is not but sent
    ``X-Forwarded-For`` anyway: behind a proxy that is missing from ``KEYGATE_TRUSTED_PROXIES``
    every client shares the proxy's address, and per-address limits hit all of them at once.
    Each such request calls ``on_ignored``; the first one in a process is also logged."""

    def __init__(self, trusted_proxies: Sequence[Network], on_ignored: Callable[[], None]) -> None:
        self._trusted = tuple(trusted_proxies)
        self._on_ignored = on_ignored
        self._warned = False

    def believed(self, headers: Headers, peer_ip: str) -> bool:
        """Whether the peer's forwarding headers are believed."""
        if is_trusted(parse_address(peer_ip), self._trusted):
            return True
        if "X-Forwarded-For" in headers:
            self._on_ignored()
            if not self._warned:
                self._warned = True
                log.warning(
                    "X-Forwarded-For ignored: the peer is not in KEYGATE_TRUSTED_PROXIES. Behind "
                    "a proxy or ingress every client then shares its address; add its range",
                    extra={"peer": peer_ip},
                )
        return False


def warn_without_trusted_proxies(host: str, trusted_proxies: Sequence[Network]) -> bool:
    """Log a warning (and say so) when the gateway listens beyond loopback and believes no
    proxy: the usual deployment behind an ingress, where the ingress must be trusted."""
    if trusted_proxies or host in _LOOPBACK_HOSTS:
        return False
    log.warning(
        "KEYGATE_TRUSTED_PROXIES is empty: every client is identified by its direct peer. "
        "Behind a proxy, load balancer or ingress, set it to that proxy's addresses, or all "
        "clients share one address for per-address limits and the audit log",
        extra={"host": host},
    )
    return True
