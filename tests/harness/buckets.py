"""What the fleet-wide rate limit promises over a stretch of time, for tests that load it."""

from __future__ import annotations


def most_admitted(limit_per_minute: int, seconds: float) -> int:
    """The most requests a bucket of ``limit_per_minute``, full at the start, may admit in
    ``seconds``: its whole capacity, and the tokens it refills meanwhile (the bucket refills
    continuously, one token every ``60 / limit_per_minute`` seconds). A test measures
    ``seconds`` around all of its requests, so the bound is never tighter than the truth."""
    return limit_per_minute + int(seconds * limit_per_minute / 60)
