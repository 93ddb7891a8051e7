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
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.blocks import Blocks
from gradio.state_holder import SessionState

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
    changed = [i for i, value in enumerate(predictions) if not _is_skip(value)]
    if len(changed) == len(outputs):
        return await _original_postprocess(self, block_fn, predictions, state)
    result: list[Any] = [gr.skip() for _ in outputs]
    if changed:
        subset = _Outputs(block_fn, [outputs[i] for i in changed])
        values = [predictions[i] for i in changed]
        done = await _original_postprocess(self, subset, values if len(changed) > 1 else values[0], state)  # type: ignore[arg-type]
        for i, value in zip(changed, done, strict=True):
            result[i] = value
    return result


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


def apply_gradio_fixes() -> None:
    """Apply the workarounds once per process (idempotent)."""
    global _applied
    if not _applied:
        SessionState.__init__ = _lazy_init  # type: ignore[method-assign]
        SessionState.__setitem__ = _setitem_without_config  # type: ignore[method-assign]
        SessionState._update_config = _keep_no_config  # type: ignore[method-assign, assignment]
        SessionState._update_value_in_config = _keep_no_config  # type: ignore[method-assign, assignment]
        Blocks.postprocess_data = _postprocess_changed  # type: ignore[method-assign]
        Blocks.handle_streaming_diffs = _diffs_without_deletes  # type: ignore[method-assign]
        _applied = True
