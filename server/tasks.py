"""Background tasks ended for good: `cancel_and_wait` cancels a loop until it has really ended."""
from __future__ import annotations

import asyncio
from typing import Any

RECANCEL_SECONDS = 0.1  # how long a cancelled task has to end before it is cancelled again


async def cancel_and_wait(*tasks: asyncio.Future[Any]) -> list[BaseException]:
    """Cancels the tasks and returns once every one has ended; returns the errors they ended with.

    One cancel is not enough on Python 3.11: `asyncio.wait_for`, which redis-py runs every command
    under (and some loops here use), loses a cancellation that lands in the same turn as the call
    it waits for completes (CPython gh-86296, fixed by 3.12's rewrite). The loop then runs on, and
    whoever awaits it waits for good: a server that never shuts down. So cancel again until it has
    ended; `asyncio.wait` neither raises a task's CancelledError nor swallows our caller's.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_SECONDS)
    return [error for task in tasks if not task.cancelled() and (error := task.exception()) is not None]
