"""Waiting for effects that are asynchronous by design (batched writes, outbox delivery)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], within: float = 5.0) -> T:
    """Poll ``probe`` until it returns something truthy or ``within`` seconds pass.

    The test then asserts on the returned value, so a timeout fails with what was last seen.
    """
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within
    while True:
        value = await probe()
        if value or loop.time() > give_up:
            return value
        await asyncio.sleep(0.05)
