"""`keygate tokens create --expires-in`: the duration syntax and its bounds."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keygate_cli.operator import UsageError, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("90d", timedelta(days=90)),
        ("1w2d", timedelta(days=9)),
        (" 2H ", timedelta(hours=2)),
        ("3650d", timedelta(days=3650)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    """Units s/m/h/d/w, combined and in any case, add up to the timedelta."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not a duration"),
        ("30", "is not a duration"),
        ("30 d", "is not a duration"),
        ("1y", "is not a duration"),
        ("-5d", "is not a duration"),
        ("0h", "longer than zero"),
        ("3651d", "at most ten years"),
    ],
)
def test_bad_durations_are_usage_errors(text: str, message: str) -> None:
    """Anything else is a UsageError naming --expires-in (exit 2), never a silent default."""
    with pytest.raises(UsageError, match=message) as caught:
        parse_duration(text)
    assert str(caught.value).startswith("--expires-in: ")
