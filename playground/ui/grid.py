"""The comparison grid: every job of a run as a same-size tile (image, provider · model, state, latency, cost),
in a stable order, as one HTML string for one gr.HTML component. No gradio here.

One component for the whole grid keeps a run's per-update output count flat however many jobs it has;
Gradio patches the page's DOM from the new HTML, so unchanged images are not reloaded. What the visitor does
with the grid (grid or panels, results or changes, picking 2-4 results to compare with one zoom) happens in
the browser (assets/page.js); only Resume goes back to the server.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from urllib.parse import quote

from playground.ui.board import Board, PanelView, share_text
from playground.ui.format import PHASE_ICONS, latency_text, model_short, money

FILE_ROUTE = "gradio_api/file="  # relative, so the page works under any root path


def file_url(path: str | Path) -> str:
    """The URL the app serves a kept file at (the file must lie under one of launch()'s allowed paths)."""
    return FILE_ROUTE + quote(str(Path(path).resolve()), safe="/")


def panel_id(tab: str, provider: str, model: str) -> str:
    """The elem_id of a job's detailed panel on a tab (panels.build_panel names it so)."""
    return f"{tab}-{provider}-{model_short(model)}"


def grid_html(board: Board, *, tab: str, stale: str = "") -> str:
    """The whole grid for ``board`` on ``tab`` (text, edit or history); ``stale``: why these results are old."""
    if not board.panels:
        return ""
    tiles = "".join(tile_html(panel, tab, edit=board.edit) for panel in board.panels.values())
    notice = f'<p class="kx-stale-note">{escape(stale)}</p>' if stale else ""
    classes = "kx-grid kx-stale" if stale else "kx-grid"
    before = f' data-input="{file_url(board.input_path)}"' if board.edit and board.input_path else ""
    return (
        f'<div class="{classes}" data-tab="{tab}" data-edit="{int(board.edit)}"{before}>'
        f'{_bar(board, tab)}{notice}<div class="kx-tiles">{tiles}</div></div>'
    )


def _bar(board: Board, tab: str) -> str:
    views = _toggle("view", [("grid", "Grid", "One tile per job"), ("panels", "Panels", "Every detail of each job")])
    shows = ""
    if board.edit:
        pairs = [("results", "Results", "The edited pictures"), ("changes", "Changes", "Where each edit changed")]
        shows = _toggle("show", pairs)
    compare = (
        '<button type="button" class="kx-btn kx-compare-go" data-action="compare" disabled '
        'title="Tick 2 to 4 results, then compare them side by side with one zoom and pan">Compare</button>'
    )
    active = any(p.is_active for p in board.panels.values())
    stop = '<button type="button" class="kx-btn kx-stop" data-action="stop">Stop</button>' if active else ""
    return f'<div class="kx-bar">{views}{shows}{compare}{stop}</div>'  # Resume: the button above the grid


def _toggle(name: str, options: list[tuple[str, str, str]]) -> str:
    buttons = "".join(
        f'<button type="button" class="kx-seg" data-{name}="{value}" title="{escape(tip)}">{label}</button>'
        for value, label, tip in options
    )
    return f'<span class="kx-segs" role="group" data-group="{name}">{buttons}</span>'


def tile_html(panel: PanelView, tab: str, *, edit: bool) -> str:
    """One tile: the same size whatever it holds, so tiles in a row line up."""
    name = f"{panel.label} · {model_short(panel.model)}"
    state = panel.status_line()
    attrs = f'data-key="{escape(panel.provider)}|{escape(panel.model)}" data-phase="{panel.phase}"'
    attrs += f' data-name="{escape(name)}" data-open="{panel_id(tab, panel.provider, panel.model)}"'
    if panel.result is not None:
        attrs += f' data-full="{file_url(panel.result.path)}"'
    return (
        f'<div class="kx-tile" {attrs}>{_media(panel, name, edit=edit)}'
        f'<div class="kx-name" title="{escape(name)}">{escape(name)}</div>'
        f'<div class="kx-state" title="{escape(state)}">{escape(state)}</div>'
        f'<div class="kx-meta" title="{escape(_meta_title(panel))}">{escape(_meta(panel, edit=edit))}</div>'
        f"{_changed(panel, edit=edit)}{_actions(panel)}</div>"
    )


def _media(panel: PanelView, name: str, *, edit: bool) -> str:
    result = panel.result
    if result is None:
        icon = PHASE_ICONS[panel.phase]
        return f'<button type="button" class="kx-media kx-empty" data-action="open">{icon} {panel.phase}</button>'
    shown = file_url(panel.tile or result.path)
    picture = f'<img class="kx-result" src="{shown}" alt="{escape(name)} result" loading="lazy">'
    if edit and panel.changes is not None:
        changes = file_url(panel.changes.map_path)
        picture += f'<img class="kx-changes" src="{changes}" alt="{escape(name)}: what changed" loading="lazy">'
    return (
        f'<button type="button" class="kx-media" data-action="open" title="Open the detailed panel">{picture}</button>'
    )


def _meta(panel: PanelView, *, edit: bool) -> str:
    """Size and cost (a shape unlike the others' is marked); what an edit changed goes on a line of its own."""
    result = panel.result
    if result is None:
        return f"task {panel.task_id}" if panel.task_id and panel.phase in ("stopped", "timed out") else ""
    cost = money(result.cost_usd) + ("*" if not panel.price_confirmed else "") if result.cost_usd is not None else ""
    text = f"{result.width}×{result.height} · {cost or 'no price'}"
    return f"⚠ {text}" if panel.shape_note else text


def _changed(panel: PanelView, *, edit: bool) -> str:
    if not edit:
        return ""
    share = f"{share_text(panel.changes.share)} of the picture changed" if panel.changes is not None else ""
    return f'<div class="kx-meta kx-changed" title="Beyond a small threshold, against the input">{share}</div>'


def _meta_title(panel: PanelView) -> str:
    result = panel.result
    if result is None:
        return panel.error or ""
    parts = [f"latency {latency_text(result)} (submit to downloaded)"]
    if result.cost_usd is not None and not panel.price_confirmed:
        parts.append("* price not confirmed by the provider")
    if panel.shape_note:
        parts.append(panel.shape_note)
    return "; ".join(parts)


def _actions(panel: PanelView) -> str:
    pick = (
        '<label class="kx-pick" title="Compare this result with others, with one zoom">'
        '<input type="checkbox" class="kx-pick-box"> compare</label>'
        if panel.result is not None
        else ""
    )
    resume = (
        '<button type="button" class="kx-btn kx-resume" data-action="resume" title="Wait again, by task id, for '
        'every stopped or timed-out job of this run; nothing is submitted twice">Resume</button>'
        if panel.is_resumable
        else ""
    )
    return f'<div class="kx-actions">{pick}{resume}</div>'
