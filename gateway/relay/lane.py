"""The upstream head of a plain request, built from the request's own field lines.

Most requests need nothing of strip and mutate but their verdict on each field name: every
field is kept as it came, or dropped whatever its value (an identity header, a hop-by-hop one),
and the gateway's own fields go after them. For those the relay skips the header multidicts that
:func:`gateway.pipeline.strip.strip_inbound` and :meth:`gateway.pipeline.mutate.Mutator.
for_upstream` work on, and copies the kept field lines as bytes.

A request takes the stages instead (:meth:`Lane.fields` answers ``None``) when its peer is a
trusted proxy, it sends a field whose verdict depends on more than its name (``Cookie``
carrying one of keygate's cookies, ``Connection``, ``X-Forwarded-For``, which is counted when a
stranger sends it), a value with CR, LF or NUL, or goes to one of keygate's own services or
through a workspace-header rule. Both ways give the same bytes: the lane asks the stages for
each name's verdict, and ``tests/unit/gateway/test_relay_lane.py`` compares the two heads.
The lane's lines are collected while the head is read (:mod:`gateway.relay.fields`): a request
read with a lane's names carries them.
"""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from gateway.forwarded import (
    Network,
    client_address,
    forwarded_headers,
    is_trusted,
    parse_address,
)
from gateway.identity import Identity
from gateway.pipeline.authz import RouteRule
from gateway.pipeline.mutate import KEYGATE_SERVICES, IdentityHeaderNames, identity_headers
from gateway.pipeline.strip import canonical_name, strip_inbound
from gateway.relay.fields import BEARER, COOKIE, DROP, KEEP, STAGES, FieldNames
from gateway.relay.heads import RelayRequest
from keygate_core import headers as wire

#: Names whose verdict needs the stages: a Connection field names others to drop, and an
#: ``X-Forwarded-For`` from a stranger is counted (and logged once) by the forwarding check.
_NEED_STAGES = frozenset({"connection", "x-forwarded-for"})
#: Field names remembered before the memo starts over (a client may invent any number).
_NAMES = 1024
_TEXT = ("utf-8", "surrogateescape")
_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
_REQUEST_ID = f"{wire.REQUEST_ID}: ".encode()


class Lane(FieldNames):
    """The lane as configured for one gateway: strip's verdicts, mutate's names."""

    def __init__(
        self,
        stripped: tuple[str, ...],
        names: IdentityHeaderNames,
        *,
        forward_bearer: bool,
        trusted_proxies: tuple[Network, ...],
    ) -> None:
        """``stripped`` is what strip removes from a peer that is not a trusted proxy."""
        super().__init__()
        self._stripped = stripped
        self._names = names
        self._forward_bearer = forward_bearer
        self._trusted = trusted_proxies
        self._identities: dict[int, tuple[Identity, bytes]] = {}
        #: The identity header lines of an anonymous request.
        self.anonymous_lines = self.identity_lines(Identity.anonymous())

    def peer(self, remote: str) -> tuple[bool, str | None]:
        """Whether the peer at ``remote`` is a trusted proxy; if not, the client address of
        every request it sends (:func:`~gateway.forwarded.client_address`)."""
        if self._trusted and is_trusted(parse_address(remote), self._trusted):
            return True, None
        return False, client_address(_NO_HEADERS, peer_ip=remote, trusted_proxies=()) or None

    @staticmethod
    def takes(rule: RouteRule) -> bool:
        """Whether requests on ``rule`` may take the lane: not to keygate's own services, no
        workspace header to read."""
        return rule.upstream not in KEYGATE_SERVICES and not rule.workspace_header

    def verdict(self, name: bytes) -> int:
        """What the lane does with a field named ``name`` (see :mod:`gateway.relay.fields`)."""
        text = name.decode(*_TEXT)
        key = canonical_name(text)
        if key in _NEED_STAGES:
            return STAGES
        if key == "host":
            return DROP  # the upstream's own Host is written by the relay
        if not strip_inbound(CIMultiDict([(text, "v")]), self._stripped):
            return DROP
        if key == "authorization" and not self._forward_bearer:
            return BEARER
        if key == "cookie":
            return COOKIE
        return KEEP

    def forwarded(self, remote: str, host: str) -> bytes:
        """The ``X-Forwarded-*`` lines for a request with ``host`` from ``remote``, a peer
        that is not a trusted proxy."""
        forwarded = forwarded_headers(
            _NO_HEADERS,  # read from a trusted proxy only, and the lane has none
            peer_ip=remote,
            scheme=RelayRequest.scheme,
            host=host,
            trusted_proxies=self._trusted,
        )
        return "".join([f"{name}: {value}\r\n" for name, value in forwarded]).encode(*_TEXT)

    def head(
        self,
        first: tuple[bytes, bytes, bytes],
        fields: bytes,
        forwarded: bytes,
        request_id: str,
        identity_lines: bytes,
    ) -> bytes:
        """The whole head for the upstream: the request line and ``Host`` from ``first`` (the
        method, the target and the upstream's host), the client's ``fields``, then what the
        gateway writes, in the order :meth:`~gateway.pipeline.mutate.Mutator.for_upstream`
        writes it: the ``forwarded`` lines (:meth:`forwarded`), the request id, the identity
        headers (:meth:`identity_lines`)."""
        return b"%b %b HTTP/1.1\r\nHost: %b\r\n%b%b%b%b\r\n%b\r\n" % (
            *first,
            fields,
            forwarded,
            _REQUEST_ID,
            request_id.encode(),
            identity_lines,
        )

    def identity_lines(self, identity: Identity) -> bytes:
        """The identity header lines of a request made by ``identity``, remembered."""
        known = self._identities.get(id(identity))
        if known is not None and known[0] is identity:
            return known[1]
        lines = "".join(f"{n}: {v}\r\n" for n, v in identity_headers(identity, self._names))
        if len(self._identities) >= _NAMES:
            self._identities.clear()
        encoded = lines.encode(*_TEXT)
        self._identities[id(identity)] = (identity, encoded)
        return encoded
