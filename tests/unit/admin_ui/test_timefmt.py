"""How the admin UI writes times: relative text, exact UTC tooltips, end-of-day expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from admin_ui.timefmt import end_of_day_utc, exact_utc, iso_utc, relative_time, today_utc

NOW = datetime(2026, 11, 23, 14, 47, 37, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "just now"),
        (timedelta(seconds=59), "just now"),
        (timedelta(minutes=1), "1 minute ago"),
        (timedelta(minutes=5, seconds=40), "5 minutes ago"),
        (timedelta(minutes=59, seconds=59), "59 minutes ago"),
        (timedelta(hours=1), "1 hour ago"),
        (timedelta(hours=23), "23 hours ago"),
        (timedelta(days=1), "1 day ago"),
        (timedelta(days=29), "29 days ago"),
        (timedelta(days=30), "1 month ago"),
        (timedelta(days=400), "1 year ago"),
        (timedelta(days=800), "2 years ago"),
        (-timedelta(seconds=30), "in less than a minute"),
        (-timedelta(minutes=10), "in 10 minutes"),
        (-timedelta(days=3, hours=2), "in 3 days"),
    ],
    ids=lambda value: str(value),
)
def test_relative_time(delta: timedelta, text: str) -> None:
    """Past and future differences read as whole units, rounded down."""
    assert relative_time(NOW - delta, NOW) == text


def test_relative_time_compares_instants_across_offsets() -> None:
    """A timestamp with another UTC offset is the same instant, not a different time."""
    berlin = NOW.astimezone(timezone(timedelta(hours=1))) - timedelta(minutes=2)
    assert relative_time(berlin, NOW) == "2 minutes ago"


def test_exact_and_iso_are_utc() -> None:
    """Tooltips and datetime attributes are written in UTC whatever the input offset."""
    moment = datetime(2026, 11, 23, 15, 47, 37, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert exact_utc(moment) == "2026-11-23 14:47:37 UTC"
    assert iso_utc(moment) == "2026-11-23T14:47:37Z"


def test_expiry_date_becomes_the_end_of_that_day_utc() -> None:
    """A chosen date means the key works through 23:59:59 UTC of that day."""
    assert end_of_day_utc("2027-01-31") == "2027-01-31T23:59:59Z"
    assert end_of_day_utc(" 2028-02-29 ") == "2028-02-29T23:59:59Z"


@pytest.mark.parametrize("text", ["", "2027-02-30", "31/01/2027", "20270131", "tomorrow"])
def test_bad_expiry_dates_are_refused(text: str) -> None:
    """Anything but a real YYYY-MM-DD date raises ValueError."""
    with pytest.raises(ValueError):  # noqa: PT011 - the message is not part of the contract
        end_of_day_utc(text)


def test_today_utc_is_the_utc_date() -> None:
    """Just after midnight in UTC+2 it is still the previous day in UTC."""
    late = datetime(2026, 11, 24, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert today_utc(late) == "2026-11-23"
