"""The History tab's event handlers: list past runs, open one, re-run it, resume its unfinished jobs.

On a shared page every browser sees, opens, re-runs and resumes only its own runs (by its opaque owner id);
locally every run is listed. Streaming reuses the live tabs' machinery (Board, Renderer, Handlers.frames).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gradio as gr

from playground.errors import PlaygroundError
from playground.history import History, RunRecord
from playground.ui import forms, live
from playground.ui.board import Board, PanelKey
from playground.ui.format import BLOCKED, INFO, run_summary
from playground.ui.handlers import Frames, Handlers, session_of
from playground.ui.history_list import runs_html, thumbnails
from playground.ui.history_view import (
    LIST_LIMIT,
    board_of,
    list_filters,
    list_note,
    new_owner,
    run_header,
    run_wall_s,
    timeline,
    valid_owner,
    with_sent,
)
from playground.ui.live import LiveRun
from playground.ui.panels import Renderer, bundle_update

HISTORY_HEAD = ("run_id", "run", "message", "summary", "grid", "bundle", "rerun", "resume")
STOPPED = f"{INFO} Stopped. Jobs already submitted may still finish: **Resume waiting** waits for them again."
NOTHING_TO_RESUME = f"{INFO} No job of this run is waiting for a result: nothing to resume."
NOT_FOUND = f"{BLOCKED} No such run in your history: select a row in the list, or paste a run id from it."


class HistoryRenderer(Renderer):
    """A Renderer for the History panels: the picture as the run's kind shows it, plus the state changes."""

    def __init__(self, keys: list[PanelKey], *, sandbox: bool, timelines: Mapping[PanelKey, str]) -> None:
        super().__init__("history", keys, sandbox=sandbox, head_slots=HISTORY_HEAD)
        self.timelines = dict(timelines)

    def _render(self, board: Board, key: PanelKey) -> dict[str, Any]:
        update = super()._render(board, key)
        hidden = "image" if board.input_path else "slider"  # before/after only when the input is kept
        update[hidden] = gr.update(value=None, visible=False)
        update["changes"] = self.timelines.get(key, "")
        return update


class HistoryHandlers:
    """Bound methods wired to the History tab; one instance serves every visitor."""

    def __init__(self, handlers: Handlers) -> None:
        self.handlers = handlers
        self.service = handlers.service
        self.options = handlers.options

    @property
    def store(self) -> History | None:
        """The app's history (any store behind the History interface), or None when it keeps none."""
        return self.service.history

    def ensure_owner(self, owner: object) -> str:
        """This browser's owner id: the one it keeps, or a new one to keep."""
        return valid_owner(owner) or new_owner()

    # --- the list ------------------------------------------------------------------------------------

    async def list_runs(self, query: str, provider: str, model: str, outcome: str, owner: object) -> tuple[str, str]:
        """The runs matching the filters, newest first (on a shared page, this browser's only), as rows to click."""
        filters = list_filters(query, provider, model, outcome)
        store, mine = self.store, valid_owner(owner)
        if store is None or (self.options.shared and mine is None):
            runs = []
        else:
            runs = await store.list_runs(**filters, owner=mine if self.options.shared else None, limit=LIST_LIMIT)
        thumbs = await thumbnails(runs, self.service.settings.out_dir)
        note = list_note(len(runs), filtered=any(filters.values()))
        return runs_html(runs, self.handlers.specs, thumbs), note

    def pick(self, selected: gr.EventData) -> Any:
        """The run id of the row a visitor clicked."""
        run_id = getattr(selected, "run_id", None)
        return run_id if isinstance(run_id, str) and run_id else gr.skip()

    # --- one run -------------------------------------------------------------------------------------

    async def open_run(self, run_id: str, owner: object) -> list[Any]:
        """The run's panels side by side, as they ended; its header, summary, and what can be done with it."""
        record = await self._find(run_id, owner)
        if record is None:
            return self._renderer({}).head(message=NOT_FOUND, rerun=_shown(False), resume=_shown(False))
        return await self._opened(record)

    async def _opened(self, record: RunRecord, **head: Any) -> list[Any]:
        timelines = {(j.provider, j.model): timeline(j, record.created_at) for j in record.jobs}
        renderer = self._renderer(timelines)
        board = board_of(record, self.handlers.specs, self.handlers.keys, self.handlers.clock)
        await live.derive(board, board.panels)
        done = sum(1 for p in board.panels.values() if p.result is not None)
        values = dict(
            run_id=record.run_id,
            run=run_header(record),
            message="",
            summary=run_summary(board.outcomes(), run_wall_s(record)),
            bundle=bundle_update(await live.bundle(board, record), done),
            rerun=_shown(record.request is not None),
            resume=_shown(any(job.is_resumable for job in record.jobs)),
        )
        return renderer.frame(board, board.panels, hide_others=True, **(values | head))

    async def _find(self, run_id: str, owner: object) -> RunRecord | None:
        """The run, if the history has it and (on a shared page) it belongs to this browser."""
        store, wanted = self.store, (run_id or "").strip()
        if store is None or not wanted:
            return None
        if self.options.shared:
            mine = valid_owner(owner)
            if mine is None or all(run.run_id != wanted for run in await store.list_runs(owner=mine, limit=-1)):
                return None
        record = await store.get_run(wanted)
        return await self.service.results_of(record) if record is not None else None  # results as local files

    def _renderer(self, timelines: Mapping[PanelKey, str]) -> HistoryRenderer:
        return HistoryRenderer(self.handlers.keys, sandbox=self.options.sandbox, timelines=timelines)

    # --- re-run and resume ---------------------------------------------------------------------------

    async def rerun(self, run_id: str, blob: object, owner: object, request: gr.Request) -> Frames:
        """Run the stored request again on the same targets with this visitor's keys; stream it here."""
        renderer = self._renderer({})
        record, store = await self._find(run_id, owner), self.store
        if record is None or store is None:
            yield renderer.head(message=NOT_FOUND)
            return
        try:
            job_request = await store.request_of(record.run_id)
        except KeyError:
            yield renderer.head(message=f"{BLOCKED} Run {record.run_id} has no stored request, so it cannot be re-run.")
            return
        except PlaygroundError as exc:
            yield renderer.head(message=f"{BLOCKED} {exc}")
            return
        chosen = [key for key in self.handlers.keys if key in record.targets]
        edit = record.kind == "edit"
        board = Board.start(chosen, self.handlers.specs, input_path=_kept(record), clock=self.handlers.clock, edit=edit)
        running = self.handlers.live.start(session_of(request), "history", board, renderer)
        keys = forms.visitor_keys(blob, self.handlers.specs)
        plan = self.handlers.plan(board, job_request, chosen, keys, vary_seed=False, visitor=request)
        note = f"{INFO} Re-run of `{record.run_id}`: the same request on the same providers and models."
        start = dict(run=note, message="", summary="", resume=_shown(False), bundle=bundle_update(None))
        yield renderer.frame(board, chosen, hide_others=True, **start)
        events = self.service.run(plan, owner=valid_owner(owner))
        async for frame in self.handlers.frames(renderer, board, events, running):
            yield frame
        new = await self._find(board.run_id or "", owner)
        if new is not None:
            yield await self._opened(new, message=self._ended(running, note))

    async def resume(self, run_id: str, blob: object, owner: object, request: gr.Request) -> Frames:
        """Wait again for the run's unfinished or timed-out jobs by task id (nothing is submitted); stream them."""
        record = await self._find(run_id, owner)
        if record is None:
            yield self._renderer({}).head(message=NOT_FOUND)
            return
        resumable = [job for job in record.jobs if job.is_resumable and (job.provider, job.model) in self.handlers.keys]
        refs = [ref for job in resumable if (ref := job.ref()) is not None]
        if not refs:
            yield await self._opened(
                record, message=f"{INFO} No job of this run is waiting for a result: nothing to resume."
            )
            return
        renderer = self._renderer({})
        board = board_of(record, self.handlers.specs, self.handlers.keys, self.handlers.clock)
        running = self.handlers.live.start(session_of(request), "history", board, renderer)
        waiting = f"{INFO} Waiting again for {len(refs)} job{'s' if len(refs) != 1 else ''} by task id."
        start = dict(message=waiting, summary="", resume=_shown(False), bundle=bundle_update(None))
        yield renderer.frame(board, board.panels, hide_others=True, **start)
        keys = forms.visitor_keys(blob, self.handlers.specs)
        sent = {(job.provider, job.model): job.sent for job in resumable if job.sent is not None}
        resumed = self.service.resume(
            refs, run_id=record.run_id, keys=keys, server_keys=self.handlers.spends_server_keys(request)
        )
        async for frame in self.handlers.frames(renderer, board, with_sent(resumed, sent), running):
            yield frame
        done = await self._find(record.run_id, owner)
        if done is not None:
            yield await self._opened(done, message=self._ended(running, ""))

    async def stop(self, request: gr.Request) -> None:
        """Stop this visitor's re-run or resume; its own handler then shows it stopped, with Resume waiting."""
        await self.handlers.stop_run("history", request)

    def _ended(self, running: LiveRun, otherwise: str) -> str:
        return STOPPED if running.stop.is_set() else otherwise


def _shown(visible: bool) -> Any:
    return gr.update(visible=visible)


def _kept(record: RunRecord) -> str | None:
    path = record.input_path
    return str(path) if path is not None and path.is_file() else None
