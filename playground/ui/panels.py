"""Result panels: their components, and how PanelViews become updates in the order of a tab's outputs.

A tab's outputs are HEAD_SLOTS, then each panel's slots (PANEL_SLOTS[kind]) in panel_keys() order.
The layout builds its components in that order; the handlers fill it, sending only what changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gradio as gr

from playground.ui.board import Board, PanelKey, PanelView
from playground.ui.format import curl_command, download_label, model_short, panel_title, sent_params
from playground.ui.grid import grid_html

TabKind = Literal["text", "edit"]
PanelKind = Literal["text", "edit", "history"]  # a History panel shows a stored run of either kind
HEAD_SLOTS = ("seed", "message", "summary", "grid", "bundle", "resume")
# Gradio spends about the same time on every output of every yield, changed or not: a panel gets no slot it
# can do without (Resume is one button per tab, beside Download all, and on each tile of the grid).
PANEL_SLOTS: dict[PanelKind, tuple[str, ...]] = {
    "text": ("box", "status", "image", "download", "info", "sent", "curl"),
    "edit": ("box", "status", "slider", "download", "info", "sent", "curl", "use"),
    "history": ("box", "status", "image", "slider", "download", "info", "changes", "sent", "curl"),
}


def render_panel(view: PanelView, input_path: str | None, *, sandbox: bool, mode: str = "text") -> dict[str, Any]:
    """Every slot of one panel, from its view (``mode``: text or edit, for advice that fits)."""
    result = view.result
    path = result.path if result else None
    wire = result.sent if result else view.sent
    has_media = path is not None or view.is_active  # a failed or stopped job shows no empty picture frame
    pair = (input_path or path, path) if path else None  # the slider shows nothing without a 'before' image
    status = view.status_line()
    return {
        "box": gr.update(visible=True),
        "status": status,
        "image": gr.update(value=path, visible=has_media),
        "slider": gr.update(value=pair, visible=has_media),
        "download": gr.update(value=path, label=download_label(result), visible=True)
        if result
        else gr.update(value=None, visible=False),
        "info": view.info(sandbox=sandbox, mode=mode),
        "sent": sent_params(wire),
        "curl": curl_command(wire, view.key_env) if wire else "",
        "use": gr.update(visible=path is not None),
    }


def bundle_update(path: Path | None, count: int = 0) -> Any:
    """The 'Download all' button: the run's zip, or hidden when there is none."""
    if path is None:
        return gr.update(value=None, visible=False)
    return gr.update(value=str(path), visible=True, label=f"Download all ({count} image{'s' * (count != 1)}, zip)")


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
        self._grid: str | None = None

    def frame(
        self,
        board: Board,
        changed: Iterable[PanelKey] = (),
        *,
        hide_others: bool = False,
        **head: Any,
    ) -> list[Any]:
        """The outputs for the ``changed`` panels (and the others hidden, on a new run); gr.skip() elsewhere.

        The grid (one component for every tile) is sent when it changed, whatever changed in it.
        """
        updates = {key: self._render(board, key) for key in changed}
        if "grid" in self.head_slots and "grid" not in head and (updates or hide_others):
            head["grid"] = self.grid(board)
        values = self.head(**head)[: len(self.head_slots)]
        if hide_others:
            updates |= {key: hidden_panel() for key in self.keys if key not in board.panels}
        for key in self.keys:
            values += self._panel_values(key, updates.get(key, {}))
        return values

    def grid(self, board: Board, *, stale: str = "") -> Any:
        """The grid's HTML, or gr.skip() when the page shows it already."""
        html = grid_html(board, tab=self.kind, stale=stale)
        if html == self._grid:
            return gr.skip()
        self._grid = html
        return html

    def _render(self, board: Board, key: PanelKey) -> dict[str, Any]:
        mode = "edit" if board.edit else "text"
        return render_panel(board.panels[key], board.input_path, sandbox=self.sandbox, mode=mode)

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
        with gr.Accordion("Request sent (parameters, curl)", open=False, elem_classes="kx-request"):
            sent = gr.JSON(label=f"sent {name} {model}", show_label=False, open=True, elem_id=f"{tag}-sent")
            curl = gr.Code(
                language="shell",
                label=f"curl {name} {model}",
                show_label=False,
                interactive=False,
                wrap_lines=True,
                elem_id=f"{tag}-curl",
            )
    return PanelUI(key, box, status, image, download, info, sent, curl, slider, use, changes)


GRID_JS = "(function go(){ if (window.kx) window.kx.grid(element, trigger, watch); else setTimeout(go, 30); })();"


def results_header(
    kind: PanelKind, *, with_resume: bool = True
) -> tuple[gr.Markdown, gr.Markdown, gr.DownloadButton, gr.Button | None]:
    """Right above the grid: the run's message (a reason it did not start, an error), its counts, Download all,
    and (``with_resume``) Resume for the jobs that were stopped or timed out."""
    prefix = "history " if kind == "history" else ""  # the labels the API names these outputs by
    message = gr.Markdown(elem_id=f"{kind}-message", elem_classes="kx-message", label=f"{prefix}message")
    with gr.Row(equal_height=True, elem_classes="kx-wrap-row"):
        summary = gr.Markdown(elem_id=f"{kind}-summary", elem_classes="kx-summary", label=f"{prefix}summary")
        resume = (
            gr.Button(
                "Resume", visible=False, size="sm", variant="primary", scale=0, min_width=180, elem_id=f"{kind}-resume"
            )
            if with_resume
            else None
        )
        bundle = gr.DownloadButton(
            "Download all", visible=False, size="sm", scale=0, min_width=200, elem_id=f"{kind}-bundle"
        )
    return message, summary, bundle, resume


def resume_update(board: Board) -> Any:
    """The tab's Resume button: shown when the run has stopped or timed-out jobs to wait for again."""
    waiting = len(board.resumable) if board.is_finished else 0
    label = f"Resume {waiting} stopped job{'s' * (waiting != 1)}" if waiting else "Resume waiting"
    return gr.update(visible=bool(waiting), value=label)


def grid_component(kind: PanelKind) -> gr.HTML:
    """The comparison grid of a tab: one component, whatever the number of jobs."""
    return gr.HTML(label=f"{kind} grid", elem_id=f"{kind}-grid", js_on_load=GRID_JS)


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
