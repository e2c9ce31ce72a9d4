"""The relay's plain readings and the warm-token decision, compiled (``_plain.c``)."""

from typing import Any

KEEP: int
DROP: int
BEARER: int
COOKIE: int
STAGES: int

def read_request(
    head: bytes, kinds: dict[bytes, tuple[bytes, int]], remote: str, /
) -> (
    tuple[str, bytes, list[tuple[bytes, bytes]], str, int, bool, bool, str, list[str], bytes | None]
    | None
): ...
def whole_answer(data: bytes, lines: bytes, ending: bytes, /) -> tuple[int, bytes] | None: ...
def set_notable(names: tuple[bytes, ...], /) -> None: ...

class Warm:
    """The warm-token decision (``gateway/relay/warm.py``)."""

    def __init__(
        self,
        *,
        cache: Any,
        entries: dict[str, tuple[bytes, Any, float, float]],
        keyed: Any,
        identities: dict[int, tuple[Any, Any]],
        states: dict[str, Any],
        decision: type[tuple[Any, ...]],
        batch: Any,
        usage: bool,
        lease_seconds: float,
        unheard_seconds: float,
        id_start: int,
        id_length: int,
        token_length: int,
        default_limit: int,
    ) -> None: ...
    def decide(self, value: str, now: float, /) -> tuple[Any, Any, bytes] | None: ...
    def drain(self) -> tuple[int, dict[tuple[str, int], int]]: ...
