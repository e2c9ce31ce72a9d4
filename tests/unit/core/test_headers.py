"""The wire contract's rules: request ids and the client address the gateway reports."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keygate_core.headers import (
    CLIENT_ADDRESS,
    reported_client_address,
    request_id_or_new,
    valid_request_id,
)

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    "value",
    ["abc-123", "a", "A.b_c:d-9", "x" * 128, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"],
    ids=["simple", "one-char", "every-punctuation", "128-chars", "uuid"],
)
def test_sane_request_ids_are_propagated(value: str) -> None:
    """A client's 1–128 character id of safe characters is kept as is."""
    assert request_id_or_new(value) == value


@pytest.mark.parametrize(
    "value",
    [None, "", "x" * 129, "abc\n", "a b", "a/b", "ïd", "a\r\nX-Evil: 1", "a,b"],
    ids=[
        "absent",
        "empty",
        "129-chars",
        "trailing-newline",
        "space",
        "slash",
        "non-ascii",
        "injection",
        "comma",
    ],
)
def test_other_request_ids_are_replaced(value: str | None) -> None:
    """Anything else gets a fresh random id of 32 hex digits."""
    created = request_id_or_new(value)
    assert GENERATED.fullmatch(created) and created != value


def test_a_forked_process_makes_request_ids_of_its_own() -> None:
    """Gateway workers are forked from one parent: each must not repeat the others' ids."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        os.write(write_end, request_id_or_new(None).encode())
        os._exit(0)
    os.close(write_end)
    try:
        child = os.read(read_end, 128).decode()
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    ours = request_id_or_new(None)
    assert len(child) == len(ours) == 32
    assert child[:16] != ours[:16]


def test_generated_request_ids_are_unique() -> None:
    """Two requests without an id never share a generated one."""
    assert request_id_or_new(None) != request_id_or_new(None)


@given(st.one_of(st.none(), st.text()))
def test_request_id_is_always_safe(value: str | None) -> None:
    """Whatever the client sends, the id passed on is 1–128 safe characters."""
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", request_id_or_new(value))


@pytest.mark.parametrize("value", [None, "", "x" * 129, "a b", "a\r\nX-Evil: 1"])
def test_keygate_services_drop_malformed_request_ids(value: str | None) -> None:
    """A service that must not invent ids (it only logs them) gets None for a bad one."""
    assert valid_request_id(value) is None


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("2001:DB8::1", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("", None),
        ("not-an-address", None),
        ("203.0.113.7:443", None),
    ],
)
def test_reported_client_address_is_a_normalised_ip_or_nothing(
    reported: str, expected: str | None
) -> None:
    """The address keygate's services key per-client limits on is an IP, normalised, or None."""
    assert reported_client_address({CLIENT_ADDRESS: reported}) == expected
