"""How the admin UI writes times: relative for reading, exact UTC for hovering.

Pages show "5 minutes ago" inside ``<time datetime="…" title="2026-11-23 14:47:37 UTC">`` so the
relative form is easy to scan and the exact instant is one hover away. Everything is computed
server-side from an explicit ``now``, which keeps it deterministic and testable.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

_UNITS = (
    ("year", 365 * 86400),
    ("month", 30 * 86400),
    ("day", 86400),
    ("hour", 3600),
    ("minute", 60),
)


def relative_time(moment: datetime, now: datetime) -> str:
    """``moment`` relative to ``now``: "just now", "5 minutes ago", "in 3 days"…

    Differences under a minute read "just now" (past) or "in less than a minute" (future).
    Each unit is used once the difference reaches one whole unit, rounded down, so "59 minutes
    ago" is followed by "1 hour ago".
    """
    seconds = (now - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in _UNITS:
        if seconds >= size:
            count = int(seconds // size)
            phrase = f"{count} {unit}{'' if count == 1 else 's'}"
            return f"in {phrase}" if future else f"{phrase} ago"
    return "in less than a minute" if future else "just now"


def exact_utc(moment: datetime) -> str:
    """``moment`` in UTC to the second, for tooltips: ``2026-11-23 14:47:37 UTC``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_utc(moment: datetime) -> str:
    """``moment`` as an RFC 3339 UTC timestamp for ``<time datetime>``: ``…T14:47:37Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def end_of_day_utc(day: str) -> str:
    """The last second of the UTC day ``YYYY-MM-DD`` as RFC 3339 (``2027-01-31T23:59:59Z``).

    Raises ``ValueError`` for anything that is not a calendar date in that form.
    """
    parsed = date.fromisoformat(day.strip())
    if len(day.strip()) != 10:
        raise ValueError("expected YYYY-MM-DD")
    return iso_utc(datetime.combine(parsed, time(23, 59, 59), tzinfo=UTC))


def today_utc(now: datetime) -> str:
    """``now``'s UTC date as ``YYYY-MM-DD`` (the earliest choosable expiry date)."""
    return now.astimezone(UTC).date().isoformat()
