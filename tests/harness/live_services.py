"""keygate's three services serving in this process, as the deployment checks see them.

The ``live_services`` fixture (``tests/deploy/conftest.py``) starts them; the probe, metrics and
manifest tests read their URLs and tokens from this object.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class LiveServices:
    """Base URLs by ``keygate`` command, and two valid tokens (the second is never used, so
    wrong secrets for its id take the uncached, throttled path)."""

    urls: dict[str, str]
    token: str
    cold_token: str
    #: Stops the introspector, as an outage would (the gateway and admin UI keep running).
    stop_introspector: Callable[[], Awaitable[None]]

    def url(self, command: str, path: str) -> str:
        return self.urls[command] + path
