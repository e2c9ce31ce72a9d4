"""The token format: exact shape, checksum, and a parser that fails only in its own way."""

from __future__ import annotations

import contextlib
import logging
import re
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keygate_core.logs import JsonFormatter
from keygate_core.token_format import (
    ALPHABET,
    SCANNER_REGEX,
    TOKEN_LENGTH,
    TokenFormatError,
    checksum,
    encode_base62,
    generate_token,
    parse_token,
)

TOKEN_SHAPE = re.compile(r"^kg_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}$")


def decode_base62(text: str) -> int:
    value = 0
    for char in text:
        value = value * 62 + ALPHABET.index(char)
    return value


def test_generated_token_has_the_documented_shape() -> None:
    """A new token is kg_ + 12 base62 + _ + 43 secret + 6 checksum characters."""
    plaintext, parts = generate_token()
    assert TOKEN_SHAPE.match(plaintext)
    assert len(plaintext) == TOKEN_LENGTH == 65
    assert plaintext == f"kg_{parts.public_id}_{parts.secret}{plaintext[-6:]}"
    assert len(parts.secret) == 43


def test_checksum_is_crc32_of_everything_before_it_in_base62() -> None:
    """The last six characters decode to zlib.crc32 of the rest, computed independently here."""
    plaintext, _ = generate_token()
    body, check = plaintext[:-6], plaintext[-6:]
    assert decode_base62(check) == zlib.crc32(body.encode())


def test_base62_alphabet_is_digits_then_upper_then_lower() -> None:
    """Zero-padding and digit order follow the documented alphabet 0-9A-Za-z."""
    assert encode_base62(0, 6) == "000000"
    assert encode_base62(61, 6) == "00000z"
    assert encode_base62(62, 6) == "000010"
    assert encode_base62(2**32 - 1, 6) == "4gfFC3"


def test_secret_carries_at_least_256_bits() -> None:
    """43 uniformly chosen base62 characters hold at least 256 bits of entropy."""
    import math

    assert 43 * math.log2(62) >= 256


def test_tokens_are_unique() -> None:
    """Ten thousand generated tokens never repeat a public id or a secret."""
    parts = [generate_token()[1] for _ in range(10_000)]
    assert len({p.public_id for p in parts}) == len(parts)
    assert len({p.secret for p in parts}) == len(parts)


def test_scanner_regex_finds_a_token_in_text() -> None:
    """The documented secret-scanning regex finds a token pasted into a config file."""
    plaintext, _ = generate_token()
    leaked = f'API_KEY="{plaintext}"\n'
    assert re.findall(SCANNER_REGEX, leaked) == [plaintext]


def test_parsed_token_repr_hides_the_secret() -> None:
    """Printing a parsed token (e.g. in a traceback) never shows the secret."""
    plaintext, parts = generate_token()
    assert parts.secret not in repr(parts)
    assert parts.secret not in repr(parse_token(plaintext))


def test_a_parsed_token_in_a_log_line_never_shows_the_secret() -> None:
    """A parsed token handed to a log line as an extra is written by its ``repr``: were it a
    tuple, the JSON formatter would write its parts, secret and all."""
    _, parts = generate_token()
    record = logging.LogRecord("keygate.test", logging.INFO, __file__, 1, "checked", None, None)
    record.token = parts
    line = JsonFormatter().format(record)
    assert parts.public_id in line
    assert parts.secret not in line


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "length"),
        ("   ", "length"),
        ("kg_", "length"),
        ("x" * 65, "prefix"),
        ("KG_" + "a" * 62, "prefix"),
        ("kg_" + "a" * 12 + "-" + "a" * 49, "separator"),
        ("kg_" + "a" * 11 + "é_" + "a" * 49, "charset"),
        ("kg_" + "a" * 12 + "_" + "a" * 48 + " ", "charset"),
        ("kg_" + "a" * 12 + "_" + "a" * 49, "checksum"),
        (None, "type"),
        (b"kg_", "type"),
    ],
    ids=[
        "empty",
        "whitespace",
        "prefix-only",
        "no-prefix",
        "upper-prefix",
        "bad-separator",
        "non-ascii",
        "trailing-space",
        "bad-checksum",
        "none",
        "bytes",
    ],
)
def test_malformed_tokens_are_rejected_with_a_reason(text: object, reason: str) -> None:
    """Each kind of malformed input is refused with its fixed reason id."""
    with pytest.raises(TokenFormatError) as caught:
        parse_token(text)
    assert caught.value.reason == reason


@given(st.data())
def test_round_trip(data: st.DataObject) -> None:
    """Whatever public id is chosen, generate → parse gives the same parts back."""
    public_id = data.draw(st.text(alphabet=ALPHABET, min_size=12, max_size=12))
    plaintext, parts = generate_token(public_id)
    assert parse_token(plaintext) == parts
    assert checksum(plaintext[:-6]) == plaintext[-6:]


@settings(max_examples=500)
@given(position=st.integers(min_value=0, max_value=TOKEN_LENGTH - 1), replacement=st.characters())
def test_any_single_character_change_is_rejected(position: int, replacement: str) -> None:
    """Changing any one character to anything else never yields a token that parses."""
    plaintext, _ = generate_token()
    if plaintext[position] == replacement:
        replacement = "0" if replacement != "0" else "1"
    mutated = plaintext[:position] + replacement + plaintext[position + 1 :]
    with pytest.raises(TokenFormatError):
        parse_token(mutated)


@settings(max_examples=300)
@given(
    st.one_of(
        st.text(),
        st.text(alphabet=ALPHABET + "_", min_size=60, max_size=70),
        st.text(min_size=TOKEN_LENGTH, max_size=TOKEN_LENGTH),
        st.builds(lambda s: "kg_" + s, st.text(min_size=62, max_size=62)),
        st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=20), st.integers(500, 5000)),
        st.binary(),
        st.integers(),
    )
)
def test_parse_raises_only_its_own_error(text: object) -> None:
    """Arbitrary, huge and non-ASCII input ends in TokenFormatError and nothing else."""
    with contextlib.suppress(TokenFormatError):
        parse_token(text)


def test_huge_input_is_rejected_by_length() -> None:
    """A megabyte of junk is refused on its length alone."""
    with pytest.raises(TokenFormatError) as caught:
        parse_token("kg_" + "a" * 1_000_000)
    assert caught.value.reason == "length"
