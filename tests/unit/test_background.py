"""Background loops end when their service stops, even if a library swallows the cancellation."""

from __future__ import annotations

import asyncio

from keygate_core.background import stop_requested, stop_tasks


async def _library_call() -> None:
    """What some client libraries do: turn a cancellation into their own connection error."""
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        raise ConnectionError("connection closed") from None


async def test_a_retry_loop_stops_although_its_cancellation_became_an_error() -> None:
    attempts = 0

    async def retry_forever() -> None:
        nonlocal attempts
        while True:
            attempts += 1
            try:
                await _library_call()
            except Exception:
                if stop_requested():
                    raise asyncio.CancelledError from None

    task = asyncio.create_task(retry_forever())
    await asyncio.sleep(0.01)
    await stop_tasks([task], grace_seconds=5)
    assert task.cancelled()
    assert attempts == 1
