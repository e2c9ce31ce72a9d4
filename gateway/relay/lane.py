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
from gateway.pipeline.cookies import may_name_keygate_cookie
from gateway.pipeline.mutate import KEYGATE_SERVICES, IdentityHeaderNames, identity_headers
from gateway.pipeline.mutate import is_bearer as _is_bearer
from gateway.pipeline.strip import canonical_name, strip_inbound
from gateway.relay.heads import RelayRequest
from keygate_core import headers as wire

# What a field name gets: kept as it came, dropped, or decided by its value.
_KEEP, _DROP, _BEARER, _COOKIE, _STAGES = range(5)
#: Names whose verdict needs the stages: a Connection field names others to drop, and an
#: ``X-Forwarded-For`` from a stranger is counted (and logged once) by the forwarding check.
_NEED_STAGES = frozenset({"connection", "x-forwarded-for"})
#: Field names remembered before the memo starts over (a client may invent any number).
_NAMES = 1024
_TEXT = ("utf-8", "surrogateescape")
_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
_REQUEST_ID = f"{wire.REQUEST_ID}: ".encode()


class Lane:
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
        self._stripped = stripped
        self._names = names
        self._forward_bearer = forward_bearer
        self._trusted = trusted_proxies
        self._verdicts: dict[bytes, int] = {}
        self._identities: dict[int, tuple[Identity, bytes]] = {}

    def peer(self, remote: str) -> tuple[bool, str | None]:
        """Whether the peer at ``remote`` is a trusted proxy; if not, the client address of
        every request it sends (:func:`~gateway.forwarded.client_address`)."""
        if self._trusted and is_trusted(parse_address(remote), self._trusted):
            return True, None
        return False, client_address(_NO_HEADERS, peer_ip=remote, trusted_proxies=()) or None

    def fields(self, request: RelayRequest, rule: RouteRule, *, trusted: bool) -> bytes | None:
        """The field lines of ``request`` that go upstream on ``rule``, or ``None`` when the
        stages must decide (always for a ``trusted`` peer, a trusted proxy)."""
        if trusted or rule.upstream in KEYGATE_SERVICES or rule.workspace_header:
            return None
        verdicts = self._verdicts
        lines = []
        for name, value in request.raw_fields:
            verdict = verdicts.get(name)
            if verdict is None:
                verdict = self._verdict(name)
            if verdict == _DROP:
                continue
            if verdict == _STAGES or b"\r" in value or b"\n" in value or b"\0" in value:
                return None
            if verdict == _BEARER and _is_bearer(value.decode(*_TEXT)):
                continue
            if verdict == _COOKIE and may_name_keygate_cookie(value.decode(*_TEXT)):
                return None
            lines.append(name + b": " + value + b"\r\n")
        return b"".join(lines)

    def _verdict(self, name: bytes) -> int:
        text = name.decode(*_TEXT)
        key = canonical_name(text)
        if key in _NEED_STAGES:
            verdict = _STAGES
        elif key == "host":
            verdict = _DROP  # the upstream's own Host is written by the relay
        elif not strip_inbound(CIMultiDict([(text, "v")]), self._stripped):
            verdict = _DROP
        elif key == "authorization" and not self._forward_bearer:
            verdict = _BEARER
        elif key == "cookie":
            verdict = _COOKIE
        else:
            verdict = _KEEP
        if len(self._verdicts) >= _NAMES:
            self._verdicts.clear()
        self._verdicts[name] = verdict
        return verdict

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
        self, first_lines: str, fields: bytes, forwarded: bytes, request_id: str, identity: Identity
    ) -> bytes:
        """The whole head for the upstream: ``first_lines`` (the request line and ``Host``),
        the client's ``fields``, then what the gateway writes, in the order
        :meth:`~gateway.pipeline.mutate.Mutator.for_upstream` writes it: the ``forwarded``
        lines (:meth:`forwarded`), the request id, the identity headers."""
        return b"%b%b%b%b%b\r\n%b\r\n" % (
            first_lines.encode(*_TEXT),
            fields,
            forwarded,
            _REQUEST_ID,
            request_id.encode(),
            self._identity_lines(identity),
        )

    def _identity_lines(self, identity: Identity) -> bytes:
        known = self._identities.get(id(identity))
        if known is not None and known[0] is identity:
            return known[1]
        lines = "".join(f"{n}: {v}\r\n" for n, v in identity_headers(identity, self._names))
        if len(self._identities) >= _NAMES:
            self._identities.clear()
        encoded = lines.encode(*_TEXT)
        self._identities[id(identity)] = (identity, encoded)
        return encoded
