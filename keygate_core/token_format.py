"""The keygate token format: generation and parsing, pure and free of I/O.

A token is ``kg_<public_id>_<secret><checksum>``, all base62 (``0-9A-Za-z``):

- ``kg_`` makes leaked tokens findable by secret scanners (see :data:`SCANNER_REGEX`);
- ``public_id`` (12 chars) names the database row, so lookup is O(1) although hashes are salted;
- ``secret`` (43 chars, ≥ 256 bits) is the only part that is hashed and never stored;
- ``checksum`` (6 chars) is ``zlib.crc32`` of everything before it, base62, zero-padded, so typos
  and garbage are rejected without touching the network or the database.

This module is shared by the gateway and the introspector; it must stay pure.
"""

from __future__ import annotations

import re
import secrets
import string
import zlib
from dataclasses import dataclass

ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
PREFIX = "kg_"
PUBLIC_ID_LENGTH = 12
SECRET_LENGTH = 43
CHECKSUM_LENGTH = 6
TOKEN_LENGTH = len(PREFIX) + PUBLIC_ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH

#: What a secret scanner should look for (GitHub push protection, gitleaks, trufflehog).
SCANNER_REGEX = r"\bkg_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}\b"

_ALPHABET_SET = frozenset(ALPHABET)
#: A well-shaped token (prefix, lengths, separator, characters), as a regular expression of
#: three groups: public id, secret, checksum. See :func:`token_parts`.
TOKEN_PATTERN = (
    rf"{PREFIX}([0-9A-Za-z]{{{PUBLIC_ID_LENGTH}}})_"
    rf"([0-9A-Za-z]{{{SECRET_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)
_TOKEN = re.compile(TOKEN_PATTERN)


class TokenFormatError(ValueError):
    """The text is not a well-formed keygate token; ``reason`` is a fixed id."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"malformed token: {reason}")
        self.reason = reason


@dataclass(frozen=True, repr=False)
class ParsedToken:
    """A token split into its parts. ``repr`` never shows the secret.

    Not a (faster) named tuple: a tuple is iterable and JSON-serialisable, so a log line's
    ``json.dumps`` would write the secret where a dataclass falls back to this ``repr``.
    """

    public_id: str
    secret: str

    def __repr__(self) -> str:
        return f"ParsedToken(public_id={self.public_id!r}, secret=<hidden>)"

    @property
    def display_start(self) -> str:
        """The part that is safe to show and log: ``kg_<public_id>``."""
        return PREFIX + self.public_id


def encode_base62(value: int, width: int) -> str:
    """``value`` in base62, left-padded with ``0`` to ``width`` characters."""
    if value < 0:
        raise ValueError("base62 encodes non-negative integers only")
    digits: list[str] = []
    while value:
        value, rem = divmod(value, 62)
        digits.append(ALPHABET[rem])
    encoded = "".join(reversed(digits)) or "0"
    if len(encoded) > width:
        raise ValueError(f"{value} does not fit in {width} base62 characters")
    return encoded.rjust(width, "0")


_PAIR = len(ALPHABET) ** 2
#: Every two-digit base62 string, in order: ``_PAIRS[n]`` is ``n`` in two digits.
_PAIRS = [a + b for a in ALPHABET for b in ALPHABET]


def checksum(body: str) -> str:
    """The 6-character checksum of ``kg_<public_id>_<secret>``: its CRC-32 in base62.

    Checked on every bearer request, so written for its one width (62**6 > 2**32) rather than
    through :func:`encode_base62`: three digit pairs from a table, at a fifth of the cost.
    """
    value = zlib.crc32(body.encode("ascii"))
    high, rest = divmod(value, _PAIR**2)
    middle, low = divmod(rest, _PAIR)
    return _PAIRS[high] + _PAIRS[middle] + _PAIRS[low]


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def generate_public_id() -> str:
    """A fresh random 12-character public id."""
    return _random_base62(PUBLIC_ID_LENGTH)


def generate_token(public_id: str | None = None) -> tuple[str, ParsedToken]:
    """A new token: ``(plaintext, parts)``. The plaintext must only reach its owner."""
    public_id = public_id or generate_public_id()
    if len(public_id) != PUBLIC_ID_LENGTH or not _ALPHABET_SET.issuperset(public_id):
        raise ValueError("public_id must be 12 base62 characters")
    secret = _random_base62(SECRET_LENGTH)
    parts = ParsedToken(public_id=public_id, secret=secret)
    return token_text(parts), parts


def token_text(parts: ParsedToken) -> str:
    """The whole token ``parts`` came from: each (public id, secret) has exactly one."""
    body = f"{PREFIX}{parts.public_id}_{parts.secret}"
    return body + checksum(body)


def token_parts(text: str, public_id: str, secret: str, check: str) -> ParsedToken:
    """The parts of ``text``, a token :data:`TOKEN_PATTERN` matched (its groups follow), once
    its checksum holds; raises :class:`TokenFormatError` ``checksum`` otherwise."""
    if not secrets.compare_digest(checksum(text[: TOKEN_LENGTH - CHECKSUM_LENGTH]), check):
        raise TokenFormatError("checksum")
    return ParsedToken(public_id=public_id, secret=secret)


def parse_token(text: object) -> ParsedToken:
    """Split and check a token without I/O.

    Raises :class:`TokenFormatError` (and nothing else, whatever ``text`` is) with reason
    ``type``, ``length``, ``prefix``, ``charset``, ``separator`` or ``checksum``.
    """
    if not isinstance(text, str):
        raise TokenFormatError("type")
    match = _TOKEN.fullmatch(text)
    if match is not None:  # the shape is right: only the checksum is left to check
        return token_parts(text, *match.groups())
    # Anything else is refused; the checks below find the first thing wrong with it.
    # Length first: a huge input costs one len() and nothing more.
    if len(text) != TOKEN_LENGTH:
        raise TokenFormatError("length")
    if not text.startswith(PREFIX):
        raise TokenFormatError("prefix")
    separator_at = len(PREFIX) + PUBLIC_ID_LENGTH
    if text[separator_at] != "_":
        raise TokenFormatError("separator")
    public_id = text[len(PREFIX) : separator_at]
    tail = text[separator_at + 1 :]
    if not (_ALPHABET_SET.issuperset(public_id) and _ALPHABET_SET.issuperset(tail)):
        raise TokenFormatError("charset")
    secret, check = tail[:SECRET_LENGTH], tail[SECRET_LENGTH:]
    body = text[: len(text) - CHECKSUM_LENGTH]
    if not secrets.compare_digest(checksum(body), check):
        raise TokenFormatError("checksum")
    return ParsedToken(public_id=public_id, secret=secret)
