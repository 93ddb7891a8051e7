"""A BrowserState whose value the browser cannot read: sealed by the server on the way out, opened on the way in.

Built by wrapping one BrowserState's preprocess/postprocess rather than by subclassing: Gradio writes a
.pyi stub next to the source of every Component subclass it sees, and its frontend is looked up by class name.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from playground.vault import Vault


def sealed_browser_state(default_value: Any, *, vault: Vault, storage_key: str) -> gr.BrowserState:
    """A BrowserState holding only what ``vault`` sealed; handlers see the plain value.

    A plain value coming in (an API client sending its own keys) is taken as it is; a sealed one that does not
    open (another server's, an old secret's, a tampered one) counts as nothing stored.
    """
    state = gr.BrowserState(default_value, storage_key=storage_key, secret=vault.storage_secret)
    plain_in, plain_out = state.preprocess, state.postprocess

    def preprocess(payload: Any) -> Any:
        if isinstance(payload, str):
            opened = vault.open(payload)
            return state.default_value if opened is None else opened
        return plain_in(payload)

    def postprocess(value: Any) -> Any:
        plain = plain_out(value)
        return None if plain is None else vault.seal(plain)

    state.preprocess = preprocess  # type: ignore[method-assign]
    state.postprocess = postprocess  # type: ignore[method-assign]
    return state
