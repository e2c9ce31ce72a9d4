"""The relay's plain readings, compiled (``_plain.c``)."""

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
