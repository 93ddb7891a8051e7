"""A BrowserState whose value the browser cannot read: sealed by the server on the way out, opened on the way in."""

from __future__ import annotations

from typing import Any

import gradio as gr

from playground.vault import Vault

from gradio.events import Dependency

class SealedBrowserState(gr.BrowserState):
    """Gradio's BrowserState, holding only what ``vault`` sealed. Handlers see the plain value.

    A plain value coming in (an API client sending its own keys) is taken as it is; a sealed one that does not
    open (another server's, an old secret's, a tampered one) counts as nothing stored.
    """

    is_template = True  # Gradio's mark for a subclass that reuses its parent's frontend (BrowserState's)

    def __init__(self, default_value: Any, *, vault: Vault, storage_key: str) -> None:
        self._vault = vault  # before Gradio's constructor, which already postprocesses
        super().__init__(default_value, storage_key=storage_key, secret=vault.storage_secret)

    def preprocess(self, payload: Any) -> Any:
        if isinstance(payload, str):
            opened = self._vault.open(payload)
            return self.default_value if opened is None else opened
        return super().preprocess(payload)

    def postprocess(self, value: Any) -> Any:
        plain = super().postprocess(value)
        return None if plain is None else self._vault.seal(plain)
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component