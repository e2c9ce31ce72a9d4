"""The fields the relay adds to an upstream's answer (the request id; a token's rate-limit
headers), as bytes ready for the client's head: :meth:`gateway.relay.response_head.ResponseHead.
client_head` writes them after the upstream's own fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.pipeline.limit import RATE_LIMIT_HEADERS, RateDecision, rate_limit_lines
from keygate_core import headers as wire


@dataclass(slots=True)
class Added:
    """The fields the relay adds to an answer: their names, and their lines as bytes (a
    plain class, not a named tuple: one is made per request, in half the time)."""

    names: tuple[str, ...]
    lines: bytes


NO_FIELDS = Added((), b"")


def added(fields: Mapping[str, str]) -> Added:
    """``fields`` (:meth:`gateway.proxy.Pipeline.answer_headers`) as :class:`Added`."""
    return Added(tuple(fields), "".join([f"{n}: {v}\r\n" for n, v in fields.items()]).encode())


_REQUEST_ID_LINE = f"{wire.REQUEST_ID}: ".encode()
_ANONYMOUS_NAMES = (wire.REQUEST_ID,)
_TOKEN_NAMES = (*RATE_LIMIT_HEADERS, wire.REQUEST_ID)


def answer_fields(request_id: str, decision: RateDecision | None) -> Added:
    """What :meth:`gateway.proxy.Pipeline.answer_headers` adds, made as bytes at once."""
    if decision is None:
        return Added(_ANONYMOUS_NAMES, _REQUEST_ID_LINE + request_id.encode() + b"\r\n")
    return token_answer_fields(request_id, rate_limit_lines(decision))


def token_answer_fields(request_id: str, limit_lines: bytes) -> Added:
    """:func:`answer_fields` for a token's request whose ``limit_lines``
    (:func:`~gateway.pipeline.limit.rate_limit_lines`) are made already."""
    return Added(_TOKEN_NAMES, limit_lines + _REQUEST_ID_LINE + request_id.encode() + b"\r\n")
