"""What the pipeline decided about a request, as the relay and the aiohttp path carry it on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

from multidict import CIMultiDict

from gateway.identity import Identity
from gateway.pipeline.authz import RouteRule
from gateway.pipeline.limit import RateDecision

#: What a decided request carries on: its route, who is calling, and the limiter's decision
#: (``None`` when nothing limits it), from which each path writes the rate-limit headers.
Decided: TypeAlias = tuple[RouteRule, Identity, RateDecision | None]


@dataclass(frozen=True, slots=True)
class Unfinished:
    """Where :meth:`gateway.proxy.Pipeline.decide_now` stopped: before the identity
    (``None``), or after."""

    rule: RouteRule
    identity: Identity | None


class Outbound(NamedTuple):
    """A request ready to forward: where, with which headers, and what the answer gets added
    (a named tuple because one is made per request)."""

    rule: RouteRule
    base: str
    headers: CIMultiDict[str]
    response_headers: dict[str, str]
    #: Not one of keygate's services: it never gets or sets keygate's cookies.
    foreign: bool
