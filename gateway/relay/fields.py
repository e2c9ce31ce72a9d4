"""What the relay makes of each request field name, remembered per name as sent.

Reading a request head is one pass over its fields (:func:`gateway.relay.heads.read_request`):
the relay reads the few fields it acts on (framing, ``Host``, ``Connection``,
``Authorization``), and the lane (:mod:`gateway.relay.lane`) collects in the same pass the
field lines that go upstream as they came. Both come from one memo entry per field name: its
lower-case spelling when the relay reads the field, and the lane's verdict on it.
"""

from __future__ import annotations

from gateway.pipeline.cookies import may_name_keygate_cookie
from gateway.pipeline.mutate import is_bearer

#: The lane's verdicts: kept as it came, dropped, or decided by its value (a Bearer
#: ``Authorization`` is dropped, a ``Cookie`` naming keygate's cookies takes the stages), or
#: the stages decide for the whole request.
KEEP, DROP, BEARER, COOKIE, STAGES = range(5)
#: Fields that send a request to aiohttp: other framing, protocol switches, interim answers.
SLOW_FIELDS = frozenset({b"transfer-encoding", b"upgrade", b"expect"})
#: Fields the relay reads, beyond passing them on.
READ_FIELDS = SLOW_FIELDS | {b"content-length", b"host", b"connection", b"authorization"}
#: Names remembered before the memo starts over (a client may invent any number).
NAMES = 1024
_TEXT = ("utf-8", "surrogateescape")


class FieldNames:
    """The memo: each name → its lower-case spelling when the relay reads it (else ``b""``)
    and the lane's verdict. Without a lane (this class) every verdict is :data:`STAGES`."""

    def __init__(self) -> None:
        self.kinds: dict[bytes, tuple[bytes, int]] = {}

    def kind(self, name: bytes) -> tuple[bytes, int]:
        """What the relay makes of ``name``, remembered."""
        lower = name.lower()
        kind = (lower if lower in READ_FIELDS else b"", self.verdict(name))
        if len(self.kinds) >= NAMES:
            self.kinds.clear()
        self.kinds[name] = kind
        return kind

    def verdict(self, name: bytes) -> int:
        """The lane's verdict on a field named ``name``."""
        return STAGES


def lane_line(lines: list[bytes], verdict: int, name: bytes, value: bytes) -> list[bytes] | None:
    """``lines`` with the field added when the lane sends it on, or ``None`` when the stages
    must decide: for every verdict but a :data:`DROP`, and a :data:`KEEP` whose value was not
    checked for CR, LF and NUL (the plain reading's pattern allows none)."""
    if verdict == STAGES or b"\r" in value or b"\n" in value or b"\0" in value:
        return None
    if verdict == BEARER and is_bearer(value.decode(*_TEXT)):
        return lines
    if verdict == COOKIE and may_name_keygate_cookie(value.decode(*_TEXT)):
        return None
    lines.append(name + b": " + value + b"\r\n")
    return lines
