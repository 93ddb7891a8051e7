"""The page: a title, the Keys panel, then one tab per ``build_*_tab`` call. Layout and wiring only.

Adding a tab is one call here to the ``build_*_tab(page)`` function of its own module; ``page`` (PageParts)
carries what tabs share: the handlers, the browser's keys and owner id, and the runs History follows.
"""

from __future__ import annotations

import gradio as gr

from playground.ui.arena_handlers import ArenaHandlers
from playground.ui.arena_tab import ArenaUI, build_arena_tab, wire_arena
from playground.ui.forms import empty_keys
from playground.ui.generate_tab import build_generate_tab
from playground.ui.handlers import Handlers
from playground.ui.history_tab import build_history_tab
from playground.ui.keys_panel import KeysHandlers, build_keys_panel, wire_keys
from playground.ui.page import ASSETS, PageParts
from playground.ui.providers_tab import ProvidersHandlers, build_providers_tab
from playground.ui.sealed import sealed_browser_state
from playground.vault import Vault

STORAGE_KEY = "flux-kontext-playground-keys"
OWNER_STORAGE_KEY = "flux-kontext-playground-owner"  # an opaque id: on a shared page, History lists its runs only
TITLE = (
    "# FLUX.1 Kontext playground\n"
    "One prompt, many hosted APIs side by side: each one's picture, time, cost and the exact request it got."
)
GRID_TABS = ("text", "edit", "history")


def page_css() -> str:
    """The page's styles: page.css, and tabs.css once for each tab with a grid."""
    per_tab = (ASSETS / "tabs.css").read_text()
    return (ASSETS / "page.css").read_text() + "".join(per_tab.replace("TAB", tab) for tab in GRID_TABS)


def page_head() -> str:
    """The page's script (the grid's views, compare, scrolling), for launch(head=...)."""
    return f"<script>\n{(ASSETS / 'page.js').read_text()}\n</script>"


def build_ui(handlers: Handlers, *, secret: str, arena: ArenaHandlers | None = None) -> gr.Blocks:
    """The whole page: banner, keys, the Text to image, Edit, History, Providers and Arena tabs."""
    with gr.Blocks(title="FLUX.1 Kontext playground", analytics_enabled=False) as demo:
        gr.Markdown(TITLE)
        banner = gr.Markdown(handlers.banner(), elem_id="banner")
        vault = Vault(secret)  # the keys the browser keeps are sealed: the page never holds what opens them
        keys_state = sealed_browser_state(empty_keys(), vault=vault, storage_key=STORAGE_KEY)
        owner_state = gr.BrowserState("", storage_key=OWNER_STORAGE_KEY, secret=vault.storage_secret)  # set on load
        keys_ui = build_keys_panel(handlers)
        page = PageParts(demo, handlers, keys_state, owner_state)
        with gr.Tabs():
            text = build_generate_tab(page, "text")
            edit = build_generate_tab(page, "edit")
            build_history_tab(page)
            with gr.Tab("Providers", id="providers") as providers_tab:
                build_providers_tab(ProvidersHandlers(handlers.service), providers_tab)
            arena_ui = _arena_tab(arena)
        if arena is not None and arena_ui is not None:
            wire_arena(demo, arena_ui, arena, keys_state=keys_state, owner_state=owner_state)
        selections = [text.providers, edit.providers]
        wire_keys(demo, keys_ui, KeysHandlers(handlers), keys_state=keys_state, banner=banner, selections=selections)
    demo.queue(default_concurrency_limit=None)  # every handler awaits providers or is quick: nobody queues
    return demo  # type: ignore[no-any-return]


def _arena_tab(arena: ArenaHandlers | None) -> ArenaUI | None:
    if arena is None:
        return None
    with gr.Tab("Arena", id="arena", elem_id="arena-tab"):
        return build_arena_tab(arena)
