"""A visitor's live run on one tab: its board and renderer, how Stop reaches it, and what is made from it.

Stop does not cancel the handler that streams the run: it asks the run to stop and waits until the engine has
closed the run's stream (so every unfinished job is recorded as stopped) before it returns. The streaming
handler then sends its last frame itself, so the page, the summary and History tell the same story. No gradio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playground import derived
from playground.history import RunRecord
from playground.models import Events, JobRef
from playground.outputs import write_bundle
from playground.ui.board import Board, PanelKey, PanelView

log = logging.getLogger(__name__)

STOP_WAIT_S = 10.0  # Stop waits this long for the engine to close the run (it takes milliseconds)
MAX_LIVE_RUNS = 512  # runs kept for Stop and Resume, one per (session, tab)


@dataclass
class LiveRun:
    """One streaming run: what it shows (board, renderer) and the two signals Stop uses."""

    board: Board
    renderer: Any  # panels.Renderer (kept untyped here: this module does not import gradio)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def is_streaming(self) -> bool:
        return not self.closed.is_set()

    async def stop_and_wait(self, timeout_s: float = STOP_WAIT_S) -> bool:
        """Ask the run to stop; whether its stream closed within ``timeout_s``."""
        self.stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), timeout_s)
        return self.closed.is_set()


class LiveRuns:
    """The live run of each (session, tab), newest kept, oldest forgotten past MAX_LIVE_RUNS."""

    def __init__(self, limit: int = MAX_LIVE_RUNS) -> None:
        self._runs: OrderedDict[tuple[str, str], LiveRun] = OrderedDict()
        self.limit = limit

    def start(self, session: str, tab: str, board: Board, renderer: Any) -> LiveRun:
        """A new live run for this session's tab (replacing the one before)."""
        live = LiveRun(board, renderer)
        self._runs[(session, tab)] = live
        self._runs.move_to_end((session, tab))
        while len(self._runs) > self.limit:
            self._runs.popitem(last=False)
        return live

    def get(self, session: str, tab: str) -> LiveRun | None:
        return self._runs.get((session, tab))


async def until_stopped(events: Events, stop: asyncio.Event, closed: asyncio.Event | None = None) -> Events:
    """``events`` until ``stop`` is set; then the engine's stream is closed (its jobs recorded as stopped)
    before this ends, and ``closed`` is set. Closing this stream early does the same.

    Events pass straight through (no task per event): Stop cancels the task reading this stream, which closes
    the engine's stream where it waits; that cancellation, which we asked for, then ends the stream quietly.
    """
    reader = asyncio.current_task()
    assert reader is not None
    watcher = asyncio.ensure_future(_cancel_on(stop, reader))
    try:
        async with contextlib.aclosing(events) as stream:
            async for event in stream:
                yield event
    except asyncio.CancelledError:
        if not stop.is_set():
            raise  # someone else's cancellation (the page went away): let it through
        reader.uncancel()
    finally:
        watcher.cancel()
        if closed is not None:
            closed.set()  # whatever the page is doing, the engine is done with this run


async def _cancel_on(stop: asyncio.Event, task: asyncio.Task[Any]) -> None:
    await stop.wait()
    task.cancel()


async def derive(board: Board, keys: Iterable[PanelKey]) -> list[PanelKey]:
    """For newly finished results: a tile-sized copy and, for an edit, what changed (off the event loop).
    Returns every panel whose look changed (those, and any whose shape now stands out)."""
    todo = [
        board.panels[key] for key in keys if board.panels[key].result is not None and board.panels[key].tile is None
    ]
    if todo:
        await asyncio.gather(*(asyncio.to_thread(_derive_one, panel, board.input_path) for panel in todo))
    return [panel.key for panel in todo] + board.mark_shapes()


def _derive_one(panel: PanelView, before: str | None) -> None:
    assert panel.result is not None
    after = Path(panel.result.path)
    panel.tile = derived.thumbnail(after, long_side=derived.TILE_LONG_SIDE_PX) or after
    if before is not None:
        panel.changes = derived.changes(Path(before), after)


async def bundle(board: Board, record: RunRecord | None) -> Path | None:
    """One zip of the run's results (original files) and the run as JSON; None when nothing succeeded."""
    results = {p.key: Path(p.result.path) for p in board.panels.values() if p.result is not None}
    if not results or board.run_id is None:
        return None
    run = record.model_dump(mode="json") if record is not None else board_json(board)
    target = next(iter(results.values())).parent / f"{board.run_id}-all-results.zip"
    files = {path.name: path for path in results.values()}
    try:
        return await asyncio.to_thread(write_bundle, target, files, run)
    except OSError as exc:
        log.warning("could not write the download of run %s: %s", board.run_id, exc)
        return None


def resume_refs(board: Board, record: RunRecord | None) -> list[JobRef]:
    """The board's resumable jobs, each with its first submit time from history (else the board's start), so
    a resumed job's latency still counts from there."""
    stored = {(j.provider, j.model): j for j in record.jobs} if record is not None else {}
    refs = []
    for panel in board.resumable:
        job = stored.get(panel.key)
        ref = job.ref() if job is not None else None
        if ref is None and panel.task_id is not None:
            ref = JobRef(provider=panel.provider, model=panel.model, task_id=panel.task_id)
            ref = ref.model_copy(update={"submitted_at": board.started_wall})
        if ref is not None:
            refs.append(ref)
    return refs


def board_json(board: Board) -> dict[str, Any]:
    """The run as the page saw it, when no history keeps it."""
    jobs = []
    for panel in board.panels.values():
        result = panel.result
        jobs.append(
            {
                "provider": panel.provider,
                "model": panel.model,
                "state": panel.state,
                "task_id": panel.task_id,
                "error": panel.error,
                "latency_s": result.latency_s if result else None,
                "cost_usd": result.cost_usd if result else None,
                "cost_source": result.cost_source if result else None,
                "file": Path(result.path).name if result else None,
                "sent": panel.sent.model_dump(mode="json") if panel.sent else None,
            }
        )
    return {"run_id": board.run_id, "kind": "edit" if board.edit else "generate", "jobs": jobs}
