"""The event handlers: component values in, updates out. The work itself is the service's.

Every handler catches PlaygroundError and shows it; one provider's failure never stops the others,
because each (provider, model) job is checked on its own and the service runs them independently.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import gradio.utils as gradio_utils
import httpx
from pydantic import SecretStr

from playground.errors import PlaygroundError
from playground.fetch import fetch_user_image
from playground.images import EXTENSIONS
from playground.models import Events, GenerationRequest, InputImage
from playground.service import GenerationService, Plan
from playground.ui import forms
from playground.ui.board import Board, PanelKey, panel_keys
from playground.ui.format import BLOCKED, provider_choice_label, run_summary
from playground.ui.history_view import valid_owner
from playground.ui.panels import PanelKind, Renderer, TabKind
from playground.ui.stream import changes
from playground.ui.visitors import is_local_request

log = logging.getLogger(__name__)

MAX_REMEMBERED_RUNS = 512  # boards kept for the Stop button, one per (session, tab)
Frames = AsyncIterator[list[Any]]
SANDBOX_NOTE = (
    "**Sandbox mode**: every provider here is a local imitation of its real API. "
    "No real provider is called and no key is needed; the images are drawn locally."
)

NO_BEFORE_NOTE = "ℹ The input URL could not be read from here, so the panels show the result without a 'before'."


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
        self._runs: OrderedDict[tuple[str, PanelKind], tuple[Board, Renderer]] = OrderedDict()

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

    def provider_choices(self, keys: dict[str, SecretStr], request: gr.Request | None = None) -> list[tuple[str, str]]:
        """(label, name) for every usable provider; with no request (the page being built), every provider.

        The page's own list is every provider, so an API client may name any (a refused one fails in its panel
        with a sentence); each browser's list is narrowed to what its visitor can run when the page loads.
        """
        can_host = self.service.input_host is not None
        usable = self.usable(keys, request) if request is not None else list(self.specs)
        return [(provider_choice_label(self.specs[name], can_host=can_host), name) for name in usable]

    def default_providers(
        self, kind: TabKind, keys: dict[str, SecretStr], request: gr.Request | None = None
    ) -> list[str]:
        """Preselected providers: every usable one that does what the tab does."""

        def fits(name: str) -> bool:
            caps = self.specs[name].capabilities
            return caps.edit if kind == "edit" else caps.text_to_image

        return [name for name in self.usable(keys, request) if fits(name)]

    def on_load(self, request: gr.Request, blob: object, text_sel: list[str], edit_sel: list[str]) -> tuple[Any, ...]:
        """A visitor opened the page: banner, provider lists including their own keys, key status."""
        keys = forms.visitor_keys(blob, self.specs)
        return (self.banner(request), *self._choices(keys, text_sel, edit_sel, request), self._keys_status(blob))

    def _choices(
        self, keys: dict[str, SecretStr], text_sel: Sequence[str], edit_sel: Sequence[str], request: gr.Request | None
    ) -> list[Any]:
        choices = self.provider_choices(keys, request)
        names = {name for _, name in choices}
        return [
            gr.update(
                choices=choices, value=[n for n in sel if n in names] or self.default_providers(kind, keys, request)
            )
            for kind, sel in _tabs(text_sel, edit_sel)
        ]

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
        lines = forms.preview_lines(form, self.specs, usable, needs_image=needs_image, can_host=can_host)
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
        seed = form.next_seed()
        trusted = self.trusted(request)
        try:
            image, input_path = await self._input(form, required=kind == "edit", trusted=trusted)
            job_request = forms.build(form, seed, image)
            chosen = forms.targets(form, self.specs)
        except PlaygroundError as exc:
            yield renderer.head(message=f"{BLOCKED} {exc}")
            return
        board = Board.start(chosen, self.specs, input_path=input_path, clock=self.clock)
        self.remember(request, kind, board, renderer)
        keys = forms.visitor_keys(blob, self.specs)
        plan = self.plan(board, job_request, chosen, keys, vary_seed=not form.same_seed, visitor=request)
        note = NO_BEFORE_NOTE if image is not None and input_path is None else ""
        yield renderer.frame(board, chosen, hide_others=True, seed=seed, message=note, summary="")
        events = self.service.run(plan, owner=valid_owner(owner))
        async for frame in self.frames(renderer, board, events):
            yield frame

    async def frames(self, renderer: Renderer, board: Board, events: Events) -> Frames:
        """The panels as ``events`` change them; the last frame has the run summary (and the error, if any)."""
        message: Any = gr.skip()
        try:
            async with contextlib.aclosing(changes(board, events, clock=self.clock)) as batches:
                async for changed in batches:
                    yield renderer.frame(board, changed)
        except PlaygroundError as exc:
            message = f"{BLOCKED} {exc}"
        finally:
            leftover = board.stop()  # after Stop or an error nothing runs any more; after a normal end, none
        yield renderer.frame(board, leftover, message=message, summary=run_summary(board.outcomes(), board.wall_s))

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

    async def _input(self, form: forms.Form, *, required: bool, trusted: bool) -> tuple[InputImage | None, str | None]:
        """The checked input image, and a local file of it for the before/after slider."""
        image = forms.load_image(form, required=required, uploads=upload_roots())
        if image is None or image.is_local:
            return image, form.image_path
        return image, await self._preview_file(image.url or "", trusted=trusted)

    async def _preview_file(self, url: str, *, trusted: bool) -> str | None:
        """A local copy of an input URL for the slider; None (the run goes on) when it cannot be read.

        Only a trusted visitor's URL may be private: in sandbox mode, with PLAYGROUND_ALLOW_PRIVATE_URLS=1, or with a
        provider stand-in on this machine.
        """
        settings, specs = self.service.settings, self.service.specs.values()
        local_setup = settings.allow_private_urls or settings.sandbox or any(self.service.is_local(s) for s in specs)
        allow_private = trusted and local_setup
        client = self.service.client if allow_private else self.service.public_client
        try:
            fetched = await fetch_user_image(client, url, allow_private=allow_private)
        except (PlaygroundError, httpx.HTTPError) as exc:  # fetch_user_image lets connection errors through
            log.debug("no before image for the slider: %s", exc)
            return None
        assert fetched.content is not None and fetched.mime_type is not None
        name = hashlib.sha256(fetched.content).hexdigest()[:20] + "." + EXTENSIONS[fetched.mime_type]
        path = Path(self.service.settings.out_dir) / "inputs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(fetched.content)
        return str(path)

    # --- stop ----------------------------------------------------------------------------------------

    def stop_text(self, request: gr.Request) -> list[Any]:
        """Stop the Text to image run of this visitor: running panels show 'stopped' with their task id."""
        return self._stop("text", request)

    def stop_edit(self, request: gr.Request) -> list[Any]:
        """Stop the Edit run of this visitor."""
        return self._stop("edit", request)

    def _stop(self, kind: TabKind, request: gr.Request | None) -> list[Any]:
        stopped = self.stop_run(kind, request)
        return stopped if stopped is not None else Renderer(kind, self.keys, sandbox=self.options.sandbox).head()

    def stop_run(self, kind: PanelKind, request: gr.Request | None) -> list[Any] | None:
        """Stop this visitor's run on one tab: its frame, or None when it has no run there."""
        found = self._runs.get((_session(request), kind))
        if found is None:
            return None
        board, renderer = found
        stopped = board.stop()
        return renderer.frame(board, stopped, summary=run_summary(board.outcomes(), board.wall_s))

    def remember(self, request: gr.Request | None, kind: PanelKind, board: Board, renderer: Renderer) -> None:
        """Keep the board of this visitor's run on one tab, for its Stop button."""
        self._runs[(_session(request), kind)] = (board, renderer)
        self._runs.move_to_end((_session(request), kind))
        while len(self._runs) > MAX_REMEMBERED_RUNS:
            self._runs.popitem(last=False)

    # --- keys ----------------------------------------------------------------------------------------

    def save_keys(
        self, request: gr.Request, blob: object, text_sel: list[str], edit_sel: list[str], *entered: str
    ) -> tuple[Any, ...]:
        """Store the typed keys in the visitor's browser; clear the boxes; list the newly usable providers."""
        typed = dict(zip((spec.key_env for spec in self.specs.values()), entered, strict=True))
        new_blob = forms.merge_keys(blob, typed, self.specs)
        added = [name for name, spec in self.specs.items() if (typed.get(spec.key_env) or "").strip()]
        keys = forms.visitor_keys(new_blob, self.specs)
        choices = self._choices(keys, [*text_sel, *added], [*edit_sel, *added], request)
        return (new_blob, self._keys_status(new_blob), *choices, *([""] * len(entered)))

    def forget_keys(self, request: gr.Request, text_sel: list[str], edit_sel: list[str]) -> tuple[Any, ...]:
        """Remove every key from the visitor's browser."""
        blob = forms.empty_keys()
        return (blob, self._keys_status(blob), *self._choices({}, text_sel, edit_sel, request))

    def _keys_status(self, blob: object) -> str:
        saved = forms.stored_keys(blob, self.specs)
        labels = [spec.label for spec in self.specs.values() if spec.key_env in saved]
        if not labels:
            return "No keys saved in this browser."
        return f"Keys saved in this browser for: {', '.join(labels)}. They are sent only with your own runs."

    # --- the edit chain ------------------------------------------------------------------------------

    def use_as_input(self, pair: tuple[str | None, str | None] | None) -> tuple[Any, Any]:
        """Put a panel's result (the 'after' of its slider) into the Edit input, and clear the URL box."""
        after = pair[1] if pair else None
        return (after, "") if after else (gr.skip(), gr.skip())


def _tabs(text_sel: Sequence[str], edit_sel: Sequence[str]) -> list[tuple[TabKind, Sequence[str]]]:
    return [("text", text_sel), ("edit", edit_sel)]


def upload_roots() -> tuple[Path, ...]:
    """Where a file the page received can lie: Gradio's upload folder, and the example image that ships."""
    return (Path(gradio_utils.get_upload_folder()), Path(__file__).parent / "assets")


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "anonymous"


__all__ = ["Handlers", "UiOptions"]
