"""Single flight: concurrent callers asking the same question share one answer.

Pure asyncio, shared by the gateway (one introspection per cold token) and the introspector
(one argon2 run per cold token) so a burst of identical requests costs one unit of work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Runs at most one ``work()`` per key at a time; later callers await the first one."""

    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Future[T]] = {}

    async def run(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> T:
        """The result of ``work()``, shared with every concurrent call for ``key``."""
        pending = self._inflight.get(key)
        if pending is not None:
            # Shielded: one follower giving up must not cancel the leader's work.
            return await asyncio.shield(pending)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await work()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: there may be no followers to do it
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[key]
