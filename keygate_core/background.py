"""Background loops that stop when asked, whatever their client libraries do with cancellation.

A retry loop that catches broad exceptions can eat a cancellation a library turned into its own
error (or one Python 3.11's ``asyncio.wait_for`` lost), and then outlive its service: shutdown
hangs until the process is killed. Loops call :func:`stop_requested` before retrying.
"""

from __future__ import annotations

import asyncio


def stop_requested() -> bool:
    """Whether the running task has been cancelled, even if the CancelledError was swallowed."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def stop_tasks(tasks: list[asyncio.Task[None]], grace_seconds: float) -> None:
    """Cancel ``tasks`` and wait at most ``grace_seconds`` for them to end."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=grace_seconds)
