"""Result panels: their components, and how PanelViews become updates in the order of a tab's outputs.

A tab's outputs are HEAD_SLOTS, then each panel's slots (PANEL_SLOTS[kind]) in panel_keys() order.
The layout builds its components in that order; the handlers fill it, sending only what changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import gradio as gr

from playground.ui.board import Board, PanelKey, PanelView
from playground.ui.format import curl_command, download_label, model_short, panel_title, sent_params, status_text

TabKind = Literal["text", "edit"]
PanelKind = Literal["text", "edit", "history"]  # a History panel shows a stored run of either kind
HEAD_SLOTS = ("seed", "message", "summary")
PANEL_SLOTS: dict[PanelKind, tuple[str, ...]] = {
    "text": ("box", "status", "image", "download", "info", "sent", "curl"),
    "edit": ("box", "status", "slider", "download", "info", "sent", "curl", "use"),
    "history": ("box", "status", "image", "slider", "download", "info", "changes", "sent", "curl"),
}


def render_panel(view: PanelView, input_path: str | None, *, sandbox: bool) -> dict[str, Any]:
    """Every slot of one panel, from its view."""
    result = view.result
    path = result.path if result else None
    wire = result.sent if result else view.sent
    has_media = path is not None or view.is_active  # a failed or stopped job shows no empty picture frame
    pair = (input_path or path, path) if path else None  # the slider shows nothing without a 'before' image
    return {
        "box": gr.update(visible=True),
        "status": status_text(view.state, view.elapsed_s, error=view.error, task_id=view.task_id, result=result),
        "image": gr.update(value=path, visible=has_media),
        "slider": gr.update(value=pair, visible=has_media),
        "download": gr.update(value=path, label=download_label(result), visible=True)
        if result
        else gr.update(value=None, visible=False),
        "info": view.info(sandbox=sandbox),
        "sent": sent_params(wire),
        "curl": curl_command(wire, view.key_env) if wire else "",
        "use": gr.update(visible=path is not None),
    }


def hidden_panel() -> dict[str, Any]:
    """A panel that is not part of this run."""
    return {"box": gr.update(visible=False)}


class Renderer:
    """Turns a board into output lists for one tab, remembering what the page already shows."""

    def __init__(
        self, kind: PanelKind, keys: Sequence[PanelKey], *, sandbox: bool, head_slots: Sequence[str] = HEAD_SLOTS
    ) -> None:
        self.kind = kind
        self.slots = PANEL_SLOTS[kind]
        self.head_slots = tuple(head_slots)
        self.keys = list(keys)
        self.sandbox = sandbox
        self._shown: dict[tuple[PanelKey, str], Any] = {}

    def frame(
        self,
        board: Board,
        changed: Iterable[PanelKey] = (),
        *,
        hide_others: bool = False,
        **head: Any,
    ) -> list[Any]:
        """The outputs for the ``changed`` panels (and the others hidden, on a new run); gr.skip() elsewhere."""
        values = self.head(**head)[: len(self.head_slots)]
        updates = {key: self._render(board, key) for key in changed}
        if hide_others:
            updates |= {key: hidden_panel() for key in self.keys if key not in board.panels}
        for key in self.keys:
            values += self._panel_values(key, updates.get(key, {}))
        return values

    def _render(self, board: Board, key: PanelKey) -> dict[str, Any]:
        return render_panel(board.panels[key], board.input_path, sandbox=self.sandbox)

    def _panel_values(self, key: PanelKey, update: dict[str, Any]) -> list[Any]:
        values = []
        for slot in self.slots:
            if slot not in update or self._shown.get((key, slot), _UNSET) == update[slot]:
                values.append(gr.skip())
                continue
            self._shown[(key, slot)] = update[slot]
            values.append(update[slot])
        return values

    def head(self, **head: Any) -> list[Any]:
        """Outputs that change only the head slots given (seed, message, summary on the live tabs)."""
        values = [head.get(name, gr.skip()) for name in self.head_slots]
        return values + [gr.skip()] * (len(self.keys) * len(self.slots))


@dataclass
class PanelUI:
    """The components of one (provider, model) result panel."""

    key: PanelKey
    box: gr.Column
    status: gr.Markdown
    image: gr.Image | None
    download: gr.DownloadButton
    info: gr.Markdown
    sent: gr.JSON
    curl: gr.Code
    slider: gr.ImageSlider | None = None
    use: gr.Button | None = None
    changes: gr.Markdown | None = None


def build_panel(kind: PanelKind, key: PanelKey, label: str) -> PanelUI:
    """One result panel, hidden until a run uses it. A History panel has both an image and a before/after."""
    name, model = key
    tag = f"{kind}-{name}-{model_short(model)}"
    with gr.Column(visible=False, min_width=300, variant="panel", elem_id=tag, elem_classes="result-panel") as box:
        gr.Markdown(panel_title(label, model))
        status = gr.Markdown(elem_id=f"{tag}-status", elem_classes="panel-status", label=f"status {name} {model}")
        image = _result_image(tag, name, model) if kind != "edit" else None
        slider = _slider(tag, name, model) if kind != "text" else None
        with gr.Row():
            download = gr.DownloadButton("Download original", visible=False, size="sm", elem_id=f"{tag}-download")
            use = gr.Button("Use as input", size="sm", visible=False, elem_id=f"{tag}-use") if kind == "edit" else None
        info = gr.Markdown(elem_id=f"{tag}-info", label=f"info {name} {model}")
        changes = _changes(tag, name, model) if kind == "history" else None
        with gr.Accordion("Request sent (parameters, curl)", open=False):
            sent = gr.JSON(label=f"sent {name} {model}", show_label=False, elem_id=f"{tag}-sent")
            curl = gr.Code(
                language="shell",
                label=f"curl {name} {model}",
                show_label=False,
                interactive=False,
                elem_id=f"{tag}-curl",
            )
    return PanelUI(key, box, status, image, download, info, sent, curl, slider, use, changes)


def _changes(tag: str, name: str, model: str) -> gr.Markdown:
    with gr.Accordion("State changes", open=False):
        return gr.Markdown(elem_id=f"{tag}-changes", label=f"changes {name} {model}")


def _result_image(tag: str, name: str, model: str) -> gr.Image:
    return gr.Image(
        type="filepath",  # shown from the saved file, so the browser gets the provider's bytes, not a re-encoding
        interactive=False,
        show_label=False,
        label=f"image {name} {model}",
        height=300,
        buttons=["fullscreen"],
        elem_id=f"{tag}-image",
    )


def _slider(tag: str, name: str, model: str) -> gr.ImageSlider:
    return gr.ImageSlider(
        type="filepath",
        label=f"before / after {name} {model}",
        show_label=False,
        height=300,
        buttons=["fullscreen"],
        interactive=False,
        elem_id=f"{tag}-slider",
    )


_UNSET = object()
