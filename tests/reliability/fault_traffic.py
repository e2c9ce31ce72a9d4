"""The request mix the fault tests keep busy, and how they read what came back.

Every fault test sends *warm* tokens (the caches know them before the fault) and *cold* ones
(first seen while the dependency is down), beside kinds of its own. Until the fault starts, the
cold clients send warm tokens too: a cold token must not be seen before the fault.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from tests.reliability.measure import Outcome, Request, Traffic

#: Seconds from a dependency's return until every request gets its healthy answer again.
RECOVERY_BOUND = 10.0
#: Scheduling slack on a busy 2-core machine.
MARGIN = 0.5


def statuses(outcomes: list[Outcome]) -> Counter[int]:
    return Counter(o.status for o in outcomes)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def rotating(tokens: list[str], path: str = "/x") -> itertools.cycle[tuple[str, dict[str, str]]]:
    return itertools.cycle([(path, bearer(t)) for t in tokens])


def base_url(gateway: TestClient[Any, Any]) -> str:
    """The gateway's address, for :class:`Traffic`."""
    return str(gateway.make_url("")).rstrip("/")


async def warm_up(gateway: TestClient[Any, Any], tokens: list[str]) -> None:
    """Send each token once (200 expected), so that the caches know it before the fault."""
    for token in tokens:
        assert (await gateway.get("/x", headers=bearer(token))).status == 200


class WarmAndCold:
    """Request kinds for :class:`Traffic`: "warm", "cold", then ``others`` in their order.

    Until :meth:`go_cold`, the "cold" kind sends the warm tokens.
    """

    def __init__(self, warm: list[str], **others: Callable[[], Request]) -> None:
        warm_turns = rotating(warm)
        self._cold_turns = rotating(warm)
        self.kinds: dict[str, Callable[[], Request]] = {
            "warm": lambda: next(warm_turns),
            "cold": lambda: next(self._cold_turns),
            **others,
        }

    def go_cold(self, tokens: list[str]) -> None:
        """From now on the "cold" kind sends ``tokens``."""
        self._cold_turns = rotating(tokens)


def assert_answers(
    traffic: Traffic, start: float, end: float, allowed: dict[str, set[int]], *context: str
) -> None:
    """Each kind's requests within [start, end] got only the statuses ``allowed`` for it."""
    for kind, statuses_allowed in allowed.items():
        seen = statuses(traffic.within(start, end, kind))
        assert set(seen) <= statuses_allowed, (*context, kind, seen)
