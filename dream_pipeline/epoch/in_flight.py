"""Engine requests sent together, with a signal once all of them are on their way.

The opening step writes an asset's events only once the next engine phase's requests are out, so the
events take no CPU from the prompts and the requests (issue 17); the Burst and the ballots share this.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def gather_sent(calls: Iterable[Awaitable[T]], on_sent: Callable[[], None] | None = None) -> list[T]:
    """`asyncio.gather` of `calls`, calling `on_sent` once every task has run up to its first wait (its
    request is on its way), before any answer is handled."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    await asyncio.sleep(0)
    if on_sent is not None:
        on_sent()
    return list(await asyncio.gather(*tasks))
