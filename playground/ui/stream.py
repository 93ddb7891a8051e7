"""Feed a board from the service's events, in batches the page can keep up with.

Gradio spends a roughly fixed time on every yield of a handler with many outputs, so one yield per
event would fall behind a run of many jobs. Instead every event that arrived while the page was busy
is applied at once, and running panels get their elapsed time refreshed at least every ``tick_s``.
No gradio here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable

from playground.models import Events, JobEvent
from playground.ui.board import Board, PanelKey

TICK_S = 1.0  # how often running panels' elapsed time is refreshed when no event arrives
_DONE = object()


async def changes(
    board: Board,
    events: Events,
    *,
    tick_s: float = TICK_S,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncGenerator[list[PanelKey], None]:
    """The panels that changed since the last yield; ends when ``events`` ends (and raises what it raised)."""
    queue: asyncio.Queue[object] = asyncio.Queue()
    pump = asyncio.ensure_future(_pump(events, queue))
    last_tick = clock()
    try:
        done = False
        while not done:
            batch, done = await _batch(queue, tick_s)
            changed = {key for event in batch if (key := board.apply(event)) is not None}
            if clock() - last_tick >= tick_s:
                changed.update(board.tick())
                last_tick = clock()
            if changed:
                yield [key for key in board.panels if key in changed]
        await pump  # re-raises what the service raised
    finally:
        pump.cancel()
        with contextlib.suppress(BaseException):
            await pump


async def _pump(events: Events, queue: asyncio.Queue[object]) -> None:
    try:
        async with contextlib.aclosing(events) as stream:  # cancelled (Stop): close the service's stream now
            async for event in stream:
                queue.put_nowait(event)
    finally:
        queue.put_nowait(_DONE)


async def _batch(queue: asyncio.Queue[object], wait_s: float) -> tuple[list[JobEvent], bool]:
    """Every event waiting (after up to ``wait_s`` for the first), and whether the stream ended."""
    items: list[object] = []
    with contextlib.suppress(TimeoutError):
        items.append(await asyncio.wait_for(queue.get(), wait_s))
    while not queue.empty():
        items.append(queue.get_nowait())
    return [item for item in items if isinstance(item, JobEvent)], _DONE in items
