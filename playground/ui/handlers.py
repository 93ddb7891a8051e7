"""The event handlers: component values in, updates out. The work itself is the service's.

Every handler catches PlaygroundError and shows it; one provider's failure never stops the others,
because each (provider, model) job is checked on its own and the service runs them independently.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import gradio.utils as gradio_utils
from pydantic import SecretStr

from playground.errors import PlaygroundError
from playground.models import Events, GenerationRequest
from playground.service import GenerationService, Plan
from playground.ui import forms, live
from playground.ui.board import Board, PanelKey, panel_keys
from playground.ui.format import BLOCKED, INFO, provider_choice_label, run_summary
from playground.ui.history_view import valid_owner, with_sent
from playground.ui.inputs import input_image
from playground.ui.live import LiveRun, LiveRuns
from playground.ui.panels import PanelKind, Renderer, TabKind, bundle_update, resume_update
from playground.ui.stream import changes
from playground.ui.visitors import is_local_request

log = logging.getLogger(__name__)

Frames = AsyncIterator[list[Any]]
SANDBOX_NOTE = (
    "**Sandbox mode**: every provider here is a local imitation of its real API. "
    "No real provider is called and no key is needed; the images are drawn locally."
)
NO_BEFORE_NOTE = "ℹ The input URL could not be read from here, so the panels show the result without a 'before'."
STALE = "These are the results of your previous run; the new one did not start."
NOT_STOPPED = f"{INFO} Nothing to resume here: resume a run after it was stopped or a job timed out."


@dataclass
class UiOptions:
    """How the page behaves: sandbox or real, whether the server's own keys may be spent, notices.

    ``shared``: the page is exposed (a share link, or listening beyond loopback), so History lists only each
    browser's own runs and strangers are told apart from the local user. ``server_keys``: everyone may spend the
    server's keys. ``auth``: a password guards the page (whoever is in holds it). ``local_visitors``: a request
    straight from this machine is the local user's (no share link).
    """

    sandbox: bool
    server_keys: bool = True
    shared: bool = False
    notices: list[str] = field(default_factory=list)
    auth: bool = False
    local_visitors: bool = False


class Handlers:
    """Bound methods wired to the page's events; one instance serves every visitor."""

    def __init__(self, service: GenerationService, options: UiOptions, *, clock: Callable[[], float] = time.monotonic):
        self.service = service
        self.options = options
        self.specs = service.specs
        self.keys = panel_keys(self.specs)
        self.clock = clock
        self.live = LiveRuns()

    # --- the page ------------------------------------------------------------------------------------

    def trusted(self, request: gr.Request | None) -> bool:
        """The local user or a password holder (not a stranger): may use private input URLs in sandbox mode.

        With no request (the page being built), nobody in particular: only what is open to everyone.
        """
        options = self.options
        if request is None:
            return False
        return options.auth or not options.shared or options.local_visitors and is_local_request(request)

    def spends_server_keys(self, request: gr.Request | None) -> bool:
        """Whether this visitor's runs may use the server's own keys (sandbox keys are anyone's)."""
        return self.options.server_keys or self.options.sandbox or self.trusted(request)

    def banner(self, request: gr.Request | None = None) -> str:
        """Sandbox notice, shared-page notice and any launch notices, as Markdown."""
        parts = [SANDBOX_NOTE] if self.options.sandbox else []
        if not self.spends_server_keys(request):
            parts.append("⚠ This shared page does not spend the server's keys: enter your own under **Keys**.")
        return "\n\n".join(parts + self.options.notices)

    def usable(self, keys: dict[str, SecretStr], request: gr.Request | None = None) -> list[str]:
        """Providers this visitor can run: the server's (if allowed) and those they entered a key for."""
        server = self.spends_server_keys(request)
        return [name for name in self.specs if self.service.is_configured(name, keys, server_keys=server)]

    def provider_choices(
        self, keys: dict[str, SecretStr], kind: TabKind = "edit", request: gr.Request | None = None
    ) -> list[tuple[str, str]]:
        """(label, name) for every usable provider, labelled for what the tab does; with no request (the page
        being built), every provider.

        The page's own list is every provider, so an API client may name any (a refused one fails in its panel
        with a sentence); each browser's list is narrowed to what its visitor can run when the page loads.
        """
        can_host = self.service.input_host is not None
        usable = self.usable(keys, request) if request is not None else list(self.specs)
        return [(provider_choice_label(self.specs[name], can_host=can_host, mode=kind), name) for name in usable]

    def default_providers(
        self, kind: TabKind, keys: dict[str, SecretStr], request: gr.Request | None = None
    ) -> list[str]:
        """Preselected providers: every usable one that does what the tab does."""

        def fits(name: str) -> bool:
            caps = self.specs[name].capabilities
            return caps.edit if kind == "edit" else caps.text_to_image

        return [name for name in self.usable(keys, request) if fits(name)]

    def choices(
        self,
        keys: dict[str, SecretStr],
        text_sel: Sequence[str],
        edit_sel: Sequence[str],
        request: gr.Request | None = None,
    ) -> list[Any]:
        """The provider lists of both tabs for these keys, keeping what was ticked where it is still usable."""
        updates = []
        for kind, sel in _tabs(text_sel, edit_sel):
            choices = self.provider_choices(keys, kind, request)
            names = {name for _, name in choices}
            value = [n for n in sel if n in names] or self.default_providers(kind, keys, request)
            # Unchanged, the ticks are left to the page: this answers the page's load, and a visitor's first
            # clicks, made before it arrives, must not be undone by it.
            updates.append(
                gr.update(choices=choices) if value == list(sel) else gr.update(choices=choices, value=value)
            )
        return updates

    # --- what the controls mean, before the run ------------------------------------------------------

    def preview_text(self, request: gr.Request, *values: Any) -> str:
        """Unsupported values, ignored controls, missing keys and the cost, for the Text to image tab.

        ``values``: the tab's FORM_FIELDS, then the browser's stored keys.
        """
        return self._preview("text", values, request, needs_image=False)

    def preview_edit(self, request: gr.Request, *values: Any) -> str:
        """The same for the Edit tab."""
        return self._preview("edit", values, request, needs_image=True)

    def _preview(self, kind: TabKind, values: Sequence[Any], request: gr.Request | None, *, needs_image: bool) -> str:
        named = forms.named_inputs(kind, [*values, None])  # no owner: the preview keeps nothing
        form = forms.Form.named(named)
        usable = self.usable(forms.visitor_keys(named["keys"], self.specs), request)
        can_host = self.service.input_host is not None
        lines = forms.preview_lines(
            form, self.specs, usable, needs_image=needs_image, can_host=can_host, price=self.service.price
        )
        return "\n".join(f"- {line}" for line in lines)

    # --- generate ------------------------------------------------------------------------------------

    async def generate_text(self, request: gr.Request, *values: Any) -> Frames:
        """Run the Text to image tab's form on every chosen provider and model; stream the panels.

        ``values``: the tab's FORM_FIELDS, then STATE_FIELDS (the browser's stored keys and its owner id,
        kept with the run in history).
        """
        async for frame in self._generate("text", forms.named_inputs("text", values), request):
            yield frame

    async def generate_edit(self, request: gr.Request, *values: Any) -> Frames:
        """Run the Edit tab's form; each panel also shows before/after."""
        async for frame in self._generate("edit", forms.named_inputs("edit", values), request):
            yield frame

    async def _generate(self, kind: TabKind, named: dict[str, Any], request: gr.Request | None) -> Frames:
        form, blob, owner = forms.Form.named(named), named["keys"], named["owner"]
        renderer = Renderer(kind, self.keys, sandbox=self.options.sandbox)
        trusted = self.trusted(request)
        try:
            seed = form.next_seed()  # a seed box that is not a whole number is a sentence like any other input
            image, input_path = await input_image(
                self.service, form, required=kind == "edit", trusted=trusted, uploads=upload_roots()
            )
            job_request = forms.build(form, seed, image)
            chosen = forms.targets(form, self.specs)
        except PlaygroundError as exc:
            yield self._blocked(renderer, kind, request, exc)
            return
        board = Board.start(chosen, self.specs, input_path=input_path, clock=self.clock, edit=kind == "edit")
        running = self.live.start(session_of(request), kind, board, renderer)
        keys = forms.visitor_keys(blob, self.specs)
        plan = self.plan(board, job_request, chosen, keys, vary_seed=not form.same_seed, visitor=request)
        note = NO_BEFORE_NOTE if image is not None and input_path is None else ""
        start = dict(seed=seed, message=note, summary="", bundle=bundle_update(None), resume=resume_update(board))
        yield renderer.frame(board, chosen, hide_others=True, **start)
        events = self.service.run(plan, owner=valid_owner(owner))
        async for frame in self.frames(renderer, board, events, running):
            yield frame

    def _blocked(self, renderer: Renderer, kind: PanelKind, request: gr.Request | None, exc: PlaygroundError) -> Any:
        """The sentence of a run that did not start; the previous run's grid stays, marked as old."""
        before = self.live.get(session_of(request), kind)
        grid = renderer.grid(before.board, stale=STALE) if before is not None and before.board.panels else gr.skip()
        return renderer.head(message=f"{BLOCKED} {exc}", grid=grid)

    async def frames(
        self,
        renderer: Renderer,
        board: Board,
        events: Events,
        running: LiveRun | None = None,
        *,
        end_message: Any = None,
    ) -> Frames:
        """The panels as ``events`` change them; the last frame has the run summary (and the error, if any).

        With ``running``, its Stop ends the stream: the engine records the unfinished jobs as stopped first.
        ``end_message``: what the message says once the run ends without an error (default: left as it was).
        """
        message: Any = gr.skip() if end_message is None else end_message
        stream = live.until_stopped(events, running.stop, running.closed) if running is not None else events
        try:
            async with contextlib.aclosing(changes(board, stream, clock=self.clock)) as batches:
                async for changed in batches:
                    yield renderer.frame(board, [*changed, *await live.derive(board, changed)])
        except PlaygroundError as exc:
            message = f"{BLOCKED} {exc}"
        finally:
            leftover = board.stop()  # after Stop or an error nothing runs any more; after a normal end, none
            if running is not None:
                running.closed.set()
        record = await self._record(board.run_id)
        done = sum(1 for p in board.panels.values() if p.result is not None)
        end = dict(message=message, summary=run_summary(board.outcomes(), board.wall_s))
        if "resume" in renderer.head_slots and renderer.kind != "history":  # History shows its own Resume waiting
            end["resume"] = resume_update(board)
        yield renderer.frame(board, leftover, bundle=bundle_update(await live.bundle(board, record), done), **end)

    async def _record(self, run_id: str | None) -> Any:
        store = self.service.history
        if store is None or run_id is None:
            return None
        try:
            return await store.get_run(run_id)
        except Exception:  # the download still works without the stored record
            log.exception("could not read run %s back from history", run_id)
            return None

    def plan(
        self,
        board: Board,
        request: GenerationRequest,
        chosen: list[PanelKey],
        keys: dict[str, SecretStr],
        *,
        vary_seed: bool,
        visitor: gr.Request | None = None,
    ) -> Plan:
        """The service's plan for the chosen targets; a refused one fails in its own panel, the others run.

        ``visitor`` says who asks: a stranger spends no server key (unless allowed) and gets no private URL used.
        """
        who = dict(server_keys=self.spends_server_keys(visitor), trusted=self.trusted(visitor))
        plan = self.service.plan(request, chosen, keys, vary_seed=vary_seed, **who)
        for refusal in plan.refused:
            board.reject(refusal.target, f"{refusal.reason} Nothing was sent.", refusal.error.code)
        return plan

    # --- stop and resume -----------------------------------------------------------------------------

    async def stop_text(self, request: gr.Request) -> None:
        """Stop this visitor's Text to image run; returns once every unfinished job is recorded as stopped."""
        await self.stop_run("text", request)

    async def stop_edit(self, request: gr.Request) -> None:
        """Stop this visitor's Edit run."""
        await self.stop_run("edit", request)

    async def stop_run(self, kind: PanelKind, request: gr.Request | None) -> bool:
        """Stop this visitor's run on one tab (its own handler then shows it stopped); whether one was running."""
        running = self.live.get(session_of(request), kind)
        if running is None or not running.is_streaming:
            return False
        return await running.stop_and_wait()

    async def resume_text(self, request: gr.Request, blob: object) -> Frames:
        """Wait again, in place, for the stopped or timed-out jobs of this visitor's Text to image run."""
        async for frame in self.resume_live("text", request, blob):
            yield frame

    async def resume_edit(self, request: gr.Request, blob: object) -> Frames:
        """The same on the Edit tab."""
        async for frame in self.resume_live("edit", request, blob):
            yield frame

    async def resume_live(self, kind: PanelKind, request: gr.Request | None, blob: object) -> Frames:
        """Resume in the panels that show the run: by task id, nothing is submitted twice; a job's latency
        still counts from its first submit (as History tells it)."""
        before = self.live.get(session_of(request), kind)
        if before is None or before.is_streaming or not before.board.resumable or before.board.run_id is None:
            yield Renderer(kind, self.keys, sandbox=self.options.sandbox).head(message=NOT_STOPPED)
            return
        board, renderer = before.board, before.renderer
        refs = live.resume_refs(board, await self._record(board.run_id))
        running = self.live.start(session_of(request), kind, board, renderer)
        board.reopen()
        waiting = f"{INFO} Waiting again for {len(refs)} job{'s' * (len(refs) != 1)} by task id."
        hidden = dict(summary="", bundle=bundle_update(None), resume=gr.update(visible=False))
        yield renderer.frame(board, board.panels, message=waiting, **hidden)
        keys = forms.visitor_keys(blob, self.specs)
        resumed = self.service.resume(
            refs, run_id=board.run_id, keys=keys, server_keys=self.spends_server_keys(request)
        )
        sent = {p.key: p.sent for p in board.panels.values() if p.sent is not None}
        async for frame in self.frames(renderer, board, with_sent(resumed, sent), running, end_message=""):
            yield frame

    # --- the edit chain ------------------------------------------------------------------------------

    def use_as_input(self, pair: tuple[str | None, str | None] | None) -> tuple[Any, Any, Any]:
        """Put a panel's result (the 'after' of its slider) into the Edit input, clear the URL box, and say so."""
        after = pair[1] if pair else None
        if not after:
            return gr.skip(), gr.skip(), gr.skip()
        return after, "", f"{INFO} The result {Path(after).name} is now the input: describe the next edit."


def _tabs(text_sel: Sequence[str], edit_sel: Sequence[str]) -> list[tuple[TabKind, Sequence[str]]]:
    return [("text", text_sel), ("edit", edit_sel)]


def upload_roots() -> tuple[Path, ...]:
    """Where a file the page received can lie: Gradio's upload folder, and the example image that ships."""
    return (Path(gradio_utils.get_upload_folder()), Path(__file__).parent / "assets")


def session_of(request: gr.Request | None) -> str:
    """The visitor's page session (its live runs are kept by it)."""
    return getattr(request, "session_hash", None) or "anonymous"


__all__ = ["Frames", "Handlers", "UiOptions", "session_of"]
