"""Workarounds for Gradio 6.31 costs that grow with the number of components on the page (pinned version).

1. Every output an event leaves unchanged (``gr.skip()``, i.e. ``{"__type__": "update"}``) is still handled
   as an update: Gradio builds a new component from the old one's constructor arguments and its whole config.
   A streaming run here has about a hundred outputs of which a frame changes a few, so each frame cost ~100 ms
   of CPU on the server's event loop, and 50 visitors at once waited a minute for each other. Unchanged
   outputs are now passed through as the same ``{"__type__": "update"}`` Gradio itself would have sent.
2. While a run streams, Gradio sends each output as a diff against the previous frame. An unchanged output
   ("no change") is a diff that deletes the value the frame before set, and when the two messages reach the
   browser close together, the browser keeps only the result: a result image could vanish (seen in Chromium).
   An unchanged output now diffs against itself (nothing to send); the run's last message still says "no
   change" for it, as Gradio's would.
3. Gradio keeps, per visitor, a copy of the config of every block "so we can recreate the state for deep
   links": built for every block when the visitor's session starts, and again (with a JSON schema of the
   component's data model) for every output an event changes. This playground has no deep links, so those
   copies are not kept (the deep-link endpoint would return an empty state); the components themselves, and
   everything else Gradio keeps per session, are as before.
4. Every visitor's page (and every gradio_client) asks for ``/config`` and the API description
   (``/gradio_api/info``); Gradio builds both anew each time (a deep copy of the whole config, every URL in it
   rewritten, the API schema encoded), about 0.2 s of CPU per visitor on this page, which is most of what 50
   visitors at once cost. Both depend only on the address the request came in by (and on the user when a
   password is set), so ``cache_page_answers`` keeps each answer per address and replays it; the same for the
   page itself, which embeds both.
5. For every ``gr.update(...)`` an output gets, Gradio builds a whole new component from the old one's
   constructor arguments plus the update (an Image's or a DownloadButton's ``__init__``), only to read the
   updated properties back off it. A run's panels send such updates for their images and downloads (value,
   visibility, label): the largest single cost of 50 visitors at once. Those are now answered from the update
   and the component's own ``postprocess``, as Gradio's ``postprocess_update_dict`` would; any other update
   still goes through Gradio's path.
6. Every page load fetches Gradio's built frontend (~115 files under ``/assets/``), and Gradio reads each from
   disk and has its Brotli middleware compress it again, for every visitor: with the page itself, about 1.2 s
   of server CPU per page load here (bench/page_load.py). ``keep_frontend_files`` keeps each file's answer as it left
   the server, compressed, and replays it (see KeptFiles).
7. Gradio hands every input's ``preprocess`` and every changed output's ``postprocess`` to a worker thread,
   one at a time: for a text box or an HTML string that is ~0.1 ms of CPU in thread hand-offs (and a wait for
   the GIL) around a conversion of a microsecond. A run's submit has 14 inputs and each of its frames a few
   changed HTML outputs, so under 50 visitors these hand-offs were about a fifth of the event loop's time.
   ``InlineConversions`` runs the conversions of the plain-data components (CHEAP_COMPONENTS) where they are
   called; every other call (images, files, the event functions themselves) still goes to a thread.
8. Each event Gradio runs is wrapped in a ``MatplotlibBackendMananger``, which tries ``import matplotlib``
   on the way in and out. Without matplotlib installed (this playground has no use for it), each try is a
   failed search of the whole import path, twice per event. When matplotlib cannot be found at start, the
   wrapper does nothing.
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

import anyio
import gradio as gr
import gradio.blocks
from fastapi import FastAPI
from gradio import processing_utils, utils
from gradio.blocks import Blocks
from gradio.components import Component
from gradio.data_classes import GradioModel, GradioRootModel
from gradio.state_holder import SessionState
from starlette.routing import Route, Router

_original_init = SessionState.__init__
_original_setitem = SessionState.__setitem__
_original_postprocess = Blocks.postprocess_data
_original_diffs = Blocks.handle_streaming_diffs
_unchanged: dict[tuple[str, str], set[int]] = {}  # (session, run) -> outputs the latest frame left unchanged
_applied = False


class _NoEagerConfigs:
    """What SessionState.__init__ reads from the Blocks, with no blocks to pre-build configs for."""

    def __init__(self, blocks: Any) -> None:
        self.default_config = blocks.default_config
        self.blocks: dict[int, Any] = {}


def _lazy_init(self: SessionState, blocks: Any) -> None:
    _original_init(self, _NoEagerConfigs(blocks))  # type: ignore[arg-type]


def _no_config(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {}


def _setitem_without_config(self: SessionState, key: int, value: Any) -> None:
    """SessionState.__setitem__, minus the deep-link config copy it builds for the block."""
    blocks_config = self.blocks_config
    blocks_config.config_for_block = _no_config  # type: ignore[method-assign]  # this session's copy, this call only
    try:
        _original_setitem(self, key, value)
    finally:
        del blocks_config.config_for_block
    self.config_values.pop(key, None)


def _keep_no_config(self: SessionState, *args: Any) -> None:
    """In place of SessionState._update_config and _update_value_in_config: nothing to keep."""


class _Outputs:
    """A block function seen through a subset of its outputs (everything else is the function's own)."""

    def __init__(self, block_fn: Any, outputs: list[Any]) -> None:
        self._block_fn = block_fn
        self.outputs = outputs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._block_fn, name)


def _is_skip(value: Any) -> bool:
    return isinstance(value, dict) and value == gr.skip()


async def _postprocess_changed(self: Blocks, block_fn: Any, predictions: Any, state: Any) -> list[Any]:
    """Postprocess only the outputs that change; the others go out as Gradio's own 'no change'."""
    outputs = block_fn.outputs
    many = isinstance(predictions, (list, tuple)) and len(outputs) > 1 and len(predictions) == len(outputs)
    if not many or block_fn.batch or block_fn.is_validator_function:
        return await _original_postprocess(self, block_fn, predictions, state)
    result: list[Any] = [gr.skip() for _ in outputs]
    changed = []
    for i, value in enumerate(predictions):
        if _is_skip(value):
            continue
        if block_fn.postprocess and _is_simple_update(outputs[i], value):
            result[i] = await _simple_update(outputs[i], value)
        else:
            changed.append(i)
    if len(changed) == len(outputs):
        return await _original_postprocess(self, block_fn, predictions, state)
    if changed:
        subset = _Outputs(block_fn, [outputs[i] for i in changed])
        values = [predictions[i] for i in changed]
        done = await _original_postprocess(self, subset, values if len(changed) > 1 else values[0], state)  # type: ignore[arg-type]
        for i, value in zip(changed, done, strict=True):
            result[i] = value
    return result


_SIMPLE_PROPS = frozenset({"__type__", "value", "visible", "label"})  # fix 5: what a panel's updates carry


def _is_simple_update(block: Any, value: Any) -> bool:
    return (
        utils.is_prop_update(value)  # type: ignore[no-untyped-call]
        and value.keys() <= _SIMPLE_PROPS
        and isinstance(block, Component)
        and not block.stateful
        and not isinstance(block, gr.HTML)  # HTML keeps unknown props apart (``props``)
    )


async def _simple_update(block: Component, update: dict[str, Any]) -> Any:
    """What Gradio sends for ``update`` (value, visible, label), without building a component for it."""
    update = utils.delete_none(dict(update), skip_value=True)
    out = {name: prop for name, prop in update.items() if name not in ("__type__", "value") and hasattr(block, name)}
    if "value" in update:
        value = block.postprocess(update["value"])  # type: ignore[no-untyped-call]
        out["value"] = value.model_dump() if isinstance(value, (GradioModel, GradioRootModel)) else value
    out["__type__"] = "update"
    return await processing_utils.async_move_files_to_cache(out, block, postprocess=True)


def _diffs_without_deletes(
    self: Blocks,
    block_fn: Any,
    data: list[Any],
    session_hash: str | None,
    run: str | None,
    final: bool,
    simple_format: bool = False,
) -> list[Any]:
    """Blocks.handle_streaming_diffs, with an unchanged output diffed against its previous value."""
    if session_hash is None or run is None:
        return _original_diffs(self, block_fn, data, session_hash, run, final, simple_format)
    key = (session_hash, run)
    if final:
        data = _original_diffs(self, block_fn, data, session_hash, run, final, simple_format)
        for i in _unchanged.pop(key, set()):
            data[i] = gr.skip()
        return data
    previous = self.pending_diff_streams[session_hash].get(run)
    unchanged = set()
    if previous is not None:
        unchanged = {
            i for i, value in enumerate(data) if _is_skip(value) and i < len(previous) and previous[i] is not None
        }
        for i in unchanged:
            data[i] = previous[i]
    _unchanged[key] = unchanged
    return _original_diffs(self, block_fn, data, session_hash, run, final, simple_format)


# Fix 7: components whose preprocess/postprocess only convert plain data (no file, image or network work).
CHEAP_COMPONENTS: tuple[type[Component], ...] = (
    gr.Textbox,
    gr.Number,
    gr.Checkbox,
    gr.CheckboxGroup,
    gr.Dropdown,
    gr.Radio,
    gr.Slider,
    gr.Markdown,
    gr.HTML,
    gr.JSON,
    gr.Code,
    gr.State,
    gr.BrowserState,
)
CONVERSIONS = frozenset({"preprocess", "postprocess"})


def is_cheap_conversion(func: Any) -> bool:
    """Whether ``func`` is a plain-data component's own preprocess or postprocess (fix 7)."""
    owner = getattr(func, "__self__", None)
    return isinstance(owner, CHEAP_COMPONENTS) and getattr(func, "__name__", "") in CONVERSIONS


class _ToThread:
    """``anyio.to_thread`` as Gradio's Blocks sees it: a cheap conversion runs in place, the rest on a thread."""

    def __getattr__(self, name: str) -> Any:
        return getattr(anyio.to_thread, name)

    async def run_sync(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if is_cheap_conversion(func):
            return func(*args)
        return await anyio.to_thread.run_sync(func, *args, **kwargs)


class InlineConversions:
    """The ``anyio`` module as ``gradio.blocks`` sees it, with its ``to_thread`` replaced (fix 7)."""

    to_thread = _ToThread()

    def __getattr__(self, name: str) -> Any:
        return getattr(anyio, name)


def _no_backend_switch(self: Any, *args: Any) -> None:
    """MatplotlibBackendMananger's __enter__ and __exit__ when matplotlib is not installed (fix 8)."""


def apply_gradio_fixes() -> None:
    """Apply the workarounds once per process (idempotent)."""
    global _applied
    if not _applied:
        gradio.blocks.anyio = InlineConversions()  # type: ignore[attr-defined, assignment]
        if importlib.util.find_spec("matplotlib") is None:
            utils.MatplotlibBackendMananger.__enter__ = _no_backend_switch  # type: ignore[method-assign]
            utils.MatplotlibBackendMananger.__exit__ = _no_backend_switch  # type: ignore[method-assign]
        SessionState.__init__ = _lazy_init  # type: ignore[method-assign]
        SessionState.__setitem__ = _setitem_without_config  # type: ignore[method-assign]
        SessionState._update_config = _keep_no_config  # type: ignore[method-assign, assignment]
        SessionState._update_value_in_config = _keep_no_config  # type: ignore[method-assign, assignment]
        Blocks.postprocess_data = _postprocess_changed  # type: ignore[method-assign]
        Blocks.handle_streaming_diffs = _diffs_without_deletes  # type: ignore[method-assign]
        _applied = True


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
AsgiApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]
CACHED_PATHS = ("/", "/config", "/gradio_api/info")
ADDRESS_HEADERS = (b"host", b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-prefix", b"forwarded")


class CachedAnswers:
    """An ASGI app that answers a GET from memory when the same one (path, query, address) was answered before.

    Only 200 answers are kept, at most ``limit`` of them (the oldest go first).
    """

    def __init__(self, app: AsgiApp, *, limit: int = 32) -> None:
        self.app = app
        self.limit = limit
        self.kept: OrderedDict[tuple[Any, ...], list[Message]] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        key = _address_key(scope)
        if key in self.kept:
            self.kept.move_to_end(key)
        messages = await _replay_or_answer(self.app, self.kept, key, scope, receive, send)
        if messages is not None and _status(messages) == 200:
            self.kept[key] = messages
            while len(self.kept) > self.limit:
                self.kept.popitem(last=False)


async def _replay_or_answer(
    app: AsgiApp, kept: Mapping[Any, Sequence[Message]], key: Any, scope: Scope, receive: Any, send: Any
) -> list[Message] | None:
    """Send the answer kept under ``key`` (None); else let ``app`` answer, and return what it sent."""
    if key in kept:
        for message in kept[key]:
            await send(message)
        return None
    messages: list[Message] = []

    async def record(message: Message) -> None:
        messages.append(message)
        await send(message)

    await app(scope, receive, record)
    return messages


def _start(messages: list[Message]) -> Message | None:
    """The answer's start message (Starlette's test client sees a debug message before it)."""
    return next((m for m in messages if m.get("type") == "http.response.start"), None)


def _status(messages: list[Message]) -> int | None:
    start = _start(messages)
    return None if start is None else start.get("status")


def _address_key(scope: Scope) -> tuple[Any, ...]:
    headers = tuple((name, value) for name, value in scope.get("headers", ()) if name.lower() in ADDRESS_HEADERS)
    server = scope.get("server")
    where = (scope.get("scheme"), tuple(server) if server else None, scope.get("root_path"))
    return (scope.get("path"), scope.get("query_string"), where, headers)


def cache_page_answers(app: FastAPI) -> CachedAnswers:
    """Serve the page, /config and the API description from memory (fix 4); only for a page without a password, whose
    answers name no user. Returns the cache (tests look into it)."""
    inner = Router(routes=list(app.router.routes))  # Gradio's own routes, as they were
    cached = CachedAnswers(inner)
    app.router.routes[0:0] = [Route(path, endpoint=cached, methods=["GET"]) for path in CACHED_PATHS]
    return cached


FRONTEND_PREFIXES = ("/assets/", "/static/")  # Gradio's built frontend and its static files: part of the wheel
CONDITIONAL_HEADERS = (b"range", b"if-range", b"if-none-match", b"if-modified-since")


class KeptFiles:
    """An ASGI wrapper (outside every middleware) that answers a GET of a frontend file from memory.

    The answer is kept as it left the server (compressed, whole), per path and the encoding Gradio's middleware
    would pick for the request (br, else gzip, else none), only when it was a 200, and at most ``max_bytes`` in
    all. A request with a condition, a range or a query goes through Gradio as before.
    """

    def __init__(self, app: AsgiApp, *, max_bytes: int = 64_000_000) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.size = 0
        self.kept: dict[tuple[str, str], tuple[Message, Message]] = {}

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        key = _frontend_key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        messages = await _replay_or_answer(self.app, self.kept, key, scope, receive, send)
        if messages is not None:
            self._keep(key, messages)

    def _keep(self, key: tuple[str, str], messages: list[Message]) -> None:
        first = _start(messages)
        if first is None or first.get("status") != 200:
            return
        bodies = [m for m in messages if m.get("type") == "http.response.body"]
        body = b"".join(m.get("body", b"") for m in bodies)
        if not bodies or bodies[-1].get("more_body") or self.size + len(body) > self.max_bytes:
            return  # not whole (the client left), or past the budget: served from disk as before
        headers = [(k, v) for k, v in first.get("headers", []) if k.lower() != b"content-length"]
        start = {**first, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        self.kept[key] = (start, {"type": "http.response.body", "body": body, "more_body": False})
        self.size += len(body)


def _frontend_key(scope: Scope) -> tuple[str, str] | None:
    path = scope.get("path", "")
    if scope.get("type") != "http" or scope.get("method") != "GET" or not path.startswith(FRONTEND_PREFIXES):
        return None
    headers = dict(scope.get("headers", ()))
    if any(name in headers for name in CONDITIONAL_HEADERS) or scope.get("query_string"):
        return None
    accepted = headers.get(b"accept-encoding", b"")
    return path, "br" if b"br" in accepted else "gzip" if b"gzip" in accepted else ""


def keep_frontend_files(app: FastAPI) -> KeptFiles:
    """Answer frontend files from memory (fix 6), outside Gradio's middleware. Returns the wrapper (for tests)."""
    inner = app.middleware_stack or app.build_middleware_stack()
    kept = KeptFiles(inner)
    app.middleware_stack = kept
    return kept
