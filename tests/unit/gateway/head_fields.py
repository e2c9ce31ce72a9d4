"""Field values for the relay's differential tests of heads (requests and answers read by the
relay and by llhttp): pieces that frame a body, pad with blanks or break the grammar, joined
at random."""

from __future__ import annotations

from hypothesis import strategies as st

_PIECES = [
    b"0",
    b"12",
    b"close",
    b"keep-alive",
    b"chunked",
    b", ",
    b" ",
    b"\t",
    b"v",
    b"\xc3\xa9",
    b"\x7f",
]
#: Between a field's name and its value: the usual one space, none, or two.
SEPARATORS = st.sampled_from([b": ", b":", b":  "])


def field_values(*extra: bytes) -> st.SearchStrategy[bytes]:
    """Values of up to four pieces, from the common ones and ``extra``."""
    return st.lists(st.sampled_from([*_PIECES, *extra]), max_size=4).map(b"".join)
