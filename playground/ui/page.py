"""What every tab of the page shares while the page is built: the Blocks, the handlers, the browser's state,
and the events other tabs follow. A tab is one ``build_*_tab(page)`` call of its own module, in layout.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.events import Dependency

from playground.ui.handlers import Handlers

ASSETS = Path(__file__).parent / "assets"


@dataclass
class PageParts:
    """Handed to each tab's builder.

    ``runs``: events after which History has something new to list (a tab adds its runs, stops and resumes).
    ``tabs``: what each built tab returned, by id, for the parts that reach across tabs (the Keys panel
    updates every tab's provider list).
    """

    demo: gr.Blocks
    handlers: Handlers
    keys_state: gr.BrowserState
    owner_state: gr.BrowserState
    runs: list[Dependency] = field(default_factory=list)
    tabs: dict[str, Any] = field(default_factory=dict)
