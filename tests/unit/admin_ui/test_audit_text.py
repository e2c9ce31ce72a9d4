"""Audit details read as words on the page, not as Python or JSON literals."""

from __future__ import annotations

import pytest

from admin_ui.audit_text import detail_text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (True, "yes"),
        (False, "no"),
        (0, "0"),
        ("PERSONAL", "PERSONAL"),
        ({"a": 1}, '{"a": 1}'),
        (["x", "é"], '["x", "é"]'),
    ],
    ids=["none", "true", "false", "zero", "text", "object", "list"],
)
def test_detail_values(value: object, text: str) -> None:
    """None, booleans, numbers, text and nested values each have one readable spelling."""
    assert detail_text(value) == text
